"""PnL attribution of an inverse contract, exact in integers (pure functions, no I/O).

Units: every amount is an integer count of **units** of 1e-20 of the settle currency
(``SCALE``; the exchange's own "mark unit"), and ``1/price`` of one contract is
``inverse(price)``: face / price rounded to the nearest unit (ties upward), exactly as the
exchange computes its inverse mark. With that one rounding rule fixed, every identity
below holds exactly in integers, so the components add up to the net PnL with no hidden
remainder. A buy of q at p moves q * inverse(p) of value in, a sell out; a net position N
(long - short) is worth -N * inverse(m) at price m.

Components, for fills i (side s = +1 buy, -1 sell) each assigned to a mid observation m_i
(the latest mid at or before the fill, or the first mid):

* spread capture   sum s q (inv(p) - inv(m_i))
* inventory        sum over consecutive mids k -> k+1 of N_k (inv(m_k) - inv(m_k+1)),
                   N_k the net position after the fills assigned to k (or before)
* mark vs mid      N_end (inv(m_last) - inv(M_end)) - N_start (inv(m_first) - inv(M_start)):
                   the exchange marks the position at its mark price M, not the mid
* fees             - sum of the fees booked by the exchange (a rebate is a negative fee)
* funding          sum of the funding amounts
* ledger rounding  what the exchange's 1e-12 ledger books beyond the exact values: each fill's
                   cost rounded to 1e-12 (c_i = round(q / p, 1e-12)) and the unrealised PnL
                   rounded to 1e-12 at both ends (E = round(-N * inv(M), 1e-12))
* unexplained      exchange equity change - all of the above (0 when the journal holds every
                   fill, fee and funding payment and the marks of the equity rows)

Summing by parts (telescoping) spread + inventory = sum s q inv(p) - N_end inv(m_last) +
N_start inv(m_first); adding mark vs mid and the rounding gives sum s c_i + E_end - E_start,
which is the exchange's trading PnL between two equity rows: a close's realised PnL uses a
pro-rata cost basis, but whatever the rounding of that basis, it moves between the balance
and the position's cost and cancels in balance + unrealised PnL.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Dict, List, Optional, Sequence, Tuple

from .model import Fill

SCALE = 10 ** 20                 # units per settle-currency unit
LEDGER_SCALE = 10 ** 12          # the exchange's ledger unit
FINE = SCALE // LEDGER_SCALE     # units per ledger unit
ONE = Decimal(1)

COMPONENTS = ("spread", "inventory", "mark_basis", "fees", "funding", "rounding", "unexplained")


def rdiv(n: int, d: int) -> int:
    """``n / d`` rounded to the nearest integer, ties toward +infinity (``d > 0``)."""
    return (2 * n + d) // (2 * d)


def inverse(price: Decimal, face: Decimal = ONE) -> int:
    """face / price in units (1e-20), rounded to nearest, ties up."""
    n, d = price.as_integer_ratio()
    fn, fd = face.as_integer_ratio()
    if n <= 0:
        raise ValueError(f"price {price} is not positive")
    return rdiv(fn * d * SCALE, fd * n)


def ledger_cost(qty: int, price: Decimal, face: Decimal = ONE) -> int:
    """The exchange's booked cost of a fill, q * face / p in ledger units (1e-12), rounded."""
    n, d = price.as_integer_ratio()
    fn, fd = face.as_integer_ratio()
    return rdiv(qty * fn * d * LEDGER_SCALE, fd * n)


def to_units(amount: Decimal) -> int:
    """A settle-currency amount in units (exact for up to 20 decimals, else rounded)."""
    n, d = amount.as_integer_ratio()
    return rdiv(n * SCALE, d)


def to_decimal(units: int) -> Decimal:
    """Units as an exact Decimal of the settle currency."""
    return Decimal(units).scaleb(-20)


