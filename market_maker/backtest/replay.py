"""Recorded markets: ``replay FILE`` (a ``record`` recording) and ``events FILE`` (JSON lines).

How a recorded book meets the bot on the simulated exchange (docs/backtesting-markets.md):

* **What the bot sees.** One liquidity-provider account shows every recorded level as one
  resting order, so the simulator's public book is the recording merged with the bot's
  orders. A level change resizes that order in place (``hit.resize``: one book message, as
  on the venue); removals go before new levels, and a new level that would cross the LP's
  own other side waits until the recording uncrosses.
* **When the bot fills.** The bot's resting orders are queued in ``queue.QueueModel``
  (joined when first seen, at the level's recorded size). A recorded trade asks the queue
  model which of them it fills; each fill is booked by ``hit.hit``: a taker account's order
  against exactly that order, at its price, through the simulator's ledger (fees, margin,
  positions, the bot's execution row and a public trade).
* **When the bot takes.** A bot order that crosses the shown book trades with the LP by the
  simulator's own matching. A recorded level that comes to cross a resting bot order
  (the recording's sellers reaching our bid) fills it the same way. The taken liquidity stays
  taken until the recording next changes that level (no other market impact).
* The mark (= index) price follows the recorded mid (the last trade when a side is empty).

Files are read lazily (a dense hour is ~600,000 events); the factory first reads the file
once, also lazily, so that a bad file fails with its line before the run begins.
"""
from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Dict, Iterator, List, Optional, Set, Tuple

from ..sim.engine import BUY, SELL
from ..sim.exchange import SimError
from .eventfile import Event, EventReader, scan
from .hit import hit, resize
from .market import MarketError, register
from .queue import ASK, BID, QueueModel

if TYPE_CHECKING:
    from ..settings import Settings
    from ..sim.engine import Order
    from ..sim.exchange import Exchange

LP_BALANCE = Decimal("1000000000")   # the recorded liquidity never runs out of margin
SIDE_OF = {BID: BUY, ASK: SELL}
QUEUE_SIDE = {BUY: BID, SELL: ASK}


