"""What the operations parts read of a running bot: one view, read from their own threads.

Everything here reads what the bot already keeps -- the last snapshot (immutable), the
exchange's counters, the WebSocket client's counters -- and never calls the exchange. The
decision timing and the quote uptime are measured by wrapping the runner's ``cycle`` (in
the manager's thread: a few microseconds a decision).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Dict, List, Optional

from ..models import BUY, SELL


def money(value: Optional[Decimal]) -> Optional[str]:
    """Decimal as exact text for JSON (never a float)."""
    return None if value is None else format(value, "f")


def counts(counter: Any) -> Dict[str, int]:
    """A copy of a Counter another thread may be adding keys to (the copy is retried then)."""
    for _ in range(10):
        try:
            return dict(counter)
        except RuntimeError:  # "dictionary changed size during iteration"
            continue
    return {}


@dataclass
class DecisionStats:
    """The last decision and the quoting time, updated in the manager's thread."""

    count: int = 0
    last_at: Optional[float] = None  # wall time the last decision ended
    last_latency_s: Optional[float] = None
    last_open_orders: int = 0
    running_s: float = 0.0  # time covered by decisions since the start
    quoting_s: float = 0.0  # of which with own orders resting on both sides
    _mark: Optional[float] = None
    _quoting: bool = False


class BotView:
    """The running bot as the operations parts see it (``runner.manager`` changes on a reload)."""

    def __init__(self, runner: Any, clock: Callable[[], float] = time.time):
        self.runner = runner
        self.exchange = runner.exchange
        self.clock = clock
        self.decisions = DecisionStats()
        self.observers: List[Callable[[float], None]] = []  # told each decision's latency (metrics)
        self.flatten_state: Optional[Dict[str, Any]] = None  # set by ops.commands while a flatten runs
        self.last_decision_event: Dict[str, Any] = {}  # kept/cancelled/created of the last "decision" event
        self.started_at = clock()

    def handle(self, event: Any) -> None:  # an event sink: keeps the last decision's counts
        if event.kind == "decision":
            self.last_decision_event = {k: event.fields.get(k) for k in ("kept", "cancelled", "created")}

    # -- instrumentation
    def instrument(self, listen: bool = False) -> None:
        """Time every decision of the runner (its ``cycle``) and follow whether we are quoting.

        ``listen``: also take the decision events (only when the bus has a sink anyway: see parts.py)."""
        if listen:
            self.exchange.events.subscribe(self)
        inner = self.runner.cycle
        perf = time.perf_counter

        def timed_cycle() -> None:
            t0 = perf()
            try:
                inner()
            finally:
                self._after_decision(perf() - t0)
        self.runner.cycle = timed_cycle

    def _after_decision(self, latency: float) -> None:
        d = self.decisions
        now = time.monotonic()
        if d._mark is not None:
            span = now - d._mark
            d.running_s += span
            if d._quoting:
                d.quoting_s += span
        d._mark = now
        snap = self.runner.manager.snap
        own = [o for o in snap.orders if self.exchange.is_own(o)] if snap is not None else []
        d._quoting = not self.runner.held and any(o.side == BUY for o in own) and any(o.side == SELL for o in own)
        d.count += 1
        d.last_at = self.clock()
        d.last_latency_s = latency
        d.last_open_orders = len(own)
        for observer in self.observers:
            observer(latency)

    # -- reading
    @property
    def manager(self) -> Any:
        return self.runner.manager

    @property
    def settings(self) -> Any:
        return self.runner.settings

    def own_orders(self) -> List[Any]:
        snap = self.manager.snap
        return [o for o in snap.orders if self.exchange.is_own(o)] if snap is not None else []

    def equity(self) -> Optional[Decimal]:
        manager = self.manager
        return manager.equity() if manager.snap is not None else None

    def pnl(self) -> Dict[str, Optional[Decimal]]:
        """Since the run's start: realised, fees, unrealised (now), equity change."""
        manager = self.manager
        snap = manager.snap
        if snap is None:
            return {"realised": None, "unrealised": None, "fees": None, "equity": None, "start_equity": None,
                    "drawdown": None}
        pos = snap.positions
        equity = self.equity()
        start = manager.start_equity
        return {
            "realised": manager.realised_pnl() - (manager.start_realised or 0),
            "unrealised": pos.long.unrealised_pnl + pos.short.unrealised_pnl,
            "fees": snap.fees_paid - manager.start_fees,
            "equity": equity,
            "start_equity": start,
            "drawdown": (start - equity) if start is not None and equity is not None else None,
        }

    def paused(self) -> Optional[str]:
        return self.runner.held or self.manager.paused

    def status(self) -> Dict[str, Any]:
        """GET /status: positions, open orders, PnL, health, the last decision (JSON-able, money as text)."""
        manager, snap = self.manager, self.manager.snap
        ws_stats = self.exchange.ws.stats if hasattr(self.exchange.ws, "stats") else {}
        counters = counts(self.exchange.counters)
        book = snap.book if snap is not None else None
        pos = snap.positions if snap is not None else None
        d = self.decisions
        return {
            "symbol": self.settings.SYMBOL,
            "run_tag": self.exchange.run_tag,
            "dry_run": bool(self.settings.DRY_RUN),
            "uptime_s": round(self.clock() - self.started_at, 3),
            "paused": self.paused(),
            "flatten": self.flatten_state,
            "health": {
                "connected": bool(snap.connected) if snap is not None else False,
                "synced": bool(snap.synced) if snap is not None else False,
                "market_data_age_s": (round(self.clock() - snap.last_update_ms / 1000, 3)
                                      if snap is not None and snap.last_update_ms else None),
                "ws_reconnects": ws_stats.get("reconnects", 0),
                "ws_resyncs": ws_stats.get("resyncs", 0),
                "ws_seq_gaps": ws_stats.get("seq_gap", 0),
                "quote_uptime": round(d.quoting_s / d.running_s, 4) if d.running_s else None,
            },
            "market": {"best_bid": money(book.best_bid) if book else None,
                       "best_ask": money(book.best_ask) if book else None},
            "positions": None if pos is None else {
                "long": {"qty": pos.long.qty, "entry_price": money(pos.long.entry_price)},
                "short": {"qty": pos.short.qty, "entry_price": money(pos.short.entry_price)},
                "net": pos.net,
            },
            "open_orders": [{"side": o.side, "price": money(o.price), "qty": o.qty, "remaining": o.remaining,
                             "close_flag": o.close_flag, "client_oid": o.client_oid, "order_id": o.order_id}
                            for o in self.own_orders()],
            "pnl": {k: money(v) for k, v in self.pnl().items()},
            "orders": {"sent": counters.get("orders_sent", 0), "cancelled": counters.get("orders_cancelled", 0),
                       "rejected": counters.get("orders_rejected", 0),
                       "in_doubt": counters.get("orders_in_doubt", 0)},
            "fills": (snap.fill_count - manager.start_fills) if snap is not None else 0,
            "contracts_traded": (snap.contracts_traded - manager.start_traded) if snap is not None else 0,
            "last_decision": None if d.last_at is None else {
                "at": round(d.last_at, 3), "latency_s": round(d.last_latency_s or 0.0, 6),
                "own_open_orders": d.last_open_orders, "decisions": d.count, **self.last_decision_event},
        }

    def summary(self) -> Dict[str, Any]:
        """The run's summary for the stop notification."""
        status = self.status()
        return {"ran_s": round(self.clock() - self.started_at), "orders": status["orders"],
                "fills": status["fills"], "contracts_traded": status["contracts_traded"], "pnl": status["pnl"],
                "net_position": (status["positions"] or {}).get("net")}
