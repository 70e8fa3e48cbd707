"""The queue model: when would our resting orders have filled against a recorded market?

Pure integer bookkeeping (prices in ticks, sizes in contracts): no exchange, no clock.

The recorded book is the *other* liquidity. Rules (docs/backtesting-markets.md explains why):

* **Joining.** Our order joins the back of the queue at its price: the quantity ahead of it
  is the level's recorded size when it arrives (0 inside the spread). Orders of ours at the
  same price queue among themselves in the order they joined.
* **Trades at our price** first consume the quantity ahead of us, then fill us; what is
  left of the trade goes on down the queue (to our later orders, then to the recorded
  liquidity behind us).
* **Trades through our price** (a taker buy above our ask, a taker sell below our bid)
  fill us at our price, up to the trade's size: we were better priced than the liquidity
  it took, so its taker would have met us first. A trade's size is shared best price
  first, so all our fills from one trade never exceed its size.
* **Level decreases** (cancels) come *from the back* of the queue: the quantity ahead of us
  shrinks only once the level is smaller than it (``ahead = min(ahead, new size)``).
  Conservative (we never gain places from other traders' cancels we cannot see the
  position of), and consistent with trades: the book update that reports a trade's
  consumption of a level is then a no-op for the queue, never counted twice.
* **Level increases** join behind us: the quantity ahead does not change.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Hashable, List, Tuple

BID = "bid"
ASK = "ask"
BUY = "buy"
SELL = "sell"

Fill = Tuple[Hashable, int, int]   # (order key, qty, price in ticks)


@dataclass
class Queued:
    """One of our resting orders: side, price, what is left to fill, recorded qty ahead."""
    key: Hashable
    side: str
    ticks: int
    remaining: int
    ahead: int
    seq: int


class QueueModel:
    """Recorded book sizes and our orders' queue positions; ``trade`` returns our fills."""

    def __init__(self) -> None:
        self.levels: Dict[str, Dict[int, int]] = {BID: {}, ASK: {}}
        self.orders: Dict[Hashable, Queued] = {}
        self._at: Dict[Tuple[str, int], List[Queued]] = {}
        self._seq = 0

    # ------------------------------------------------------------------ recorded book
    def level(self, side: str, ticks: int) -> int:
        """Recorded size at ``ticks`` on ``side`` (0 if none)."""
        return self.levels[side].get(ticks, 0)

    def set_level(self, side: str, ticks: int, qty: int) -> None:
        """The recorded level's new total size (0 removes it). Cancels come from the back."""
        if qty < 0:
            raise ValueError("a level size cannot be negative")
        book = self.levels[side]
        if qty:
            book[ticks] = qty
        else:
            book.pop(ticks, None)
        for q in self._at.get((side, ticks), ()):
            if q.ahead > qty:
                q.ahead = qty

    # ------------------------------------------------------------------ our orders
    def join(self, key: Hashable, side: str, ticks: int, qty: int) -> Queued:
        """Our order arrives at the back of its level's queue."""
        if side not in (BID, ASK):
            raise ValueError(f"side must be {BID!r} or {ASK!r}")
        if qty <= 0:
            raise ValueError("an order's qty must be positive")
        if key in self.orders:
            raise ValueError(f"order {key!r} is already queued")
        self._seq += 1
        q = Queued(key, side, ticks, qty, self.level(side, ticks), self._seq)
        self.orders[key] = q
        self._at.setdefault((side, ticks), []).append(q)
        return q

    def leave(self, key: Hashable) -> None:
        """Our order is gone (cancelled or filled elsewhere); unknown keys are ignored."""
        q = self.orders.pop(key, None)
        if q is None:
            return
        same = self._at[(q.side, q.ticks)]
        same.remove(q)
        if not same:
            del self._at[(q.side, q.ticks)]

    def set_remaining(self, key: Hashable, remaining: int) -> None:
        """Our order was partly filled outside the model (it keeps its place)."""
        if remaining <= 0:
            self.leave(key)
        else:
            self.orders[key].remaining = remaining

    # ------------------------------------------------------------------ trades
    def trade(self, taker_side: str, ticks: int, qty: int) -> List[Fill]:
        """A recorded trade: our fills (key, qty, our price), best price first.

        Filled orders leave the model. The recorded level at ``ticks`` loses what the trade
        took of it (its book update will say the same; applying both is harmless)."""
        if taker_side not in (BUY, SELL):
            raise ValueError(f"a trade's side must be {BUY!r} or {SELL!r}")
        if qty <= 0:
            return []
        side = ASK if taker_side == BUY else BID
        fills: List[Fill] = []
        left = qty
        # through: our orders strictly better than the trade's price, best first, then by arrival
        better = [q for q in self.orders.values() if q.side == side and
                  (q.ticks < ticks if side == ASK else q.ticks > ticks)]
        better.sort(key=lambda q: (q.ticks if side == ASK else -q.ticks, q.seq))
        for q in better:
            if not left:
                break
            f = min(left, q.remaining)
            left -= f
            fills.append((q.key, f, q.ticks))
            q.remaining -= f
        # at the trade's price: the queue, recorded qty ahead first
        recorded_used = 0
        for q in self._at.get((side, ticks), ()):
            if not left:
                break
            take = min(left, max(0, q.ahead - recorded_used))
            recorded_used += take
            left -= take
            f = min(left, q.remaining)
            if f:
                left -= f
                fills.append((q.key, f, q.ticks))
                q.remaining -= f
        recorded_used += left      # the rest of the trade took recorded liquidity behind us
        for q in self._at.get((side, ticks), ()):
            q.ahead = max(0, q.ahead - recorded_used)
        size = self.level(side, ticks)
        if size:
            self.set_level(side, ticks, max(0, size - recorded_used))
        for key, _, _ in fills:
            if self.orders[key].remaining == 0:
                self.leave(key)
        return fills

    def ours(self, side: str, ticks: int) -> List[Queued]:
        """Our orders at one price, in queue order."""
        return list(self._at.get((side, ticks), ()))


__all__ = ["ASK", "BID", "BUY", "SELL", "Fill", "QueueModel", "Queued"]
