"""Builders shared by the tests of market_maker.quoting: params, a one-level book, orders, positions."""
from __future__ import annotations

from decimal import Decimal as D

from market_maker.models import LONG, SHORT, Book, DesiredOrder, Order, Position, Positions
from market_maker.quoting import QuoteParams


def params(**kw) -> QuoteParams:
    base = dict(
        order_pairs=3, order_start_size=100, order_step_size=100,
        random_order_size=False, min_order_size=50, max_order_size=500,
        interval=D("0.005"), min_spread=D("0"), maintain_spreads=False,
        post_only=False, check_position_limits=False, min_position=-1000,
        max_position=1000, tick_size=D("0.5"),
    )
    base.update(kw)
    return QuoteParams(**base)


def book(bid, ask) -> Book:
    bids = ((D(str(bid)), 10),) if bid is not None else ()
    asks = ((D(str(ask)), 10),) if ask is not None else ()
    return Book(bids=bids, asks=asks)


def order(side, price, qty=100, close_flag=0, filled=0, status=2, oid="o") -> Order:
    return Order(order_id=oid, client_oid="c" + oid, side=side, close_flag=close_flag,
                 price=D(str(price)), qty=qty, filled_qty=filled, status=status)


def pos(long_qty=0, long_avail=None, short_qty=0, short_avail=None) -> Positions:
    return Positions(
        long=Position(LONG, qty=long_qty, avail_qty=long_qty if long_avail is None else long_avail),
        short=Position(SHORT, qty=short_qty,
                       avail_qty=short_qty if short_avail is None else short_avail),
    )


def px(orders):
    return [o.price for o in orders]


def do(side, price, qty, close_flag=0):
    return DesiredOrder(side=side, price=D(str(price)), qty=qty, close_flag=close_flag)
