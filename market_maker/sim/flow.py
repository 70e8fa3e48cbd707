"""Synthetic market flow for the simulator (pure and seeded; acts via the ``Exchange`` facade).

Each ``step(now_ms)``:

1. advances simulated time by ``(now_ms - last) * speed``;
2. moves the reference price: a random walk in ticks, in fixed steps of
   ``walk_step_ms`` simulated time (relative volatility per sqrt(second),
   multiplied by ``burst_mult`` during volatility bursts that start as a Poisson
   process and last an exponential time) or, if ``price_rows`` is given, the
   replayed price at that simulated time (held after the last row). The walk
   draws from its own random stream, so a seed fixes the price path whatever the
   timing of the ``step`` calls and whatever other traders do;
3. sets the mark (= index) price to the reference price;
4. moves the liquidity providers' ladders (``depth_levels`` levels per side: a
   touch level ``half_spread_ticks`` from the reference, the rest on a fixed grid
   of multiples of ``level_step_ticks``) level by level, as on a real venue: new
   quotes go in before stale ones are cancelled, one order per call, so a client
   never sees a side empty and no book message removes more than one level (see
   ``_requote``). New quotes may still sweep *other* traders' stale orders: that
   is the adverse move a market maker must survive;
5. sends the taker orders that arrived (Poisson, ``taker_rate`` per simulated
   second; lognormal sizes of mean ``taker_mean_qty``) as marketable limit orders
   capped at ``taker_slippage`` from the reference; any rest is cancelled (IOC).
   A taker's sweep is the only book message that removes several levels, and only
   those inside its price band (with the defaults the ladder reaches further than
   the band, so a side survives any sweep).

Flow accounts close opposite positions when they can, which keeps them flat-ish.
``load_price_csv`` is the module's only I/O: it parses ``timestamp_ms,price`` rows.
"""
from __future__ import annotations

import csv
import math
import random
from bisect import bisect_right
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from .exchange import Exchange, SimError

MAX_TAKERS_PER_STEP = 500
_EXP_FLOAT_MAX = Decimal(30)  # exp(30) ~ 1e13: a float's error there is still far below _TIE_MARGIN
_EXP_FLOAT_LIMIT = 29.0  # the same bound for the all-float path (its x may differ from the Decimal one in the last bits)
_TIE_MARGIN = 1e-6
_LP_SIGMA = Decimal("0.8")  # of the liquidity providers' lognormal sizes
_LP_SIGMA_FLOAT = float(_LP_SIGMA)


@dataclass(frozen=True)
class FlowConfig:
    """Parameters of the synthetic flow (rates are per simulated second)."""
    symbol: str = "BTC_USD"
    taker_rate: Decimal = Decimal("2")
    taker_mean_qty: Decimal = Decimal("150")
    taker_qty_sigma: Decimal = Decimal("1")
    taker_slippage: Decimal = Decimal("0.005")
    volatility: Decimal = Decimal("0.0025")
    burst_rate: Decimal = Decimal("0.002")
    burst_mean_s: Decimal = Decimal("30")
    burst_mult: Decimal = Decimal("2")
    depth_levels: int = 40
    level_step_ticks: int = 4
    half_spread_ticks: int = 1
    lp_accounts: int = 2
    lp_mean_qty: Decimal = Decimal("100")
    requote_prob: Decimal = Decimal("0.02")
    speed: Decimal = Decimal("1")
    walk_step_ms: int = 50
    balance: Decimal = Decimal("10000")
    price_rows: tuple[tuple[int, Decimal], ...] = ()


def load_price_csv(path: str | Path) -> list[tuple[int, Decimal]]:
    """Read ``timestamp_ms,price`` rows (a header line is skipped)."""
    rows: list[tuple[int, Decimal]] = []
    with open(path, newline="") as fh:
        for rec in csv.reader(fh):
            if not rec or not rec[0].strip().lstrip("-").isdigit():
                continue
            rows.append((int(rec[0]), Decimal(rec[1].strip())))
    return rows


