"""What the simulator trades: instrument specs, the exchange-wide configuration, and the trading
state of one symbol (its book, mark price and cached price and margin conversions)."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from . import accounts as ac
from .accounts import Rate, make_rate
from .engine import OrderBook

CACHE_LIMIT = 100_000


@dataclass(frozen=True)
class InstrumentSpec:
    """Static description of one inverse perpetual contract."""
    symbol: str = "BTC_USD"
    asset: str = "BTC"
    symbol_id: int = 1
    tick_size: Decimal = Decimal("0.5")
    price_precision: int = 1
    face_value: Decimal = Decimal("1")
    quote_currency: str = "USD"
    max_leverage: Decimal = Decimal("100")
    start_price: Decimal | None = None  # None: the exchange's ``start_price``


@dataclass(frozen=True)
class ExchangeConfig:
    """Exchange-wide parameters (fees are fractions of notional; negative = rebate)."""
    instruments: tuple[InstrumentSpec, ...] = (InstrumentSpec(),)
    maker_fee: Decimal = Decimal("-0.00025")
    taker_fee: Decimal = Decimal("0.00075")
    default_leverage: Decimal = Decimal("10")
    maint_margin_ratio: Decimal = Decimal("0.005")
    start_price: Decimal = Decimal("10000")
    funding_rate: Decimal = Decimal("0.0001")
    insurance_balance: Decimal = Decimal("1000")
    history_limit: int = 10_000
    trade_history: int = 10_000


class Market:
    """Trading state of one symbol: its book, mark price and cached conversions."""

    def __init__(self, spec: InstrumentSpec, mark: Decimal) -> None:
        self.spec = spec
        self.symbol = spec.symbol
        self.asset = spec.asset
        self.face = spec.face_value
        self.tick = spec.tick_size
        self.book = OrderBook()
        self.mark = mark
        self.im = ac.inverse_mark(spec.face_value, mark)    # mark units
        self.price_of: dict[int, Decimal] = {}    # ticks -> ticks * tick (cache)
        self.units: dict[tuple[int, Decimal], Rate] = {}   # (ticks, leverage) -> unit
        fn, fd = spec.face_value.as_integer_ratio()
        tn, td = spec.tick_size.as_integer_ratio()
        # fill cost of q contracts at px ticks = rdiv(q * cost_num, px * cost_den) units;
        # its value (accounts.py) = rdiv(q * value_num, px * cost_den) value units
        self.cost_num = fn * td * ac.SCALE
        self.cost_den = fd * tn
        self.value_num = fn * td * ac.VALUE_SCALE

    def price(self, ticks: int) -> Decimal:
        """``ticks * tick`` as a Decimal (cached)."""
        p = self.price_of.get(ticks)
        if p is None:
            if len(self.price_of) > CACHE_LIMIT:
                self.price_of.clear()
            p = self.price_of[ticks] = ticks * self.tick
        return p

    def unit(self, ticks: int, leverage: Decimal) -> Rate:
        """Order margin per contract, ``face / price / leverage``, as a ``Rate`` (cached).

        The margin of ``qty`` contracts is ``accounts.times(qty, unit)`` ledger units."""
        key = (ticks, leverage)
        u = self.units.get(key)
        if u is None:
            if len(self.units) > CACHE_LIMIT:
                self.units.clear()
            ln, ld = leverage.as_integer_ratio()
            u = self.units[key] = make_rate(self.cost_num * ld, self.cost_den * ln * ticks)
        return u

    def fill_cost(self, qty: int, ticks: int) -> int:
        """Settle-currency notional of ``qty`` contracts at ``ticks``, in ledger units."""
        return ac.rdiv(qty * self.cost_num, ticks * self.cost_den)

    def fill_value(self, qty: int, ticks: int) -> int:
        """The same notional in value units (1e-40; displayed prices only)."""
        return ac.rdiv(qty * self.value_num, ticks * self.cost_den)