class BookReplay:
    """A recorded order book and its trades, replayed against the bot (see module doc)."""

    def __init__(self, path: str, tick: Optional[Decimal] = None, recording: bool = False,
                 qty_scale: Decimal = Decimal(1), check: bool = True) -> None:
        self.path = path
        self._args = (tick, recording, qty_scale)
        summary = scan(path, tick, recording, qty_scale) if check else None
        self.tick_size: Optional[Decimal] = summary.tick if summary else tick
        self.first_ns = summary.first_ns if summary else None
        self.events_total = summary.count if summary else None
        self.queue = QueueModel()
        self.fills = 0                  # queue-model fills booked
        self.filled_qty = 0

    # ------------------------------------------------------------------ MarketModel
    def attach(self, exchange: "Exchange", symbol: str, start_ms: int) -> None:
        self.ex = exchange
        self.symbol = symbol
        spec = exchange.instruments[symbol]
        self._scale = 1
        if self.tick_size is not None:
            ratio = self.tick_size / spec.tick_size
            if ratio != ratio.to_integral_value() or ratio < 1:
                raise MarketError(f"{self.path}: its tick size {self.tick_size} is not a multiple of the "
                                  f"simulated instrument's tick size {spec.tick_size} (SIM_TICK_SIZE)")
            self._scale = int(ratio)
        self.lp = exchange.open_account("replay-lp", LP_BALANCE, spec.asset)
        self.taker = exchange.open_account("replay-taker", LP_BALANCE, spec.asset)
        self._mine = {self.lp, self.taker}
        self._lp_acct = exchange.account(self.lp)
        self.start_ms = start_ms
        self._events: Iterator[Event] = iter(EventReader(self.path, *self._args))
        self._next = self._pull()
        self._base_ns = self.first_ns if self.first_ns is not None else (self._next.ts_ns if self._next else 0)
        self.shown: Dict[Tuple[int, int], int] = {}            # (sim side, ticks) -> the LP's order id
        self.recorded: Dict[Tuple[int, int], int] = {}          # (sim side, ticks) -> recorded size
        self._dirty: Set[Tuple[int, int]] = set()
        self._waiting: Set[Tuple[int, int]] = set()             # levels held back: would cross the LP
        self._stale: Set[Tuple[int, int]] = set()               # levels a new snapshot has not repeated yet
        self._ours: Dict[int, "Order"] = {}
        self._foreign: List[int] = []
        self._n_accounts = 0
        self._last_trade: Optional[int] = None
        self._mark: Optional[Decimal] = None
        self._tick = spec.tick_size
        self._best_bid: Optional[int] = None
        self._best_ask: Optional[int] = None
        self._touch_dirty = False

    def next_ms(self) -> Optional[int]:
        if self._next is None:
            return None
        return self.start_ms + (self._next.ts_ns - self._base_ns) // 1_000_000

    def step(self, now_ms: int) -> None:
        self._sync_ours()
        base, start = self._base_ns, self.start_ms
        ev = self._next
        while ev is not None and start + (ev.ts_ns - base) // 1_000_000 <= now_ms:
            if ev.kind == "book":
                self._book(ev)
            elif ev.kind == "trade":
                self._trade(ev, now_ms)
            else:
                self._reset()
            ev = self._pull()
        self._next = ev
        if self._stale:
            self._drop_stale()
        self._show(now_ms)
        self._follow_mark(now_ms)

    # ------------------------------------------------------------------ reading
    def _pull(self) -> Optional[Event]:
        return next(self._events, None)

    # ------------------------------------------------------------------ the bot's orders
    def _sync_ours(self) -> None:
        """Queue the bot's new resting orders; forget the gone; note fills from matching."""
        ex = self.ex
        ids = ex.account_ids()
        if len(ids) != self._n_accounts:
            self._n_accounts = len(ids)
            self._foreign = [a for a in ids if a not in self._mine and not ex.account(a).internal]
        queue, ours, symbol = self.queue, self._ours, self.symbol
        seen = set()
        for aid in self._foreign:
            for oid, o in ex.account(aid).open_orders.items():
                if o.symbol != symbol:
                    continue
                seen.add(oid)
                left = o.qty - o.filled
                q = queue.orders.get(oid)
                if q is None:
                    ours[oid] = o
                    queue.join(oid, BID if o.side == BUY else ASK, o.ticks, left)
                elif q.remaining != left:
                    queue.set_remaining(oid, left)
        for oid in [k for k in ours if k not in seen]:
            del ours[oid]
            queue.leave(oid)

    # ------------------------------------------------------------------ events
    def _book(self, ev: Event) -> None:
        ticks = ev.ticks * self._scale
        side = BUY if ev.side == BID else SELL
        key = (side, ticks)
        self._stale.discard(key)
        if ev.qty:
            self.recorded[key] = ev.qty
        else:
            self.recorded.pop(key, None)
        self.queue.set_level(ev.side, ticks, ev.qty)
        self._dirty.add(key)
        best = self._best_bid if side == BUY else self._best_ask
        if best is None or (ticks >= best if side == BUY else ticks <= best):
            self._touch_dirty = True

    def _trade(self, ev: Event, now_ms: int) -> None:
        ticks = ev.ticks * self._scale
        self._last_trade = ticks
        for oid, qty, _ in self.queue.trade(ev.side, ticks, ev.qty):
            order = self._ours.get(oid)
            if order is not None and order.is_open:
                self.filled_qty += hit(self.ex, self.taker, order, qty, now_ms)
                self.fills += 1

    def _reset(self) -> None:
        """A new snapshot follows (same receive time): the levels it does not repeat are removed at the
        end of the step; those it repeats are updated as any level change (our queue places stay)."""
        self._stale = set(self.recorded)

    def _drop_stale(self) -> None:
        for key in self._stale:
            side, ticks = key
            self.recorded.pop(key, None)
            self.queue.set_level(BID if side == BUY else ASK, ticks, 0)
            self._dirty.add(key)
            self._touch_dirty = True
        self._stale = set()

    # ------------------------------------------------------------------ the LP's orders
    def _show(self, now_ms: int) -> None:
        """Bring the LP's orders to the recorded sizes: resize and remove first, then add levels."""
        dirty = self._dirty
        if self._waiting:
            dirty |= self._waiting
            self._waiting = set()
        if not dirty:
            return
        shown, recorded, lp_open, ex = self.shown, self.recorded, self._lp_acct.open_orders, self.ex
        new = []
        for key in sorted(dirty):
            target = recorded.get(key, 0)
            oid = shown.get(key)
            order = lp_open.get(oid) if oid is not None else None
            if order is None:
                if oid is not None:
                    del shown[key]            # taken by the bot
                if target:
                    new.append((key, target))
            elif not target:
                ex.cancel_order(self.lp, self.symbol, oid, now_ms)
                del shown[key]
            elif target != order.qty - order.filled:
                resize(ex, order, target, now_ms)
        dirty.clear()
        for key, target in new:
            if self._crosses_lp(key):
                self._waiting.add(key)
                continue
            oid = self._place(key, target, now_ms)
            if oid is not None:
                shown[key] = oid

    def _place(self, key: Tuple[int, int], qty: int, now_ms: int) -> Optional[int]:
        side, ticks = key
        spec = self.ex.instruments[self.symbol]
        try:
            row = self.ex.place_order(self.lp, self.symbol, side, 0, ticks * spec.tick_size, qty, None, now_ms)
        except SimError as exc:
            raise MarketError(f"{self.path}: the simulator refused a recorded level "
                              f"({'bid' if side == BUY else 'ask'} {qty} at {ticks * spec.tick_size}): {exc}") from None
        oid = int(row["order_id"])
        return oid if oid in self._lp_acct.open_orders else None

    def _crosses_lp(self, key: Tuple[int, int]) -> bool:
        """Would an LP order at ``key`` trade with the LP's own other side?"""
        side, ticks = key
        m = self.ex.market(self.symbol)
        book = m.book
        keys = book.ask_keys if side == BUY else book.bid_keys
        lp = self.lp
        for i in range(len(keys) - 1, -1, -1):
            k = keys[i]
            price = -k if side == BUY else k
            if (side == BUY and price > ticks) or (side == SELL and price < ticks):
                return False
            if any(o.account_id == lp for o in book.levels[k].orders.values()):
                return True
        return False

    # ------------------------------------------------------------------ mark
    def _follow_mark(self, now_ms: int) -> None:
        """The mark follows the recorded mid (the last trade when a side is empty); the touch is
        recomputed only when a step changed a level at or inside it."""
        if self._touch_dirty:
            self._touch_dirty = False
            recorded = self.recorded
            self._best_bid = max((t for s, t in recorded if s == BUY), default=None)
            self._best_ask = min((t for s, t in recorded if s == SELL), default=None)
        bid, ask = self._best_bid, self._best_ask
        tick = self._tick
        if bid is not None and ask is not None:
            mark = (bid + ask) * tick / 2
        elif self._last_trade is not None:
            mark = self._last_trade * tick
        else:
            return
        if mark != self._mark and mark > 0:
            self._mark = mark
            self.ex.set_mark_price(self.symbol, mark, now_ms)


def replay_market(settings: "Settings", arg: Optional[str], **options: object) -> BookReplay:
    """``--market replay FILE``: a recording made by ``python marketmaker record``."""
    if not arg:
        raise MarketError("market 'replay' needs a FILE (a recording made by `python marketmaker record`)")
    return BookReplay(arg, recording=True, **options)   # type: ignore[arg-type]


def events_market(settings: "Settings", arg: Optional[str], tick: Optional[Decimal] = None,
                  **options: object) -> BookReplay:
    """``--market events FILE [--tick T]``: a JSON-lines event file (see eventfile.py)."""
    if not arg:
        raise MarketError("market 'events' needs a FILE (JSON lines of book and trade events)")
    return BookReplay(arg, tick=tick, **options)   # type: ignore[arg-type]


register("replay", replay_market)
register("events", events_market)

__all__ = ["BookReplay", "events_market", "replay_market"]
