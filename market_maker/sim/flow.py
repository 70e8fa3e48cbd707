"""Synthetic market flow for the simulator (pure and seeded; acts via the ``Exchange`` facade).

Each ``step(now_ms)``:

1. advances simulated time by ``(now_ms - last) * speed``;
2. moves the reference price: a random walk in ticks (relative volatility per
   sqrt(second), multiplied by ``burst_mult`` during volatility bursts that start
   as a Poisson process and last an exponential time) or, if ``price_rows`` is
   given, the replayed price at that simulated time (held after the last row);
3. sets the mark (= index) price to the reference price;
4. lets the liquidity-provider accounts re-quote a ladder of ``depth_levels``
   levels per side around the reference (all stale quotes are cancelled before
   any new one is placed, so new quotes may sweep *other* traders' stale orders:
   that is the adverse move a market maker must survive);
5. sends the taker orders that arrived (Poisson, ``taker_rate`` per simulated
   second; lognormal sizes of mean ``taker_mean_qty``) as marketable limit orders
   capped at ``taker_slippage`` from the reference; any rest is cancelled (IOC).

Flow accounts close opposite positions when they can, which keeps them flat-ish.
``load_price_csv`` is the module's only I/O: it parses ``timestamp_ms,price`` rows.
"""
from __future__ import annotations

import csv
import random
from bisect import bisect_right
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from .exchange import Exchange, SimError

MAX_TAKERS_PER_STEP = 500


@dataclass(frozen=True)
class FlowConfig:
    """Parameters of the synthetic flow (rates are per simulated second)."""
    symbol: str = "BTC_USD"
    taker_rate: Decimal = Decimal("2")
    taker_mean_qty: Decimal = Decimal("150")
    taker_qty_sigma: Decimal = Decimal("1")
    taker_slippage: Decimal = Decimal("0.01")
    volatility: Decimal = Decimal("0.0006")
    burst_rate: Decimal = Decimal("0.002")
    burst_mean_s: Decimal = Decimal("30")
    burst_mult: Decimal = Decimal("5")
    depth_levels: int = 40
    level_step_ticks: int = 4
    half_spread_ticks: int = 1
    lp_accounts: int = 2
    lp_mean_qty: Decimal = Decimal("100")
    requote_prob: Decimal = Decimal("0.02")
    speed: Decimal = Decimal("1")
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


