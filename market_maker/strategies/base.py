"""What the inventory-aware strategies share: estimates, fair value, the ladder, the status line.

A subclass says only how the model quotes: :meth:`InventoryStrategy.optimal_quote`. Everything
else reads ``self.snap`` like the grid does (book, public trades, positions) and time from
``self.clock``; no socket, no simulator.
"""
from __future__ import annotations

import logging
import math
import random
from decimal import Decimal
from typing import Optional, Tuple

from ..exchange_interface import ExchangeInterface, fmt
from ..market_maker import OrderManager
from ..settings import Settings, SettingsError
from . import fairvalue, ladder
from .estimators import EwmaVolatility, IntensityEstimator
from .optimal import OptimalQuote

log = logging.getLogger("market_maker.manager")


class InventoryStrategy(OrderManager):
    """Quotes ORDER_PAIRS levels per side from a model's optimal bid and ask (override ``optimal_quote``)."""

    model = "inventory model"
    book_depth = 64  # the fair value is the market without our own orders: see past our ladder
    def __init__(self, settings: Settings, exchange: ExchangeInterface, rng: Optional[random.Random] = None):
        super().__init__(settings, exchange, rng)
        low, high = (float(v) for v in settings.VOL_BOUNDS)
        self.volatility = EwmaVolatility(settings.VOL_WINDOW_S, float(settings.VOL_FALLBACK), low, high)
        self.intensity = IntensityEstimator(
            settings.INTENSITY_WINDOW_S, float(settings.INTENSITY_BUCKET), settings.INTENSITY_BUCKETS,
            (float(settings.INTENSITY_A), float(settings.INTENSITY_K)),
            tuple(float(v) for v in settings.INTENSITY_A_BOUNDS),  # type: ignore[arg-type]
            tuple(float(v) for v in settings.INTENSITY_K_BOUNDS))  # type: ignore[arg-type]
        self.fair_kind, fair_symbol = fairvalue.parse_spec(settings.FAIR_VALUE)
        self.external = None
        if fair_symbol is not None:
            from . import external
            self.external = external.shared_source(self.fair_kind, fair_symbol, settings.FAIR_VALUE_URL,
                                                   self.clock)
        self.lot = settings.ORDER_START_SIZE
        self.quote: Optional[OptimalQuote] = None
        self.fair: Optional[Decimal] = None
        self.pulled: Optional[str] = None
        self._trade_cursor: Tuple[int, int] = (-1, 0)  # (time of the newest trade seen, how many at that time)
        self._last_mid: Optional[float] = None

    # -- lifecycle
    def start(self, fresh: bool = True) -> None:
        if self.external is not None:
            self.external.start()
            wait = self.settings.FAIR_VALUE_CONNECT_TIMEOUT_S
            if not self.external.wait_first(wait):
                self.external.stop()
                raise SettingsError(f"FAIR_VALUE = {self.settings.FAIR_VALUE!r}: no price from "
                                    f"{self.external.url} within FAIR_VALUE_CONNECT_TIMEOUT_S ({wait:g}s): "
                                    f"{self.external.last_error or 'no answer'}")
        super().start(fresh)

    def exit(self) -> None:
        try:
            super().exit()
        finally:
            if self.external is not None:
                self.external.stop()

    # -- the model
    def optimal_quote(self, fair: float, q: float, sigma: float, A: float, k: float,
                      now: float) -> OptimalQuote:
        raise NotImplementedError

    # -- one decision
    def observe(self) -> None:
        """Feed the estimators this cycle's mid and the public trades not seen yet."""
        now = self.clock.time()
        mid = fairvalue.mid(self.market_book())
        mid_f = float(mid) if mid is not None else math.nan
        if mid is not None:
            self.volatility.update(now, math.log(mid_f))
        reference = self._last_mid if self._last_mid is not None else mid_f  # where our quotes stood
        self.intensity.update(now, reference, [(now, float(t.price), t.side) for t in self._new_trades()])
        if mid is not None:
            self._last_mid = mid_f

    def _new_trades(self):
        last_time, seen_at_last = self._trade_cursor
        new, at_last = [], 0
        for trade in self.snap.recent_trades:
            if trade.time < last_time:
                continue
            if trade.time == last_time:
                at_last += 1
                if at_last <= seen_at_last:
                    continue
            new.append(trade)
        if new:
            newest = new[-1].time
            count = sum(1 for t in self.snap.recent_trades if t.time == newest)
            self._trade_cursor = (newest, count)
        return new

    def market_book(self):
        """This cycle's book without our own orders."""
        return fairvalue.others_book(self.snap.book, self.own_orders())

    def fair_value(self) -> Tuple[Optional[Decimal], Optional[str]]:
        book = self.market_book()
        if self.fair_kind == "mid":
            return fairvalue.mid(book), None
        if self.fair_kind == "microprice":
            return fairvalue.microprice(book), None
        price, received = self.external.latest()
        age = None if received is None else self.clock.time() - received
        why = fairvalue.check_external(price, age, fairvalue.mid(book), self.settings.FAIR_VALUE_STALE_S,
                                       self.settings.FAIR_VALUE_MAX_DEVIATION)
        return (None, why) if why else (price, None)

    def place_orders(self) -> None:
        self.observe()
        fair, why = self.fair_value()
        if fair is None:
            self.pull(why or "no fair value")
            return
        if self.pulled:
            log.info("Quoting again: the fair value is back (%s)", fmt(fair))
            self.pulled = None
        self.fair = fair
        fair_f = float(fair)
        sigma = self.volatility.sigma * fair_f  # relative -> price units per sqrt(second)
        A, k = self.intensity.values
        q = self.snap.positions.net / self.lot
        self.quote = self.optimal_quote(fair_f, q, sigma, A, k, self.clock.time())
        params = ladder.LadderParams.from_settings(self.settings, self.tick_size)
        buys, sells = ladder.build(self.quote.bid, self.quote.ask, self.snap.book, self.own_orders(),
                                   self.snap.positions, params)
        self.start_positions = (Decimal(repr(self.quote.bid)), Decimal(repr(self.quote.ask)))
        self.converge_orders(list(buys), list(sells))

    def pull(self, why: str) -> None:
        """No fair value to quote around: cancel our orders (the warning is logged once per reason)."""
        if self.pulled != why:
            log.warning("Pulling quotes: %s", why)
            self.pulled = why
        self.quote = None
        self.converge_orders([], [])

    # -- figures
    def print_status(self) -> None:
        super().print_status()
        sigma_rel = self.volatility.sigma
        A, k = self.intensity.values
        if self.quote is None or self.fair is None:
            log.info("%s: sigma %.3g /sqrt(s)%s, A %.3g /s, k %.3g /price unit; not quoting%s", self.model,
                     sigma_rel, "" if self.volatility.warm else " (fall-back)", A, k,
                     f" ({self.pulled})" if self.pulled else "")
            return
        fair = float(self.fair)
        log.info("%s: sigma %.3g /sqrt(s) (%.4g per sqrt(s) at %s)%s, A %.3g /s%s, k %.3g; reservation %.2f, "
                 "skew %+.2f, optimal bid %.2f ask %.2f", self.model, sigma_rel, sigma_rel * fair, fmt(self.fair),
                 "" if self.volatility.warm else " (fall-back)", A,
                 "" if self.intensity.fit() else " (fall-back)", k, self.quote.reservation,
                 self.quote.skew(fair), self.quote.bid, self.quote.ask)
