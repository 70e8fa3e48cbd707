"""Hand-built journals for the report's tests (the real schema, rows written directly)."""
from __future__ import annotations

import itertools
import sqlite3
from typing import Optional

from market_maker.journal.schema import migrate


class JournalBuilder:
    """Writes rows of one journal file; ``run()`` first, ``close()`` at the end."""

    def __init__(self, path) -> None:
        self.path = str(path)
        self.db = sqlite3.connect(self.path)
        migrate(self.db)
        self.run_id = 1
        self._ids = itertools.count(1)

    def run(self, run_id: int = 1, started_ms: int = 0, stopped_ms: Optional[int] = 60_000, exit_status: int = 0,
            mode: str = "live") -> "JournalBuilder":
        self.run_id = run_id
        self.db.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        (run_id, started_ms, stopped_ms, exit_status if stopped_ms is not None else None, mode,
                         "BTC_USD", "BTC", "market_maker.market_maker:OrderManager", "0.1.0", "{}", None, "abc123"))
        return self

    def market(self, ts: int, mid: Optional[str], mark: Optional[str] = None, reason: str = "sample") -> None:
        self.db.execute("INSERT INTO market (run_id, ts_ms, best_bid, best_ask, mid, mark, reason) "
                        "VALUES (?,?,?,?,?,?,?)", (self.run_id, ts, None, None, mid, mark, reason))

    def fill(self, ts: int, side: str, qty: int, price: str, fee: str = "0", maker: Optional[int] = 1,
             close: int = 0, order_id: Optional[str] = None) -> str:
        exec_id = f"x{next(self._ids)}"
        self.db.execute("INSERT INTO executions (exec_id, run_id, ts_ms, exchange_ms, order_id, client_oid, side, "
                        "close_flag, price, qty, fee, maker, realised_pnl, source) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (exec_id, self.run_id, ts, ts, order_id or f"o{exec_id}", None, side, close, price, qty, fee,
                         maker, None, "live"))
        return exec_id

    def margin(self, ts: int, total: str, order_margin: str = "0", pos_margin: str = "0") -> None:
        self.db.execute("INSERT INTO margins (run_id, ts_ms, total, available, order_margin, pos_margin) "
                        "VALUES (?,?,?,?,?,?)", (self.run_id, ts, total, total, order_margin, pos_margin))

    def position(self, ts: int, side: str, qty: int) -> None:
        self.db.execute("INSERT INTO positions (run_id, ts_ms, side, qty, avail_qty, entry_price, leverage, "
                        "liquidation_price, unrealised_pnl, realised_pnl, pos_margin) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                        (self.run_id, ts, side, qty, qty, "0", "10", "0", "0", "0", "0"))

    def funding(self, ts: int, amount: str, side: str = "long", qty: int = 0) -> None:
        self.db.execute("INSERT INTO funding (run_id, ts_ms, exchange_ms, side, qty, amount, rate) "
                        "VALUES (?,?,?,?,?,?,?)", (self.run_id, ts, ts, side, qty, amount, None))

    def requote(self, ts: int, bid: Optional[str], ask: Optional[str], net: int = 0) -> None:
        self.db.execute("INSERT INTO requotes (run_id, ts_ms, kept, cancelled, created, best_bid, best_ask, "
                        "net_position) VALUES (?,?,?,?,?,?,?,?)", (self.run_id, ts, 0, 0, 0, bid, ask, net))

    def event(self, ts: int, kind: str, detail: str = "") -> None:
        self.db.execute("INSERT INTO events (run_id, ts_ms, kind, detail) VALUES (?,?,?,?)",
                        (self.run_id, ts, kind, detail or kind))

    def request(self, ts: int, request_id: int, kind: str, outcome: str, order_id: Optional[str] = None,
                side: str = "buy", price: str = "10000", qty: int = 1) -> None:
        self.db.execute("INSERT INTO order_requests (run_id, ts_ms, request_id, kind, client_oid, order_id, side, "
                        "price, qty, close_flag, outcome, status, error_code, latency_ms) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (self.run_id, ts, request_id, kind, f"c{order_id}", order_id, side, price, qty, 0, outcome,
                         None, -20001 if outcome == "refused" else None, 3.0))

    def order(self, order_id: str, side: str = "buy", price: str = "10000", qty: int = 1, status: int = 2,
              filled: int = 0, fee: str = "0", updated_ms: int = 0) -> None:
        self.db.execute("INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (order_id, self.run_id, f"c{order_id}", side, 0, price, qty, status, filled,
                         price if filled else "0", fee, updated_ms, updated_ms))

    def close(self) -> str:
        self.db.commit()
        self.db.close()
        return self.path