def units_text(units: int) -> str:
    """Units as a plain decimal string, exact, trailing zeros dropped (``"-0.00012"``, ``"0"``)."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), SCALE)
    frac_text = f"{frac:020d}".rstrip("0")
    return f"{sign}{whole}.{frac_text}" if frac_text else f"{sign}{whole}"


def spread_capture(side: int, qty: int, price: Decimal, mid: Decimal, face: Decimal = ONE) -> int:
    """What a fill earns against the mid: buy q*(1/p - 1/m), sell q*(1/m - 1/p), in units."""
    return side * qty * (inverse(price, face) - inverse(mid, face))


def inventory_pnl(net: int, mid0: Decimal, mid1: Decimal, face: Decimal = ONE) -> int:
    """What holding ``net`` contracts earns while the mid moves mid0 -> mid1: N*(1/m0 - 1/m1)."""
    return net * (inverse(mid0, face) - inverse(mid1, face))


def exchange_upnl(net: int, mark: Decimal, face: Decimal = ONE) -> int:
    """The unrealised-PnL part of the exchange's equity that depends on the mark, in ledger units:
    round(-N * inverse mark, 1e-12) (the legs' costs are whole ledger units)."""
    return rdiv(-net * inverse(mark, face), FINE)


@dataclass
class Series:
    """Cumulative components at each mid observation (units), including the fills (and funding)
    measured against it: those before the next observation."""
    ts: List[int] = field(default_factory=list)
    mid: List[float] = field(default_factory=list)
    mid_text: List[str] = field(default_factory=list)
    net: List[int] = field(default_factory=list)
    spread: List[int] = field(default_factory=list)
    inventory: List[int] = field(default_factory=list)
    fees: List[int] = field(default_factory=list)
    funding: List[int] = field(default_factory=list)

    def equity(self, k: int) -> int:
        """PnL marked at the mid of observation ``k`` (units)."""
        return self.spread[k] + self.inventory[k] + self.fees[k] + self.funding[k]


@dataclass
class Attribution:
    """The components (units) of a run's net PnL; they add up to ``net`` exactly."""
    spread: int
    inventory: int
    mark_basis: int
    fees: int
    funding: int
    rounding: int
    unexplained: int
    net: int
    exchange_change: Optional[int]          # margins.total last - first (units); None: no equity rows
    net_start: int
    net_end: int
    mark_start: Optional[Decimal]
    mark_end: Optional[Decimal]
    fill_mid: List[int]                     # the index in ``series`` of the mid each fill was measured against
    fill_spread: List[int]                  # each fill's spread capture (units)
    series: Series
    mid_source: str                          # 'mid', 'mark', 'fills' or 'none'

    def parts(self) -> Dict[str, int]:
        return {name: getattr(self, name) for name in COMPONENTS}


def attribute(fills: Sequence[Fill], mid_ts: Sequence[int], mid_text: Sequence[str],
              funding: Sequence[Tuple[int, str]] = (), net_end: Optional[int] = None,
              mark_start: Optional[Decimal] = None, mark_end: Optional[Decimal] = None,
              equity_start: Optional[Decimal] = None, equity_end: Optional[Decimal] = None,
              face: Decimal = ONE) -> Attribution:
    """Attribute a run's PnL (see the module doc). ``fills`` and the mids in time order.

    ``net_end``: the exchange's final net position (long - short); the start position is
    ``net_end`` minus the fills (0 when None). ``mark_start``/``mark_end``: the exchange's
    mark at the first and last equity rows (the mid ends when None). ``equity_start``/
    ``equity_end``: those rows' ``total``; when given, ``net`` is their difference and the
    part no component explains is ``unexplained``."""
    traded = sum(f.side * f.qty for f in fills)
    n_start = (net_end - traded) if net_end is not None else 0
    source = "mid"
    if not mid_ts:
        source, mid_ts, mid_text = "fills", [f.ts_ms for f in fills], [f.price_text for f in fills]
    inv_cache: Dict[str, int] = {}
    cost_cache: Dict[str, Tuple[int, int]] = {}

    def inv(text: str) -> int:
        v = inv_cache.get(text)
        if v is None:
            v = inv_cache[text] = inverse(Decimal(text), face)
        return v

    def booked(qty: int, text: str) -> int:          # ledger_cost(qty, Decimal(text), face), cached per price
        nd = cost_cache.get(text)
        if nd is None:
            n, d = Decimal(text).as_integer_ratio()
            fn, fd = face.as_integer_ratio()
            nd = cost_cache[text] = (fn * d * LEDGER_SCALE, fd * n)
        return rdiv(qty * nd[0], nd[1])

    series = Series()
    fill_mid: List[int] = []
    fill_spread: List[int] = []
    spread = inventory = fees = paid = rounding = 0
    n = n_start
    fi = ui = 0
    nf, nu = len(fills), len(funding)
    prev = None
    count = len(mid_ts)
    for k, (ts, text) in enumerate(zip(mid_ts, mid_text)):
        im = inv(text)
        if prev is not None:
            inventory += n * (prev - im)
        prev = im
        last = k == count - 1
        until = 0 if last else mid_ts[k + 1]     # the fills before the next mid are measured against this one
        while fi < nf and (last or fills[fi].ts_ms < until):
            f = fills[fi]
            signed = f.side * f.qty
            ip = inv(f.price_text)
            gain = signed * (ip - im)
            spread += gain
            fill_spread.append(gain)
            fill_mid.append(k)
            fees -= to_units(Decimal(f.fee_text))
            rounding += f.side * booked(f.qty, f.price_text) * FINE - signed * ip
            n += signed
            fi += 1
        while ui < nu and (last or funding[ui][0] < until):
            paid += to_units(Decimal(funding[ui][1]))
            ui += 1
        series.ts.append(ts)
        series.mid.append(float(text))
        series.mid_text.append(text)
        series.net.append(n)
        series.spread.append(spread)
        series.inventory.append(inventory)
        series.fees.append(fees)
        series.funding.append(paid)
    for _, amount in funding[ui:]:        # no mid at all (and so no fill)
        paid += to_units(Decimal(amount))
    if not mid_ts:
        source = "none"

    first = Decimal(mid_text[0]) if mid_ts else None
    last_mid = Decimal(mid_text[-1]) if mid_ts else None
    m_start = mark_start if mark_start is not None else first
    m_end = mark_end if mark_end is not None else last_mid
    mark_basis = 0
    if last_mid is not None and m_end is not None:
        mark_basis += n * (inv(mid_text[-1]) - inverse(m_end, face))
    if first is not None and m_start is not None:
        mark_basis -= n_start * (inv(mid_text[0]) - inverse(m_start, face))

    if m_end is not None:
        rounding += exchange_upnl(n, m_end, face) * FINE + n * inverse(m_end, face)
    if m_start is not None:
        rounding -= exchange_upnl(n_start, m_start, face) * FINE + n_start * inverse(m_start, face)

    explained = spread + inventory + mark_basis + fees + paid + rounding
    change = None
    unexplained = 0
    if equity_start is not None and equity_end is not None:
        change = to_units(equity_end) - to_units(equity_start)
        unexplained = change - explained
    return Attribution(spread=spread, inventory=inventory, mark_basis=mark_basis, fees=fees, funding=paid,
                       rounding=rounding, unexplained=unexplained, net=explained + unexplained,
                       exchange_change=change, net_start=n_start, net_end=n, mark_start=m_start, mark_end=m_end,
                       fill_mid=fill_mid, fill_spread=fill_spread, series=series, mid_source=source)


def mark_at(ts: int, mark_ts: Sequence[int], mark_text: Sequence[str]) -> Optional[Decimal]:
    """The latest mark at or before ``ts`` (else the first one after it; None when there is none)."""
    from bisect import bisect_right
    if not mark_ts:
        return None
    i = bisect_right(mark_ts, ts)
    return Decimal(mark_text[i - 1] if i else mark_text[0])