class MarketFlow:
    """Reference price, background liquidity and random takers for one symbol."""

    def __init__(self, exchange: Exchange, config: FlowConfig | None = None, seed: int = 1) -> None:
        self.ex = exchange
        self.cfg = cfg = config or FlowConfig()
        self.rng = random.Random(seed)
        spec = exchange.instruments[cfg.symbol]
        self.tick = spec.tick_size
        asset = spec.asset
        self.lps = [exchange.open_account(f"flow-lp-{i}", cfg.balance, asset)
                    for i in range(cfg.lp_accounts)]
        self.taker = exchange.open_account("flow-taker", cfg.balance, asset)
        self.quotes: list[dict[tuple[int, int], str]] = [{} for _ in self.lps]
        self.ref_ticks = self._to_ticks(exchange.mark_price(cfg.symbol))
        self.last_ms: int | None = None
        self.sim_s = Decimal(0)
        self.next_taker_s = Decimal(0)
        self.burst_until = Decimal(-1)
        self.last_move = 0
        self._replay_t = [t - cfg.price_rows[0][0] for t, _ in cfg.price_rows]
        self._mu = self._lognormal_mu(cfg.taker_mean_qty, cfg.taker_qty_sigma)
        self._lp_mu = self._lognormal_mu(cfg.lp_mean_qty, Decimal("0.8"))

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
        self._move_reference(dt)
        self.ex.set_mark_price(cfg.symbol, self.reference_price, now_ms)
        self._requote(now_ms)
        self._takers(now_ms)

    def _arrival_gap(self) -> Decimal:
        rate = self.cfg.taker_rate
        if rate <= 0:
            return Decimal("Infinity")
        return _dec(self.rng.expovariate(1)) / rate

    def _move_reference(self, dt: Decimal) -> None:
        cfg = self.cfg
        before = self.ref_ticks
        if cfg.price_rows:
            i = bisect_right(self._replay_t, int(self.sim_s * 1000)) - 1
            self.ref_ticks = self._to_ticks(cfg.price_rows[max(i, 0)][1])
        elif dt > 0:
            if self.sim_s > self.burst_until and \
                    _dec(self.rng.random()) < 1 - (-cfg.burst_rate * dt).exp():
                self.burst_until = self.sim_s + _dec(self.rng.expovariate(1)) * cfg.burst_mean_s
            vol = cfg.volatility * (cfg.burst_mult if self.sim_s <= self.burst_until else 1)
            sigma_ticks = vol * dt.sqrt() * self.ref_ticks
            move = int((_dec(self.rng.gauss(0, 1)) * sigma_ticks).to_integral_value())
            floor = cfg.half_spread_ticks + cfg.level_step_ticks * cfg.depth_levels + 1
            self.ref_ticks = max(floor, self.ref_ticks + move)
        if self.ref_ticks != before:
            self.last_move = 1 if self.ref_ticks > before else -1

    # ------------------------------------------------------------------ liquidity
    def _wanted(self) -> set[tuple[int, int]]:
        cfg = self.cfg
        out = set()
        for k in range(cfg.depth_levels):
            off = cfg.half_spread_ticks + k * cfg.level_step_ticks
            out.add((1, self.ref_ticks - off))
            out.add((0, self.ref_ticks + off))
        return out

    def _requote(self, now_ms: int) -> None:
        cfg, ex, rng = self.cfg, self.ex, self.rng
        wanted = self._wanted()
        refresh = cfg.requote_prob
        for acct, quotes in zip(self.lps, self.quotes):
            alive = ex.open_order_ids(acct)
            stale = []
            for key, oid in list(quotes.items()):
                if oid not in alive:
                    del quotes[key]
                elif key not in wanted or _dec(rng.random()) < refresh:
                    stale.append(oid)
                    del quotes[key]
            if stale:
                ex.cancel_batch(acct, cfg.symbol, stale, now_ms)
        for acct, quotes in zip(self.lps, self.quotes):
            for side, ticks in sorted(wanted - quotes.keys()):
                qty = self._size(self._lp_mu, Decimal("0.8"))
                oid = self._send(acct, side, ticks, qty, now_ms)
                if oid is not None:
                    quotes[(side, ticks)] = oid

    def _size(self, mu: Decimal, sigma: Decimal) -> int:
        z = _dec(self.rng.gauss(0, 1))
        return max(1, int((mu + sigma * z).exp().to_integral_value()))

    def _send(self, acct: int, side: int, ticks: int, qty: int, now_ms: int) -> str | None:
        """Place an order, closing the opposite position when possible; None if refused."""
        _, avail = self.ex.position_qty(acct, self.cfg.symbol, 0 if side == 1 else 1)
        close = 1 if avail >= qty else 0
        try:
            row = self.ex.place_order(acct, self.cfg.symbol, side, close, ticks * self.tick, qty,
                                      None, now_ms)
        except SimError:
            return None
        return row["order_id"] if row["status"] in ("1", "2", "16") else None

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
            side = 1 if _dec(self.rng.random()) < p_buy else 0
            qty = self._size(self._mu, cfg.taker_qty_sigma)
            slip = int((self.ref_ticks * cfg.taker_slippage).to_integral_value()) + 1
            ticks = self.ref_ticks + slip if side == 1 else max(1, self.ref_ticks - slip)
            oid = self._send(self.taker, side, ticks, qty, now_ms)
            if oid is not None:
                self.ex.cancel_order(self.taker, cfg.symbol, oid, now_ms)


__all__ = ["FlowConfig", "MarketFlow", "load_price_csv"]
