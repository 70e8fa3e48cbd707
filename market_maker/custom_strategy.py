"""An example strategy: a tighter ladder that leans against the position.

Run it with `python marketmaker --strategy market_maker.custom_strategy:CustomOrderManager`
(or STRATEGY = "market_maker.custom_strategy:CustomOrderManager" in settings.py).
The hook is ``place_orders()``: read ``self.snap`` (book, own orders, positions,
margin), decide the orders you want, and hand them to ``converge_orders()``,
which keeps, cancels and creates with as few API calls as possible.
"""
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import List

from market_maker.market_maker import OrderManager
from market_maker.models import BUY, SELL, DesiredOrder


class CustomOrderManager(OrderManager):
    """Quotes ORDER_PAIRS levels one tick apart, shifted away from the side we are long or short."""

    def place_orders(self) -> None:
        book, tick = self.snap.book, self.tick_size
        lean = self.snap.positions.net // max(self.settings.ORDER_START_SIZE, 1)  # one tick per start-size held
        first_buy = book.best_bid - tick * max(lean, 0)
        first_sell = book.best_ask + tick * max(-lean, 0)
        buys: List[DesiredOrder] = []
        sells: List[DesiredOrder] = []
        for i in range(self.settings.ORDER_PAIRS):
            size = self.settings.ORDER_START_SIZE + i * self.settings.ORDER_STEP_SIZE
            buys.append(DesiredOrder(BUY, snap_down(first_buy - i * tick, tick), size))
            sells.append(DesiredOrder(SELL, snap_up(first_sell + i * tick, tick), size))
        self.converge_orders(buys, sells)


def snap_down(price: Decimal, tick: Decimal) -> Decimal:
    return (price / tick).to_integral_value(ROUND_FLOOR) * tick


def snap_up(price: Decimal, tick: Decimal) -> Decimal:
    return (price / tick).to_integral_value(ROUND_CEILING) * tick