def _dec(x: object) -> Decimal:
    """Exact Decimal of a random sample (keeps the arithmetic in Decimal)."""
    return Decimal(x)   # type: ignore[arg-type]


def float_below(p: Decimal) -> float:
    """The least float ``f`` with ``Decimal(f) >= p``: for every float ``r``, ``r < f`` exactly when
    ``Decimal(r) < p`` (the comparison of a sample with a Decimal probability, without the Decimal)."""
    f = float(p)
    if not math.isfinite(f):
        return f
    if Decimal(f) < p:
        f = math.nextafter(f, math.inf)
    while Decimal(math.nextafter(f, -math.inf)) >= p:
        f = math.nextafter(f, -math.inf)
    return f


class MarketFlow:
    """Reference price, background liquidity and random takers for one symbol."""

    def __init__(self, exchange: Exchange, config: FlowConfig | None = None, seed: int = 1) -> None:
        self.ex = exchange
        self.cfg = cfg = config or FlowConfig()
        self.symbol = cfg.symbol
        # one stream per concern: the price path depends on the seed and simulated time only,
        # not on how often step() is called nor on what other traders do
        self.rng = random.Random(seed)                      # liquidity providers
        self.price_rng = random.Random(f"price-{seed}")
        self.taker_rng = random.Random(f"takers-{seed}")
        spec = exchange.instruments[cfg.symbol]
        self.tick = spec.tick_size
        asset = spec.asset
        self.lps = [exchange.open_account(f"flow-lp-{i}", cfg.balance, asset)
                    for i in range(cfg.lp_accounts)]
        self.taker = exchange.open_account("flow-taker", cfg.balance, asset)
        # each LP's resting quotes: level key -> order id; the key of a level is its ticks for a bid,
        # minus its ticks for an ask, so ``sorted`` lists asks then bids, each side outside in
        self.quotes: list[dict[int, int]] = [{} for _ in self.lps]
        self._ladder: tuple[list[int], list[int]] = ([], [])  # level keys of the last requote
        self.ref_ticks = self._to_ticks(exchange.mark_price(cfg.symbol))
        self.last_ms: int | None = None
        self.sim_s = Decimal(0)
        self.walk_s = Decimal(0)
        self.next_taker_s = Decimal(0)
        self.burst_until = Decimal(-1)
        self.last_move = 0
        self._replay_t = [t - cfg.price_rows[0][0] for t, _ in cfg.price_rows]
        # the per-sample probabilities as exact float thresholds (see ``float_below``)
        self._requote_below = float_below(cfg.requote_prob)
        self._walk_dt = walk_dt = Decimal(cfg.walk_step_ms) / 1000
        self._burst_below = float_below(1 - (-cfg.burst_rate * walk_dt).exp())
        # relative volatility of one walk step, calm and in a burst
        self._step_vol = (cfg.volatility * 1 * walk_dt.sqrt(), cfg.volatility * cfg.burst_mult * walk_dt.sqrt())
        self._mu = self._lognormal_mu(cfg.taker_mean_qty, cfg.taker_qty_sigma)
        self._lp_mu = self._lognormal_mu(cfg.lp_mean_qty, _LP_SIGMA)
        # the float of each Decimal parameter of ``_size``
        self._floats = {d: float(d) for d in (self._mu, cfg.taker_qty_sigma, self._lp_mu, _LP_SIGMA)}
        self._lp_mu_float = float(self._lp_mu)

    @staticmethod
    def _lognormal_mu(mean: Decimal, sigma: Decimal) -> Decimal:
        return mean.ln() - sigma * sigma / 2

    def _to_ticks(self, price: Decimal) -> int:
        return int((price / self.tick).to_integral_value())

    @property
    def reference_price(self) -> Decimal:
        """Current reference (= mark) price."""
        return self.ref_ticks * self.tick

    # ------------------------------------------------------------------ step
    def step(self, now_ms: int) -> None:
        """Advance the flow to ``now_ms`` (simulated time runs ``speed`` times faster)."""
        cfg = self.cfg
        if self.last_ms is None:
            self.last_ms = now_ms
            self.next_taker_s = self._arrival_gap()
            dt = Decimal(0)
        else:
            dt = Decimal(max(0, now_ms - self.last_ms)) * cfg.speed / 1000
            self.last_ms = now_ms
        self.sim_s += dt
        self._move_reference()
        self.ex.set_mark_price(cfg.symbol, self.reference_price, now_ms)
        self._requote(now_ms)
        self._takers(now_ms)

    def _arrival_gap(self) -> Decimal:
        rate = self.cfg.taker_rate
        if rate <= 0:
            return Decimal("Infinity")
        return _dec(self.taker_rng.expovariate(1)) / rate

    def _move_reference(self) -> None:
        """Bring the reference up to ``sim_s``: replayed, or walked in steps of ``walk_step_ms``."""
        cfg = self.cfg
        before = self.ref_ticks
        if cfg.price_rows:
            i = bisect_right(self._replay_t, int(self.sim_s * 1000)) - 1
            self.ref_ticks = self._to_ticks(cfg.price_rows[max(i, 0)][1])
        else:
            dt = self._walk_dt
            while self.walk_s + dt <= self.sim_s:
                self.walk_s += dt
                self._walk()
        if self.ref_ticks != before:
            self.last_move = 1 if self.ref_ticks > before else -1

    def _walk(self) -> None:
        cfg, rng = self.cfg, self.price_rng
        if self.walk_s > self.burst_until and rng.random() < self._burst_below:
            self.burst_until = self.walk_s + _dec(rng.expovariate(1)) * cfg.burst_mean_s
        sigma_ticks = self._step_vol[self.walk_s <= self.burst_until] * self.ref_ticks
        move = int((_dec(rng.gauss(0, 1)) * sigma_ticks).to_integral_value())
        floor = cfg.half_spread_ticks + cfg.level_step_ticks * cfg.depth_levels + 1
        self.ref_ticks = max(floor, self.ref_ticks + move)

    # ------------------------------------------------------------------ liquidity
    def _wanted(self) -> tuple[list[int], list[int]]:
        """The LP ladder as level keys: a touch level ``half_spread_ticks`` from the reference on each
        side, then ``depth_levels - 1`` levels on the fixed grid of multiples of ``level_step_ticks``;
        (asks, bids), each nearest the touch first.

        The grid does not move with the reference, so a move of a few ticks changes the
        touch and at most a level or two at each end of each side."""
        cfg = self.cfg
        step, h = cfg.level_step_ticks, cfg.half_spread_ticks
        top_bid, low_ask = self.ref_ticks - h, self.ref_ticks + h
        first_bid = (top_bid - 1) // step * step          # highest grid point below the touch
        first_ask = (low_ask // step + 1) * step          # lowest grid point above the touch
        grid = (cfg.depth_levels - 1) * step
        asks, bids = [-low_ask], [top_bid]
        asks.extend(range(-first_ask, -(first_ask + grid), -step))
        bids.extend(range(first_bid, max(0, first_bid - grid), -step))   # positive prices only
        return asks, bids

    def _best_quotes(self) -> tuple[int, int | None]:
        """(highest LP bid, lowest LP ask) in ticks; 0 and None for a side without any.

        Every quote is on the ladder of the last ``_requote`` (it cancels the others), whose sides
        list their levels nearest the touch first: a side's first quoted level is its best."""
        asks, bids = self._ladder
        return _first_quoted(bids, self.quotes) or 0, _first_quoted(asks, self.quotes)

    def _requote(self, now_ms: int) -> None:
        """Move the LP ladders to ``_wanted()`` one order at a time, never emptying a side.

        1. drop the quotes that were filled;
        2. place the new quotes that cannot cross any LP quote (after a move up: the new asks);
        3. cancel the stale LP quotes that the remaining new quotes would cross;
        4. place the remaining new quotes: these may sweep other traders' stale orders;
        5. cancel the other stale quotes and refresh a few levels (new order first).
        Every cancel is a single-order cancel, so a pushed book message removes at most one level.
        New quotes go in inside out (asks, then bids, each nearest the touch first), stale ones
        leave in that order in step 3 and outside in in step 5."""
        cfg, ex = self.cfg, self.ex
        asks, bids = self._wanted()
        ladder = asks + bids
        wanted = set(ladder)
        top_bid, low_ask = self.ref_ticks - cfg.half_spread_ticks, self.ref_ticks + cfg.half_spread_ticks
        for acct, quotes in zip(self.lps, self.quotes):
            alive = ex.open_quote_ids(acct)
            # the flow places every order of its LP accounts, so their open orders are all in
            # their quotes: as many of them means no quote has gone
            if len(alive) != len(quotes):
                for key in [k for k, oid in quotes.items() if oid not in alive]:
                    del quotes[key]
        max_bid, min_ask = self._best_quotes()
        self._ladder = (asks, bids)
        # the stale quotes, inside out (placing new quotes adds none)
        stale = [_inside_out(quotes.keys() - wanted) for quotes in self.quotes]
        deferred = []
        for acct, quotes in zip(self.lps, self.quotes):
            for key in _inside_out(wanted - quotes.keys()):   # new quotes, inside out
                safe = -key > max_bid if key < 0 else (min_ask is None or key < min_ask)
                if safe:
                    self._quote(acct, quotes, key, now_ms)
                else:
                    deferred.append((acct, quotes, key))
        for acct, quotes, keys in zip(self.lps, self.quotes, stale):
            for key in keys:
                if (key < 0 and -key <= top_bid) or (key > 0 and key >= low_ask):
                    self._cancel(acct, quotes.pop(key), now_ms)
        for acct, quotes, key in deferred:
            self._quote(acct, quotes, key, now_ms)
        for acct, quotes, keys in zip(self.lps, self.quotes, stale):
            for key in sorted(k for k in keys if k in quotes):   # outside in (see ``quotes``)
                self._cancel(acct, quotes.pop(key), now_ms)
            self._refresh(acct, quotes, ladder, now_ms)

    def _refresh(self, acct: int, quotes: dict[int, int], ladder: list[int], now_ms: int) -> None:
        """Re-size each level with probability ``requote_prob``, nearest the touch first: the new
        order goes in before the old one leaves, so the level never disappears.  Every quote is
        on the ``ladder`` (the others were just cancelled), which is in that order."""
        below, draw = self._requote_below, self.rng.random
        # as many quotes as levels: every level is quoted (the usual case), no need to filter
        for key in ladder if len(quotes) == len(ladder) else [k for k in ladder if k in quotes]:
            if draw() < below:
                old = quotes.pop(key)
                self._quote(acct, quotes, key, now_ms)
                self._cancel(acct, old, now_ms)

    def _quote(self, acct: int, quotes: dict[int, int], key: int, now_ms: int) -> None:
        """Quote level ``key`` with an LP size (``_size(self._lp_mu, _LP_SIGMA)``); noted in ``quotes`` while it rests."""
        side, ticks = (1, key) if key > 0 else (0, -key)
        qty = _rounded_exp(self.rng.gauss(0, 1), self._lp_mu, _LP_SIGMA, self._lp_mu_float, _LP_SIGMA_FLOAT)
        ex, symbol = self.ex, self.symbol
        _, avail = ex.position_qty(acct, symbol, 0 if side == 1 else 1)   # _send, inlined
        try:
            oid = ex.place_quote(acct, symbol, side, 1 if avail >= qty else 0, ticks, qty, now_ms)
        except SimError:
            return
        if oid is not None:
            quotes[key] = oid

    def _cancel(self, acct: int, oid: int, now_ms: int) -> None:
        try:
            self.ex.cancel_quote(acct, self.symbol, oid, now_ms)
        except SimError:
            pass  # already filled: gone either way

    def _size(self, mu: Decimal, sigma: Decimal, rng: random.Random | None = None) -> int:
        """``exp(mu + sigma * z)`` of a standard normal draw ``z`` (see ``_rounded_exp``)."""
        floats = self._floats
        return _rounded_exp((rng or self.rng).gauss(0, 1), mu, sigma, floats[mu], floats[sigma])

    def _send(self, acct: int, side: int, ticks: int, qty: int, now_ms: int) -> int | None:
        """Place an order, closing the opposite position when possible; its id while it rests,
        None if it was refused or filled at once."""
        _, avail = self.ex.position_qty(acct, self.cfg.symbol, 0 if side == 1 else 1)
        close = 1 if avail >= qty else 0
        try:
            return self.ex.place_quote(acct, self.cfg.symbol, side, close, ticks, qty, now_ms)
        except SimError:
            return None

    # ------------------------------------------------------------------ takers
    def _takers(self, now_ms: int) -> None:
        cfg = self.cfg
        sent = 0
        while self.next_taker_s <= self.sim_s:
            if sent >= MAX_TAKERS_PER_STEP:
                self.next_taker_s = self.sim_s + self._arrival_gap()
                break
            self.next_taker_s += self._arrival_gap()
            sent += 1
            p_buy = Decimal("0.5") + Decimal("0.1") * self.last_move
            side = 1 if _dec(self.taker_rng.random()) < p_buy else 0
            qty = self._size(self._mu, cfg.taker_qty_sigma, self.taker_rng)
            slip = int((self.ref_ticks * cfg.taker_slippage).to_integral_value()) + 1
            ticks = self.ref_ticks + slip if side == 1 else max(1, self.ref_ticks - slip)
            oid = self._send(self.taker, side, ticks, qty, now_ms)
            if oid is not None:
                self.ex.cancel_quote(self.taker, cfg.symbol, oid, now_ms)


def _rounded_exp(z: float, mu: Decimal, sigma: Decimal, mu_float: float, sigma_float: float) -> int:
    """``exp(mu + sigma * z)`` computed in Decimal, rounded to the nearest integer (ties to even), at
    least 1 (``mu_float``, ``sigma_float``: the floats of ``mu`` and ``sigma``).

    The floats ``mu + sigma * z`` and its exp are within a few 1e-15 (relative) of the Decimal
    ones, so away from a tie (``_TIE_MARGIN``) the float result rounds the same; near one, or
    beyond ``_EXP_FLOAT_MAX``, the Decimal computation decides."""
    xf = mu_float + sigma_float * z
    if xf < _EXP_FLOAT_LIMIT:
        f = math.exp(xf)
        if abs(f - math.floor(f) - 0.5) > _TIE_MARGIN:
            return max(1, math.floor(f + 0.5))
    x = mu + sigma * _dec(z)
    if x < _EXP_FLOAT_MAX:
        f = math.exp(float(x))
        if abs(f - math.floor(f) - 0.5) > _TIE_MARGIN:
            return max(1, math.floor(f + 0.5))
    return max(1, int(x.exp().to_integral_value()))


def _first_quoted(levels: list[int], quotes: list[dict[int, int]]) -> int | None:
    """Ticks of the first of ``levels`` that one of ``quotes`` holds (None if none does)."""
    for key in levels:
        for held in quotes:
            if key in held:
                return abs(key)
    return None


def _inside_out(keys: set[int]) -> list[int]:
    """Level keys per side nearest the touch first: asks, then bids."""
    return sorted([k for k in keys if k < 0], reverse=True) + sorted([k for k in keys if k > 0], reverse=True)


__all__ = ["FlowConfig", "MarketFlow", "load_price_csv"]
