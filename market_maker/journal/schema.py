"""The journal's SQLite schema, its version and its migrations.

One journal file holds many runs. Every table but ``runs`` carries ``run_id``. Units:

* times: ``ts_ms`` is the bot's clock (wall time in a live run, simulated time in a
  backtest), ``exchange_ms`` the exchange's own timestamp when the row came from it
  (NULL otherwise); both integer milliseconds since the epoch;
* prices and money: TEXT holding an exact decimal string (money in the settle
  currency, e.g. BTC; a fee is positive when paid, negative for a rebate); read them
  with ``decimal.Decimal``, never float;
* quantities: INTEGER contracts.

``PRAGMA user_version`` is the schema version. ``migrate`` brings an older journal up
to ``VERSION`` one step at a time, each step in one transaction; a journal written by
a newer version is refused (``JournalVersionError``).
"""
from __future__ import annotations

import sqlite3
from typing import Dict

VERSION = 1

SCHEMA_V1 = """
CREATE TABLE runs (
    run_id        INTEGER PRIMARY KEY,
    started_ms    INTEGER NOT NULL,
    stopped_ms    INTEGER,              -- NULL while running, or after a crash
    exit_status   INTEGER,              -- 0 ok, 1 error, 2 settings, 3 kill switch; NULL as stopped_ms
    mode          TEXT NOT NULL,        -- 'live', 'dry_run' or 'backtest'
    symbol        TEXT NOT NULL,
    settle_currency TEXT NOT NULL,
    strategy      TEXT NOT NULL,        -- 'module:Class' of the OrderManager
    version       TEXT NOT NULL,        -- the project's version
    settings_json TEXT NOT NULL,        -- the effective settings, secrets left out
    sim_seed      INTEGER,              -- the simulator's seed when it is embedded (or the backtest's)
    run_tag       TEXT                  -- the tag after ORDERID_PREFIX in this run's client_oids
);

-- One row per order a request was about: a cancel_batch of 30 orders is 30 rows sharing request_id.
CREATE TABLE order_requests (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL REFERENCES runs(run_id),
    ts_ms         INTEGER NOT NULL,     -- when the request was sent
    request_id    INTEGER NOT NULL,     -- groups the rows of one request
    kind          TEXT NOT NULL,        -- 'create', 'cancel', 'cancel_batch'
    client_oid    TEXT,
    order_id      TEXT,                 -- the exchange's id (NULL: a create refused or in doubt)
    side          TEXT,                 -- 'buy' or 'sell'
    price         TEXT,
    qty           INTEGER,
    close_flag    INTEGER,              -- 0 open, 1 close
    outcome       TEXT NOT NULL,        -- 'ok', 'refused', 'in_doubt', 'not_found', 'deferred', 'error', 'paper'
    status        INTEGER,              -- the order's status in the answer, when it says
    error_code    INTEGER,              -- the exchange's code (e.g. -20001), NULL when none
    latency_ms    REAL                  -- REST round trip, NULL when nothing was sent
);

-- The latest known state of each of our orders (what reconciliation compares with the exchange).
CREATE TABLE orders (
    order_id      TEXT PRIMARY KEY,
    run_id        INTEGER NOT NULL REFERENCES runs(run_id),
    client_oid    TEXT NOT NULL,
    side          TEXT NOT NULL,
    close_flag    INTEGER NOT NULL,
    price         TEXT NOT NULL,
    qty           INTEGER NOT NULL,
    status        INTEGER NOT NULL,
    filled_qty    INTEGER NOT NULL,
    avg_price     TEXT NOT NULL,        -- contract-weighted harmonic mean of the fill prices ('0' before a fill)
    fee           TEXT NOT NULL,        -- total fee of its fills
    ctime_ms      INTEGER,              -- the exchange's creation time
    updated_ms    INTEGER NOT NULL
);

CREATE TABLE executions (
    exec_id       TEXT PRIMARY KEY,     -- the exchange's id; 'rec:<order_id>:<cum_qty>' for a reconciled fill
    run_id        INTEGER NOT NULL REFERENCES runs(run_id),
    ts_ms         INTEGER NOT NULL,
    exchange_ms   INTEGER,
    order_id      TEXT NOT NULL,
    client_oid    TEXT,
    side          TEXT NOT NULL,
    close_flag    INTEGER NOT NULL,
    price         TEXT NOT NULL,        -- this fill's price (a reconciled fill: the average of what was missed)
    qty           INTEGER NOT NULL,
    fee           TEXT NOT NULL,
    maker         INTEGER,              -- 1 maker, 0 taker, NULL unknown (reconciled)
    realised_pnl  TEXT,                 -- what this fill realised (closes), NULL when unknown
    source        TEXT NOT NULL         -- 'live', 'reconciled', 'paper' or 'backtest'
);

CREATE TABLE positions (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL REFERENCES runs(run_id),
    ts_ms         INTEGER NOT NULL,
    side          TEXT NOT NULL,        -- 'long' or 'short'
    qty           INTEGER NOT NULL,
    avail_qty     INTEGER NOT NULL,
    entry_price   TEXT NOT NULL,
    leverage      TEXT NOT NULL,
    liquidation_price TEXT NOT NULL,
    unrealised_pnl TEXT NOT NULL,
    realised_pnl  TEXT NOT NULL,
    pos_margin    TEXT NOT NULL
);

CREATE TABLE margins (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL REFERENCES runs(run_id),
    ts_ms         INTEGER NOT NULL,
    total         TEXT NOT NULL,        -- equity: balance plus unrealised PnL
    available     TEXT NOT NULL,
    order_margin  TEXT NOT NULL,
    pos_margin    TEXT NOT NULL
);

CREATE TABLE funding (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL REFERENCES runs(run_id),
    ts_ms         INTEGER NOT NULL,
    exchange_ms   INTEGER,
    side          TEXT NOT NULL,        -- the leg that paid or received
    qty           INTEGER NOT NULL,     -- its contracts at the time
    amount        TEXT NOT NULL,        -- received (+) or paid (-), settle currency
    rate          TEXT                  -- the funding rate, when known
);

CREATE TABLE market (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL REFERENCES runs(run_id),
    ts_ms         INTEGER NOT NULL,
    best_bid      TEXT,
    best_ask      TEXT,
    mid           TEXT,
    mark          TEXT,
    reason        TEXT NOT NULL         -- 'sample' (at least once a second) or 'fill'
);

CREATE TABLE requotes (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL REFERENCES runs(run_id),
    ts_ms         INTEGER NOT NULL,
    kept          INTEGER NOT NULL,
    cancelled     INTEGER NOT NULL,
    created       INTEGER NOT NULL,
    best_bid      TEXT,                 -- our best quoted bid after the decision (NULL: none)
    best_ask      TEXT,
    net_position  INTEGER NOT NULL      -- long - short, contracts
);

CREATE TABLE events (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL REFERENCES runs(run_id),
    ts_ms         INTEGER NOT NULL,
    kind          TEXT NOT NULL,        -- 'start', 'stop', 'reconnect', 'resync', 'error', 'pause', 'resume',
                                        -- 'kill_switch', 'reload', 'reconciled', 'journal_dropped', ...
    detail        TEXT NOT NULL,        -- one line, in English
    data_json     TEXT                  -- details as JSON (e.g. the settings a reload changed)
);

CREATE INDEX executions_run_ts ON executions(run_id, ts_ms);
CREATE INDEX order_requests_run_ts ON order_requests(run_id, ts_ms);
CREATE INDEX orders_run ON orders(run_id);
CREATE INDEX positions_run_ts ON positions(run_id, ts_ms);
CREATE INDEX margins_run_ts ON margins(run_id, ts_ms);
CREATE INDEX funding_run_ts ON funding(run_id, ts_ms);
CREATE INDEX market_run_ts ON market(run_id, ts_ms);
CREATE INDEX requotes_run_ts ON requotes(run_id, ts_ms);
CREATE INDEX events_run_ts ON events(run_id, ts_ms);
"""

# version reached -> the SQL of the step from the version before it
MIGRATIONS: Dict[int, str] = {
    1: SCHEMA_V1,
}


class JournalVersionError(Exception):
    """The journal was written by a newer version of the bot."""


def migrate(db: sqlite3.Connection) -> int:
    """Bring ``db`` (a connection in autocommit mode) to ``VERSION``; returns the version it had.

    Each step is one ``BEGIN IMMEDIATE`` transaction that reads the version again under the write
    lock, so a crash in the middle of a step leaves the journal at the version before it, and two
    bots opening one new journal at once (the multi-symbol supervisor's) migrate it once."""
    found = db.execute("PRAGMA user_version").fetchone()[0]
    if found > VERSION:
        raise JournalVersionError(f"the journal has schema version {found}; this bot knows up to {VERSION}")
    for version in range(found + 1, VERSION + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            if db.execute("PRAGMA user_version").fetchone()[0] < version:
                for statement in _statements(MIGRATIONS[version]):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {version}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    return found


def _statements(script: str) -> list:
    """``script`` cut into complete SQL statements (``executescript`` would commit on its own)."""
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip() and not pending.strip().startswith("--"):
        statements.append(pending.strip())
    return [s for s in statements if s]
