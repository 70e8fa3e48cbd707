"""A taker trade against exactly one resting order, booked by the simulator's ledger.

The queue model decides that one of the bot's orders filled; the simulator's price-time
matching would give a taker the recorded liquidity ahead of it first. ``hit`` skips the
matching step only: the fill goes through the simulator's own bookkeeping (``Core._book_fills``:
positions, margins, fees into the fee account) and publication (``Exchange._publish_fills``:
the bot's execution and order rows, the public trade, the changed book level), exactly as a
matched order's fill would. The taker account must be able to carry the trade (give it a
large balance): there is no margin check here.
"""
from __future__ import annotations

from bisect import bisect_left
from typing import Optional

from ..sim import accounts as ac
from ..sim.accounts import LONG, SHORT, Wallet
from ..sim.market import Market
from ..sim.engine import BUY, CREATED, FILLED, Order
from ..sim.exchange import Event, Exchange
from ..sim.rows import level_row, order_row


def hit(ex: Exchange, taker_id: int, maker: Order, qty: int, now_ms: int) -> int:
    """Fill up to ``qty`` of the resting order ``maker`` at its price by a taker order of
    ``taker_id`` (which closes its opposite position when it can). Returns the qty filled."""
    q = min(qty, maker.qty - maker.filled)
    if q <= 0 or not maker.is_open:
        return 0
    m = ex.market(maker.symbol)
    acct = ex.account(taker_id)
    symbol, asset, ticks = m.symbol, m.asset, maker.ticks
    side = 1 - maker.side
    # the maker's share leaves its level, as engine.OrderBook.match does
    book = m.book
    key = ticks if maker.side == BUY else -ticks
    level = book.levels[key]
    if key not in book.touched:
        book.touched[key] = True
    maker.filled += q
    level.total -= q
    if maker.filled == maker.qty:
        del level.orders[maker.oid]
        if not level.orders:
            del book.levels[key]
            keys = book.bid_keys if key > 0 else book.ask_keys
            del keys[bisect_left(keys, key)]
    # the taker order, as Core.place builds it
    setting = acct.setting(symbol, ex.config.default_leverage)
    lev = setting.cross_lev
    closes = acct.positions.get((symbol, LONG if side != BUY else SHORT))
    if closes is not None and closes.qty - closes.closing >= q:
        close_flag, unit, margin = 1, None, 0
        closes.closing += q
    else:
        close_flag = 0
        unit = m.unit(ticks, lev)
        margin = ac.times(q, unit)
        acct.wallet(asset).order_margin += margin
    oid = ex._next_oid
    ex._next_oid = oid + 1
    order = Order(oid, acct.id, symbol, side, close_flag, ticks, q, None, now_ms, lev, unit, margin)
    acct.orders[oid] = order
    acct.open_orders[oid] = order
    order.filled = q
    fills = ex._book_fills(m, acct, order, [(maker, q, ticks)])
    order.status = FILLED
    ex._finalize(acct, order)
    # events, as Exchange.place_order publishes a filled order
    fmt = m.fmt
    ex._events.append(Event("order", acct.id, symbol, None, "insert", order_row,
                            (order, fmt, asset, CREATED, 0, 0, 0, margin)))
    ex._dirty_margin[(acct.id, asset)] = None
    ex._publish_fills(m, order, fills, now_ms)
    row = order_row(order, fmt, asset, FILLED, q, order.value, order.fee, order.margin)
    ex._events.append(Event("order", acct.id, symbol, row, "update"))
    ex._flush()
    return q



def resize(ex: Exchange, order: Order, remaining: int, now_ms: int, market: Optional[Market] = None,
           wallet: Optional[Wallet] = None) -> None:
    """Set a resting order's unfilled size in place (an amend; > 0) and publish its level.

    For the replay's liquidity-provider orders: one order per recorded level, resized as the
    recording changes it, so a level change is one book message as it was on the venue. Its
    order margin follows; there is no margin check (the account has a large balance).
    ``market`` and ``wallet`` (the order's market and its account's wallet of the settle
    asset) may be passed to save their look-ups: a replay resizes ~150 levels a second."""
    m = market or ex.market(order.symbol)
    key = order.ticks if order.side == BUY else -order.ticks
    level = m.book.levels[key]
    delta = remaining - (order.qty - order.filled)
    if not delta:
        return
    order.qty += delta
    level.total += delta
    if order.close_flag == 0:
        unit = order.unit
        margin = (remaining * unit[0] + unit[1]) // unit[2]        # accounts.times, inlined
        w = wallet or ex.account(order.account_id).wallet(m.asset)
        w.order_margin += margin - order.margin
        order.margin = margin
    order.tpl = None
    ex._events.append(Event("order_book", None, m.symbol, None, "update", level_row,
                            (m.fmt, m.symbol, m.asset, order.side, order.ticks, level.total)))

__all__ = ["hit", "resize"]
