"""What an opening order that crosses the book will book, worked out before it matches.

An order's margin reserved at its limit price is not what its fills book: a buy far
above the best ask fills at lower prices, where each contract costs more (inverse
contract), so the position margin ``rdiv(cost / leverage)`` per fill plus the taker
fees can exceed the limit-price margin.  ``available_after`` walks the opposite side
of the book exactly as ``engine.OrderBook.match`` would (price then time priority, at
the makers' prices) without changing anything, and returns the taker account's
available balance (``accounts.available``) once the order has been booked: position
margin and taker fee of each fill, order margin of the remainder that rests, and the
unrealised loss at the mark of a cross leg (a buy above the mark starts at a loss).

A fill against the account's own resting order (self-match) books the maker side into
the same account first, as ``Core._book_fills`` does: an opening maker order releases
its order margin and opens the other leg; a closing one reduces the very leg the
taker order opens (a buy takes a sell, and a closing sell closes the long), with the
same pro-rata rounding as ``Position.reduce``.  So two legs are followed: the taker's
and the other one.
"""
from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

from .accounts import FINE, LONG, SHORT, Account, Rate, upnl
from .engine import BUY

if TYPE_CHECKING:
    from .market import Market


def usage_bound(m: Market, qty: int, worst_ticks: int, unit: Rate, leg_cost: int) -> int:
    """A cheap upper bound of what ``available_after`` can take from the available
    balance (ledger units), for fee rates within [-1, 1] and leverages >= 1.

    With ``n <= qty`` fills of total cost ``C <= qty * face / worst + n`` (the worst price
    is the best ask for a buy, the limit for a sell) and the taker's leg holding
    ``leg_cost``: taker fee and margin <= 2C + 2n; self-matched makers' fees and margin
    <= 2C + 2n (their released order margin only adds); their closes lose at most
    ``leg_cost + C`` (a long's exit cost or a short's basis); the resting remainder
    ``times(qty, unit)``; the two legs' loss at the mark grows by at most
    ``2 * qty * im + leg_cost + 2C`` (mark units / FINE), + 1 for the floor.  An order
    whose bound fits needs no walk."""
    c = qty * m.cost_num // (worst_ticks * m.cost_den) + 2 * qty
    return 8 * c + 4 * qty + 2 * leg_cost + (qty * unit[0] + unit[1]) // unit[2] + \
        2 * (qty * m.im // FINE) + 4


def available_after(acct: Account, m: Market, side: int, ticks: int, qty: int,
                    unit: Rate, lev_rate: Rate, maker_rate: Rate, taker_rate: Rate,
                    lev_rate_of: Callable[[Decimal], Rate], is_cross: bool,
                    inv_marks: dict[str, int], exact_loss: int) -> int:
    """Available balance (ledger units, floored) of ``acct`` after an opening order of
    ``qty`` at ``ticks`` has taken what it crosses and rested the rest; pure.

    ``unit`` is the order's margin per contract (``Market.unit``), ``lev_rate`` the
    ``Rate`` of 1 / its leverage, ``exact_loss`` the account's present cross upnl loss in
    mark units; ``lev_rate_of`` gives a maker order's leverage rate (self-match)."""
    symbol = m.symbol
    book = m.book
    is_long = side == BUY
    if is_long:
        keys, limit = book.ask_keys, -ticks
    else:
        keys, limit = book.bid_keys, ticks
    levels = book.levels
    w = acct.wallets[m.asset]
    balance, om, pm = w.balance, w.order_margin, w.pos_margin
    cost2, cost_den = 2 * m.cost_num, m.cost_den
    lr0, lr1, lr2 = lev_rate
    tr0, tr1, tr2 = taker_rate
    aid = acct.id
    positions = acct.positions
    leg = positions.get((symbol, LONG if is_long else SHORT))
    q0, c0, m0 = (leg.qty, leg.cost, leg.margin) if leg is not None else (0, 0, 0)
    lq, lc, lm = q0, c0, m0            # the taker's leg as the fills go
    oq = oc = 0                        # contracts and cost added to the other leg
    left = qty
    i = len(keys)
    while left and i:
        i -= 1
        key = keys[i]
        if key < limit:
            break
        px = key if key > 0 else -key
        d = px * cost_den
        for maker in levels[key].orders.values():
            mleft = maker.qty - maker.filled
            q = left if left < mleft else mleft
            cost = (q * cost2 + d) // (2 * d)
            if maker.account_id == aid:
                balance -= (cost * maker_rate[0] + maker_rate[1]) // maker_rate[2]
                if maker.close_flag == 0:
                    rest = mleft - q
                    u = maker.unit
                    om -= maker.margin - ((rest * u[0] + u[1]) // u[2] if rest else 0)
                    r = lev_rate_of(maker.leverage)
                    pm += (cost * r[0] + r[1]) // r[2]
                    oq += q
                    oc += cost
                else:                  # Position.reduce of the taker's leg
                    if q == lq:
                        basis, released = lc, lm
                    else:
                        basis = (2 * lc * q + lq) // (2 * lq)
                        released = (2 * lm * q + lq) // (2 * lq)
                    balance += basis - cost if is_long else cost - basis
                    pm -= released
                    lq -= q
                    lc -= basis
                    lm -= released
            fill_pm = (cost * lr0 + lr1) // lr2
            pm += fill_pm
            balance -= (cost * tr0 + tr1) // tr2
            lq += q
            lc += cost
            lm += fill_pm
            left -= q
            if not left:
                break
    if left:
        om += (left * unit[0] + unit[1]) // unit[2]
    loss = exact_loss
    if is_cross:
        im = inv_marks[symbol]
        loss += min(upnl(is_long, lq, lc, im), 0) - min(upnl(is_long, q0, c0, im), 0)
        if oq:
            other = positions.get((symbol, SHORT if is_long else LONG))
            p, c = (other.qty, other.cost) if other is not None else (0, 0)
            loss += min(upnl(not is_long, p + oq, c + oc, im), 0) \
                - min(upnl(not is_long, p, c, im), 0)
    return balance - om - pm + loss // FINE
