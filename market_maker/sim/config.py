"""Simulator settings: one frozen dataclass, buildable from the project's settings module."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from collections.abc import Mapping

from .faults import FaultConfig
from .flow import FlowConfig, load_price_csv

_FLOW = FlowConfig()
# SimConfig field -> FlowConfig field (``symbol`` is passed too; ``flow_price_csv`` becomes price_rows)
FLOW_FIELDS = {name: name for name in (
    "taker_rate", "taker_mean_qty", "taker_qty_sigma", "taker_slippage", "volatility", "burst_rate",
    "burst_mean_s", "burst_mult", "depth_levels", "level_step_ticks", "half_spread_ticks", "lp_accounts",
    "lp_mean_qty", "requote_prob", "speed")}
FLOW_FIELDS["flow_balance"] = "balance"
LIMIT_FIELDS = ("ws_max_connections", "ws_max_per_address", "ws_max_subs_per_s", "ws_max_msg_bytes",
                "ws_send_buffer_bytes", "max_body_bytes", "history_limit", "trade_history")
# what one entry of ``SimConfig.symbols`` may set (the rest comes from the SimConfig's own fields)
SYMBOL_FIELDS = ("asset", "symbol_id", "tick_size", "start_price", *FLOW_FIELDS)
FAULT_PREFIX = "fault_"
_FAULT_RENAMES = {"fault_5xx_rate": "http_5xx_rate"}


@dataclass(frozen=True)
class Instrument:
    """One instrument the simulator serves, every value resolved (see ``SimConfig.instruments``)."""
    symbol: str
    asset: str
    symbol_id: int
    tick_size: Decimal
    start_price: Decimal
    flow: FlowConfig

    @property
    def price_precision(self) -> int:
        """Decimals allowed in a price (from ``tick_size``)."""
        return max(0, -self.tick_size.normalize().as_tuple().exponent)


def _symbol_table(value: Any) -> tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]:
    """``{"ETH_USD": {"tick_size": "0.05", ...}, ...}`` (or its frozen form) as sorted, frozen pairs."""
    if value is None:
        return ()
    items = value.items() if isinstance(value, Mapping) else value
    out = []
    try:
        pairs = [(symbol, dict(knobs.items() if isinstance(knobs, Mapping) else knobs or ()))
                 for symbol, knobs in items]
    except (TypeError, ValueError, AttributeError):
        raise ValueError('symbols must map each symbol to its settings, e.g. {"ETH_USD": {"tick_size": '
                         '"0.05", "start_price": "300"}}') from None
    for symbol, knobs in pairs:
        if not isinstance(symbol, str) or "_" not in symbol.strip("_"):
            raise ValueError(f"symbols: {symbol!r} is not a symbol such as \"ETH_USD\"")
        for key in knobs:
            if key not in SYMBOL_FIELDS:
                raise ValueError(f"symbols[{symbol!r}]: unknown key {key!r}; allowed: {', '.join(SYMBOL_FIELDS)}")
        out.append((symbol, tuple(knobs.items())))
    if len({s for s, _ in out}) != len(out):
        raise ValueError("symbols: a symbol is listed twice")
    return tuple(out)


@dataclass(frozen=True)
class SimConfig:
    """Everything the local GTE simulator needs. ``port=0`` binds an ephemeral port;
    ``api_key``/``api_secret`` None means "generate a pair"."""
    host: str = "127.0.0.1"
    port: int = 8765
    seed: int = 1
    symbol: str = "BTC_USD"
    asset: str = "BTC"
    symbol_id: int = 1
    tick_size: Decimal = Decimal("0.5")
    start_price: Decimal = Decimal("10000")
    balance: Decimal = Decimal("10")
    api_key: str | None = None
    api_secret: str | None = field(default=None, repr=False)
    # synthetic market flow: ``flow_``-less names mirror flow.FlowConfig (see FLOW_FIELDS)
    flow: bool = True
    taker_rate: Decimal = _FLOW.taker_rate
    taker_mean_qty: Decimal = _FLOW.taker_mean_qty
    taker_qty_sigma: Decimal = _FLOW.taker_qty_sigma
    taker_slippage: Decimal = _FLOW.taker_slippage
    volatility: Decimal = _FLOW.volatility
    burst_rate: Decimal = _FLOW.burst_rate
    burst_mean_s: Decimal = _FLOW.burst_mean_s
    burst_mult: Decimal = _FLOW.burst_mult
    depth_levels: int = _FLOW.depth_levels
    level_step_ticks: int = _FLOW.level_step_ticks
    half_spread_ticks: int = _FLOW.half_spread_ticks
    lp_accounts: int = _FLOW.lp_accounts
    lp_mean_qty: Decimal = _FLOW.lp_mean_qty
    requote_prob: Decimal = _FLOW.requote_prob
    speed: Decimal = _FLOW.speed
    flow_balance: Decimal = _FLOW.balance
    flow_price_csv: str | None = None
    # exchange clocks and pushes
    funding_interval_s: int = 28800
    ws_idle_timeout_s: Decimal = Decimal("120")
    position_push_s: Decimal = Decimal("5")
    instrument_push_s: Decimal = Decimal("1")
    tick_interval_ms: int = 50
    rate_limits: bool = True
    # limits under load (see README "The local GTE simulator", limits and memory)
    ws_max_connections: int = 2048
    ws_max_per_address: int = 256
    ws_max_subs_per_s: int = 20
    ws_max_msg_bytes: int = 65536
    ws_send_buffer_bytes: int = 1 << 20
    max_body_bytes: int = 65536
    history_limit: int = 500
    trade_history: int = 10_000
    # faults, all off by default
    fault_ws_disconnect_every_s: Decimal = Decimal(0)
    fault_drop_rate: Decimal = Decimal(0)
    fault_dup_rate: Decimal = Decimal(0)
    fault_latency_ms: tuple[int, int] = (0, 0)
    fault_5xx_rate: Decimal = Decimal(0)
    fault_lost_response_rate: Decimal = Decimal(0)
    fault_rate_limit_every_s: Decimal = Decimal(0)
    fault_rate_limit_duration_s: Decimal = Decimal(0)
    fault_late_create_rate: Decimal = Decimal(0)
    fault_late_create_ms: tuple[int, int] = (1000, 4000)
    extra_accounts: tuple[tuple[str, str, Decimal], ...] = field(default=(), repr=False)
    # several instruments: {symbol: {key of SYMBOL_FIELDS: value}}; empty = ``symbol`` alone
    symbols: Any = ()

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(f.default, Decimal) and not isinstance(value, Decimal):
                try:
                    object.__setattr__(self, f.name, Decimal(str(value)))
                except InvalidOperation:
                    raise ValueError(f"{f.name} must be a decimal number, not {value!r}") from None
        for name in ("fault_latency_ms", "fault_late_create_ms"):
            try:
                object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be (min, max) milliseconds, not {getattr(self, name)!r}") from None
        object.__setattr__(self, "extra_accounts", tuple(
            (str(k), str(s), Decimal(str(b))) for k, s, b in self.extra_accounts))
        if self.tick_size <= 0 or self.start_price <= 0 or self.balance < 0:
            raise ValueError("tick_size and start_price must be > 0, balance >= 0")
        for name in LIMIT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, not {value!r}")
        self.fault_config()  # validates the fault values
        object.__setattr__(self, "symbols", _symbol_table(self.symbols))
        self._instruments(())  # validates the per-symbol values (without reading a price file)

    @property
    def price_precision(self) -> int:
        """Decimals allowed in a price (from ``tick_size``)."""
        return max(0, -self.tick_size.normalize().as_tuple().exponent)

    def flow_config(self) -> FlowConfig:
        """The flow knobs as a ``FlowConfig`` (reads ``flow_price_csv`` if set)."""
        values = {dst: getattr(self, src) for src, dst in FLOW_FIELDS.items()}
        rows = tuple(load_price_csv(self.flow_price_csv)) if self.flow_price_csv else ()
        return FlowConfig(symbol=self.symbol, price_rows=rows, **values)

    def instruments(self) -> tuple[Instrument, ...]:
        """The instruments served: ``symbols`` (unset values from this config; the asset defaults
        to the symbol's base currency, the symbol id to its position), or ``symbol`` alone.
        ``flow_price_csv`` replays the first instrument's price; the others walk."""
        if not self.symbols:
            return (Instrument(self.symbol, self.asset, self.symbol_id, self.tick_size, self.start_price,
                               self.flow_config()),)
        return self._instruments(self._price_rows())

    def _instruments(self, first_rows: tuple[tuple[int, Decimal], ...]) -> tuple[Instrument, ...]:
        out = []
        for i, (symbol, knobs) in enumerate(self.symbols):
            values = dict(knobs)
            try:
                tick = Decimal(str(values.pop("tick_size", self.tick_size)))
                start = Decimal(str(values.pop("start_price", self.start_price)))
            except InvalidOperation:
                raise ValueError(f"symbols[{symbol!r}]: tick_size and start_price must be decimal numbers") from None
            if not (tick.is_finite() and start.is_finite() and tick > 0 and start > 0):
                raise ValueError(f"symbols[{symbol!r}]: tick_size and start_price must be > 0")
            asset = str(values.pop("asset", symbol.split("_", 1)[0]))
            symbol_id = values.pop("symbol_id", i + 1)
            if isinstance(symbol_id, bool) or not isinstance(symbol_id, int) or symbol_id < 1:
                raise ValueError(f"symbols[{symbol!r}]: symbol_id must be a whole number >= 1, not {symbol_id!r}")
            flow = {dst: getattr(self, src) for src, dst in FLOW_FIELDS.items()}
            for key, value in values.items():
                flow[FLOW_FIELDS[key]] = self._flow_value(symbol, key, value)
            out.append(Instrument(symbol, asset, symbol_id, tick, start,
                                  FlowConfig(symbol=symbol, price_rows=first_rows if i == 0 else (), **flow)))
        if len({i.symbol_id for i in out}) != len(out):
            raise ValueError("symbols: two symbols share a symbol_id")
        return tuple(out)

    def _flow_value(self, symbol: str, key: str, value: Any) -> Any:
        default = getattr(self, key)
        try:
            if isinstance(default, int):
                if isinstance(value, bool) or int(value) != value or int(value) < 0:
                    raise ValueError
                return int(value)
            number = Decimal(str(value))
            if not number.is_finite() or number < 0:
                raise ValueError
            return number
        except (TypeError, ValueError, InvalidOperation):
            kind = "a whole number >= 0" if isinstance(default, int) else "a decimal number >= 0"
            raise ValueError(f"symbols[{symbol!r}][{key!r}] must be {kind}, not {value!r}") from None

    def _price_rows(self) -> tuple[tuple[int, Decimal], ...]:
        return tuple(load_price_csv(self.flow_price_csv)) if self.flow_price_csv else ()

    def fault_config(self) -> FaultConfig:
        """The ``fault_*`` fields as a ``FaultConfig``."""
        values = {}
        for f in dataclasses.fields(self):
            if f.name.startswith(FAULT_PREFIX):
                values[_FAULT_RENAMES.get(f.name, f.name[len(FAULT_PREFIX):])] = getattr(self, f.name)
        return FaultConfig(**values)

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> SimConfig:
        """Read ``SIM_<FIELD>`` attributes (e.g. ``SIM_FAULT_DROP_RATE``) of a settings object."""
        values = {}
        for f in dataclasses.fields(cls):
            name = "SIM_" + f.name.upper()
            if hasattr(settings, name):
                values[f.name] = getattr(settings, name)
        values.update(overrides)
        return cls(**values)


def fault_field_to_config(name: str) -> str:
    """Map a ``SimConfig``/CLI fault name (``fault_5xx_rate``) to its ``FaultConfig`` field."""
    if name in _FAULT_RENAMES:
        return _FAULT_RENAMES[name]
    return name[len(FAULT_PREFIX):] if name.startswith(FAULT_PREFIX) else name
