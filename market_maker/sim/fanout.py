"""Pure helpers of the WebSocket fan-out: batching exchange events into messages, encoding a
message once for every subscriber, and RFC 6455 server text frames.

A message is encoded once as ``{"table":..,"action":..,"keys":..,"data":..,"time":"..","seq":``
(``Encoded.head``); each session appends its own seq and ``}``.  The bytes are exactly what
``json.dumps(msg, separators=(",", ":"))`` gives for the dict with that key order.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any
from collections.abc import Iterable

PUBLIC_BATCHED = ("order_book", "trade")
# A book message removes at most this many levels (a venue moves its book level by level; a client
# reading between messages never sees a large part of a side gone at once).
MAX_BOOK_DELETES = 4
_DUMPS = json.JSONEncoder(separators=(",", ":")).encode


@dataclass(frozen=True)
class Encoded:
    """One table message, encoded up to its seq."""
    table: str
    action: str
    rows: list[dict]
    head: bytes

    def body(self, seq: int) -> bytes:
        """The full message with ``seq``."""
        return self.head + b"%d}" % seq


def encode(table: str, action: str, keys: list[str], rows: list[dict], ts: int) -> Encoded:
    """Encode a table message once (without its per-connection seq)."""
    head = ('{"table":%s,"action":%s,"keys":%s,"data":%s,"time":"%d","seq":'
            % (_DUMPS(table), _DUMPS(action), _DUMPS(keys), _DUMPS(rows), ts))
    return Encoded(table, action, rows, head.encode())


def text_frame(payload: bytes) -> bytes:
    """An unmasked, uncompressed, final text frame (server to client, RFC 6455 §5.2)."""
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", 0x81, n) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


@dataclass
class Batch:
    """Events of one table and owner that go out as one message (public: per symbol)."""
    table: str
    action: str
    symbol: str | None
    account_id: int | None
    events: list[Any]


def batches(events: Iterable[Any]) -> list[Batch]:
    """Group exchange events into messages, in order of their first event.

    Private tables: consecutive events of one (table, action, symbol, account) form one
    message, as before.  Public ``trade`` events of one symbol form one message per call;
    ``order_book`` events of one symbol are netted per level (see ``net_book``) and placed
    where the first of them was.  One call is one exchange operation or one tick.
    """
    out: list[Batch] = []
    public: dict[tuple[str, str | None], Batch] = {}
    last: Batch | None = None
    for event in events:
        kind = event.kind
        if kind in PUBLIC_BATCHED:
            key = (kind, event.symbol)
            batch = public.get(key)
            if batch is None:
                batch = public[key] = Batch(kind, event.action, event.symbol, None, [])
                out.append(batch)
            batch.events.append(event)
            last = None
            continue
        if last is not None and (last.table, last.action, last.symbol, last.account_id) == \
                (kind, event.action, event.symbol, event.account_id):
            last.events.append(event)
            continue
        last = Batch(kind, event.action, event.symbol, event.account_id, [event])
        out.append(last)
    return out


def net_book(events: Iterable[Any]) -> list[tuple[str, list[dict]]]:
    """The net change of a run of order_book events: (action, rows) for delete, update, insert.

    A level's first event tells whether the subscriber had it (insert: no), its last event
    what it has now; a level inserted then deleted within the run is not sent at all.
    Deletes go first so that a client's copy is never crossed in between, at most
    ``MAX_BOOK_DELETES`` levels a message.
    """
    first: dict[str, Any] = {}
    final: dict[str, Any] = {}
    for event in events:
        row = event.row
        level = row["id"]
        if level not in first:
            first[level] = event
        final[level] = event
    deletes, updates, inserts = [], [], []
    for level, event in final.items():
        before = first[level]
        had = before.action != "insert"
        if event.action == "delete":
            if had:
                deletes.append(event.row)
        elif had and before.row["side"] != event.row["side"]:
            # a bid and an ask at one price share the level id: the price went through, so the
            # subscriber's level of the other side goes and a new one comes
            deletes.append(before.row)
            inserts.append(event.row)
        elif had:
            updates.append(event.row)
        else:
            inserts.append(event.row)
    out = [("delete", deletes[i:i + MAX_BOOK_DELETES]) for i in range(0, len(deletes), MAX_BOOK_DELETES)]
    return out + [(action, rows) for action, rows in (("update", updates), ("insert", inserts)) if rows]
