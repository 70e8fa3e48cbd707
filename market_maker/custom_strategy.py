"""An example strategy: a tight ladder one tick apart that leans against the position.

Run it with `python marketmaker --strategy market_maker.custom_strategy:CustomOrderManager`
(or STRATEGY = "market_maker.custom_strategy:CustomOrderManager" in settings.py).

The hook is ``place_orders()``: read ``self.snap`` (book, positions, margin,
instrument) and ``self.own_orders()``, decide the orders you want resting, and
hand them to ``converge_orders()``, which keeps, cancels and creates with as few
API calls as possible. The pure helpers of ``market_maker.quoting`` do the
fiddly parts: the client-side post-only clamp and the close/open split that
GTE's two-way positions need.
"""
from typing import List

from market_maker import quoting
from market_maker.market_maker import OrderManager
from market_maker.models import BUY, SELL, DesiredOrder


class CustomOrderManager(OrderManager):
    """ORDER_PAIRS levels per side, one tick apart; each ORDER_START_SIZE of net position
    moves both sides one tick against it, so the bot sells more eagerly when long."""

    def place_orders(self) -> None:
        book, tick, positions = self.snap.book, self.tick_size, self.snap.positions
        lean = positions.net // max(self.settings.ORDER_START_SIZE, 1)
        first_buy = book.best_bid - tick * lean
        first_sell = book.best_ask - tick * lean
        buys: List[DesiredOrder] = []
        sells: List[DesiredOrder] = []
        for i in range(self.settings.ORDER_PAIRS):
            size = self.settings.ORDER_START_SIZE + i * self.settings.ORDER_STEP_SIZE
            buys.append(DesiredOrder(BUY, first_buy - i * tick, size))
            sells.append(DesiredOrder(SELL, first_sell + i * tick, size))
        buys = [o for o in buys if o.price > 0]
        own = self.own_orders()
        # never take liquidity, then close what we hold before opening the other way
        buys = quoting.clamp_post_only(buys, book, tick)
        sells = quoting.clamp_post_only(sells, book, tick)
        buys = quoting.split_close_open(buys, quoting.close_capacity(BUY, positions, own))
        sells = quoting.split_close_open(sells, quoting.close_capacity(SELL, positions, own))
        pairs = self.settings.ORDER_PAIRS
        self.converge_orders(list(buys[:pairs]), list(sells[:pairs]))
