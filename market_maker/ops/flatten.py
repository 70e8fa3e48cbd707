"""Flatten: close the net position with limit orders stepped toward the touch (GTE has no market order).

The first order joins our side of the book (a sell at the best ask, a buy at the best bid);
each FLATTEN_STEP_SECONDS it is replaced FLATTEN_STEP_TICKS further toward the other side,
crossing the spread when it must, but never past FLATTEN_SLIPPAGE from the mid at the
command: a sell never below ``mid x (1 - slippage)``, a buy never above ``mid x (1 + slippage)``.
The orders close (``close_flag`` 1) the leg that makes the net position, so a flatten can
never open a position. ``closing_order`` is the pure rule; ``Flatten`` runs it in the
manager's thread.
"""
from __future__ import annotations

import logging
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, Dict, Optional

from ..models import BUY, SELL, DesiredOrder

log = logging.getLogger("market_maker.ops")


def slippage_bounds(mid: Decimal, slippage: Decimal, tick: Decimal) -> "tuple[Decimal, Decimal]":
    """(lowest sell, highest buy): ``mid`` -/+ ``slippage``, rounded inward to the tick."""
    low = (mid * (1 - slippage) / tick).to_integral_value(ROUND_CEILING) * tick
    high = (mid * (1 + slippage) / tick).to_integral_value(ROUND_FLOOR) * tick
    return low, high


def closing_order(net: int, best_bid: Optional[Decimal], best_ask: Optional[Decimal], mid: Decimal, step: int,
                  tick: Decimal, step_ticks: int, slippage: Decimal) -> Optional[DesiredOrder]:
    """The order of step ``step`` (0, 1, ...) closing a net position of ``net`` contracts; None when flat."""
    if net == 0:
        return None
    low, high = slippage_bounds(mid, slippage, tick)
    move = step * step_ticks * tick
    if net > 0:
        start = best_ask if best_ask is not None else (best_bid + tick if best_bid is not None else mid)
        return DesiredOrder(SELL, max(start - move, low), net, close_flag=1)
    start = best_bid if best_bid is not None else (best_ask - tick if best_ask is not None else mid)
    return DesiredOrder(BUY, min(start + move, high), -net, close_flag=1)


class Flatten:
    """One flatten in progress; ``advance`` is called in the manager's thread until it returns True."""

    def __init__(self, view: Any):
        self.view = view
        self.exchange = view.exchange
        settings = view.settings
        self.slippage: Decimal = settings.FLATTEN_SLIPPAGE
        self.step_s: float = settings.FLATTEN_STEP_SECONDS
        self.step_ticks: int = settings.FLATTEN_STEP_TICKS
        self.timeout: float = settings.FLATTEN_TIMEOUT
        snap = self.exchange.snapshot(1)
        book = snap.book
        if book.best_bid is None or book.best_ask is None:
            raise ValueError("the order book has an empty side: no mid to bound the slippage")
        self.mid = (book.best_bid + book.best_ask) / 2
        self.tick = view.manager.tick_size
        self.started = self.exchange.clock.monotonic()
        self.next_at = self.started
        self.step = 0
        self.start_net = snap.positions.net
        low, high = slippage_bounds(self.mid, self.slippage, self.tick)
        self.state: Dict[str, Any] = {"state": "running", "start_net": self.start_net, "net": self.start_net,
                                      "mid": format(self.mid, "f"), "lowest_sell": format(low, "f"),
                                      "highest_buy": format(high, "f"), "steps": 0, "price": None, "prices": []}
        log.info("Flatten: closing a net position of %+d contracts, within %s of mid %s (%s to %s)",
                 self.start_net, format(self.slippage, "f"), format(self.mid, "f"), format(low, "f"),
                 format(high, "f"))

    def advance(self) -> bool:
        now = self.exchange.clock.monotonic()
        net = self.exchange.snapshot(1).positions.net
        self.state["net"] = net
        if net == 0:
            return self.finish("flat", "the net position is closed")
        if now - self.started >= self.timeout:
            return self.finish("timed out", f"{net:+d} contracts left after {self.timeout:.0f}s (FLATTEN_TIMEOUT); "
                                            f"the slippage limit may be too tight for the book")
        if now < self.next_at:
            return False
        self.exchange.cancel_all_own("flatten: replacing the closing order")
        snap = self.exchange.snapshot(1)  # fresher after the cancels' round trips
        net = snap.positions.net
        order = closing_order(net, snap.book.best_bid, snap.book.best_ask, self.mid, self.step, self.tick,
                              self.step_ticks, self.slippage)
        if order is None:
            return self.finish("flat", "the net position is closed")
        log.info("Flatten step %d: %s %d @ %s to close", self.step, order.side, order.qty, format(order.price, "f"))
        self.exchange.create_order(order)
        self.step += 1
        self.state.update(steps=self.step, price=format(order.price, "f"), net=net)
        self.state["prices"] = [*self.state["prices"], format(order.price, "f")][-50:]
        self.next_at = now + self.step_s
        return False

    def finish(self, state: str, why: str) -> bool:
        if state != "flat":
            self.exchange.cancel_all_own("flatten ended")
        else:
            self.exchange.cancel_all_own("flatten done")
        self.state["state"] = state
        log.info("Flatten %s: %s; the bot stays paused until resumed", state, why)
        return True

    def abort(self) -> None:
        self.state["state"] = "aborted"
        self.exchange.cancel_all_own("flatten aborted")
