"""What happened, told to whoever listens: the journal, metrics, notifications, a backtest's report.

The bot emits one ``Event`` per fact (an order request and its outcome, an
execution, a decision, a pause...). Sinks subscribe to the ``EventBus``; the bus
knows no sink and a sink knows no bot. ``emit`` is called on the decision path and
in the WebSocket thread, so a sink must return at once (put the event on a queue
and do the work in a thread of its own) and must be thread-safe. With no sink an
emit costs one attribute test. A sink that raises is logged and dropped from
nothing: the bus counts the failure and goes on.

Kinds and their fields (all money ``Decimal``, quantities ``int`` contracts, exchange
times ``ts_ex_ms`` in integer milliseconds where the exchange states one):

* ``run_start``: run_tag, settings (dict, no secrets), version, sim_seed, dry_run
* ``run_stop``: exit_code, summary (dict)
* ``order``: action ("create" | "cancel" | "cancel_batch"), client_oid, order_id, side, price, qty,
  close_flag, outcome ("ok" | "refused" | "in_doubt" | "not_found" | "deferred" | "error" | "paper": the
  journal's ``order_requests.outcome``), status (the order's status in the answer, or None), error_code,
  latency_ms (None when nothing was sent), request_id (groups the orders of one cancel_batch)
* ``execution``: exec_id, order_id, client_oid, side, price, qty, fee, maker, realised_pnl, ts_ex_ms,
  source ("live" | "reconciled" | "paper"), cum_qty (the order's filled quantity with this fill, or None:
  the journal skips a fill its reconciliation already counted)
* ``order_state``: the exchange's latest view of one of our orders: order_id, client_oid, side, close_flag,
  price, qty, status, filled_qty, avg_price, fee, ctime
* ``position``: long_qty, long_entry, short_qty, short_entry, realised_pnl, unrealised_pnl, ts_ex_ms,
  long and short (the legs as ``models.Position``)
* ``margin``: total, available, order_margin, pos_margin, ts_ex_ms
* ``funding``: amount, rate, ts_ex_ms (the funding time), side (the leg), qty (its contracts then)
* ``market``: best_bid, best_ask, mid, mark, reason ("sample": about once a second | "fill": just before ours)
* ``decision``: kept, cancelled, created, best_bid, best_ask (our best quotes after it), net_position,
  latency_s (optional)
* ``connection``: up (bool), reason
* ``resync``: table, reason
* ``error``: where, text
* ``pause``: reason (None: resumed), cancel
* ``kill_switch``: equity, start_equity, limit
* ``reload``: changed (dict name -> [old, new], no secrets)
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Protocol

from .clock import SYSTEM_CLOCK, Clock

log = logging.getLogger("market_maker.events")


@dataclass(frozen=True)
class Event:
    kind: str
    ts: float  # the bot's clock (wall seconds; simulated in a backtest)
    fields: Dict[str, Any] = field(default_factory=dict)


class Sink(Protocol):
    def handle(self, event: Event) -> None:
        """Take the event; return at once."""


class EventBus:
    """Fans events out to the subscribed sinks."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK):
        self.clock = clock
        self.sinks: List[Sink] = []
        self.failures = 0
        self._lock = threading.Lock()

    def subscribe(self, sink: Sink) -> None:
        with self._lock:
            self.sinks = [*self.sinks, sink]

    def unsubscribe(self, sink: Sink) -> None:
        with self._lock:
            self.sinks = [s for s in self.sinks if s is not sink]

    def __bool__(self) -> bool:
        return bool(self.sinks)

    def emit(self, kind: str, **fields: Any) -> None:
        sinks = self.sinks  # the list is replaced, never changed in place: no lock on the hot path
        if not sinks:
            return
        event = Event(kind, self.clock.time(), fields)
        for sink in sinks:
            try:
                sink.handle(event)
            except Exception:
                self.failures += 1
                log.exception("Event sink %r failed on a %s event", sink, kind)


class CallbackSink:
    """A sink calling ``fn(event)`` directly (tests, and sinks that are a queue put anyway)."""

    def __init__(self, fn: Callable[[Event], None]):
        self.fn = fn

    def handle(self, event: Event) -> None:
        self.fn(event)
