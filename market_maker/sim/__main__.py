"""``python -m market_maker.sim``: serve the local GTE simulator until SIGINT/SIGTERM."""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys
from decimal import Decimal, InvalidOperation
from collections.abc import Sequence

from ..heap import freeze_startup_heap
from .config import SimConfig
from .server import SimServer

_DEFAULTS = SimConfig()
_FLOW_HELP = {
    "taker_rate": "synthetic taker orders per simulated second",
    "taker_mean_qty": "mean size of a synthetic taker order (contracts)",
    "taker_qty_sigma": "lognormal sigma of taker order sizes",
    "taker_slippage": "max relative distance of a taker's limit price from the reference",
    "volatility": "relative volatility of the reference price per sqrt(second)",
    "burst_rate": "volatility bursts per simulated second",
    "burst_mean_s": "mean length of a volatility burst (s)",
    "burst_mult": "volatility multiplier during a burst",
    "depth_levels": "price levels per side quoted by the background makers",
    "level_step_ticks": "ticks between two background quote levels",
    "half_spread_ticks": "ticks from the reference to the best background quote",
    "lp_accounts": "number of background liquidity-provider accounts",
    "lp_mean_qty": "mean size of a background quote (contracts)",
    "requote_prob": "chance per step that a background quote is refreshed",
    "speed": "simulated-time speed multiplier of the synthetic flow",
    "flow_balance": "balance of each synthetic flow account",
}

_LIMIT_HELP = {
    "ws_max_connections": "WebSocket connections open at once, all clients (more: HTTP 503)",
    "ws_max_per_address": "WebSocket connections open at once from one client address (more: HTTP 429)",
    "ws_max_subs_per_s": "subscribe requests per connection per second (more: -10053)",
    "ws_max_msg_bytes": "largest WebSocket message a client may send (larger: closed with 1009)",
    "ws_send_buffer_bytes": "unsent bytes after which a WebSocket consumer counts as stalled and is dropped",
    "max_body_bytes": "largest REST request body (larger: HTTP 413)",
    "history_limit": "final orders kept per account (client_oid lookups and order/query reach these)",
    "trade_history": "trades kept per symbol (trade/query, trade partials)",
}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a decimal number: {text!r}") from None


def _latency(text: str) -> tuple[int, int]:
    parts = text.replace(",", ":").split(":")
    try:
        low, high = (int(parts[0]), int(parts[-1]))
    except ValueError:
        raise argparse.ArgumentTypeError("expected MIN:MAX milliseconds") from None
    if len(parts) > 2 or low < 0 or high < low:
        raise argparse.ArgumentTypeError("expected MIN:MAX milliseconds with 0 <= MIN <= MAX")
    return low, high


def _account(text: str) -> tuple[str, str, Decimal]:
    parts = text.split(":")
    if len(parts) != 3 or not all(parts):
        raise argparse.ArgumentTypeError("expected KEY:SECRET:BALANCE")
    return parts[0], parts[1], _decimal(parts[2])


def _instrument(text: str) -> tuple[str, dict[str, str]]:
    symbol, _, rest = text.partition(":")
    knobs = {}
    for part in filter(None, rest.split(",")):
        key, eq, value = part.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise argparse.ArgumentTypeError(f"expected SYMBOL[:KEY=VALUE,...], got {text!r}")
        knobs[key.strip()] = value.strip()
    if not symbol.strip():
        raise argparse.ArgumentTypeError(f"expected SYMBOL[:KEY=VALUE,...], got {text!r}")
    return symbol.strip(), knobs


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface (every ``SimConfig`` knob)."""
    d = _DEFAULTS
    p = argparse.ArgumentParser(prog="python -m market_maker.sim",
                                description="Local GTE perpetual-contract exchange simulator "
                                            "(REST /v1/api/... and WebSocket /ws on one port).")
    net = p.add_argument_group("server")
    net.add_argument("--host", default=d.host, help="bind address (default %(default)s)")
    net.add_argument("--port", type=int, default=d.port, help="port, 0 = ephemeral (default %(default)s)")
    net.add_argument("--seed", type=int, default=d.seed, help="random seed of flow and faults")
    net.add_argument("--log-level", default="INFO", help="logging level (default %(default)s)")
    mkt = p.add_argument_group("market")
    mkt.add_argument("--symbol", default=d.symbol, help="instrument symbol (default %(default)s)")
    mkt.add_argument("--asset", default=d.asset, help="settle currency (default %(default)s)")
    mkt.add_argument("--symbol-id", type=int, default=d.symbol_id, help="symbol id of order-book ids")
    mkt.add_argument("--tick-size", type=_decimal, default=d.tick_size, help="price tick (default %(default)s)")
    mkt.add_argument("--start-price", type=_decimal, default=d.start_price, help="initial price")
    mkt.add_argument("--instrument", type=_instrument, action="append", default=[],
                     metavar="SYMBOL[:KEY=VALUE,...]",
                     help="serve this instrument (repeatable; replaces --symbol). KEY: asset, symbol_id, "
                          "tick_size, start_price or a flow knob (volatility, taker_rate...); unset ones take "
                          "the values of the other options, the asset the symbol's base currency. "
                          "E.g. ETH_USD:tick_size=0.05,start_price=300")
    mkt.add_argument("--funding-interval-s", type=int, default=d.funding_interval_s,
                     help="funding interval in seconds (default %(default)s)")
    acc = p.add_argument_group("accounts")
    acc.add_argument("--api-key", default=None, help="API key of the paper account (default: generated)")
    acc.add_argument("--api-secret", default=None, help="API secret of the paper account (default: generated)")
    acc.add_argument("--balance", type=_decimal, default=d.balance, help="paper balance in the settle currency")
    acc.add_argument("--account", type=_account, action="append", default=[], metavar="KEY:SECRET:BALANCE",
                     help="an extra account (repeatable)")
    flow = p.add_argument_group("synthetic market flow")
    flow.add_argument("--no-flow", action="store_true", help="no background makers/takers")
    flow.add_argument("--flow-price-csv", default=None, metavar="PATH",
                      help="replay the reference price from timestamp_ms,price rows")
    for name, text in _FLOW_HELP.items():
        kind = int if isinstance(getattr(d, name), int) else _decimal
        flow.add_argument("--" + name.replace("_", "-"), type=kind, default=getattr(d, name),
                          help=f"{text} (default %(default)s)")
    ws = p.add_argument_group("websocket and pacing")
    ws.add_argument("--ws-idle-timeout-s", type=_decimal, default=d.ws_idle_timeout_s,
                    help="close a WebSocket silent this long (default %(default)s)")
    ws.add_argument("--position-push-s", type=_decimal, default=d.position_push_s,
                    help="period of position/margin pushes (default %(default)s)")
    ws.add_argument("--instrument-push-s", type=_decimal, default=d.instrument_push_s,
                    help="period of instrument pushes (default %(default)s)")
    ws.add_argument("--tick-interval-ms", type=int, default=d.tick_interval_ms,
                    help="period of flow/funding/liquidation steps (default %(default)s)")
    ws.add_argument("--no-rate-limits", action="store_true", help="disable the documented rate limits")
    lim = p.add_argument_group("limits under load (refusals are logged once per client)")
    for name, text in _LIMIT_HELP.items():
        lim.add_argument("--" + name.replace("_", "-"), type=_positive_int, default=getattr(d, name),
                         help=f"{text} (default %(default)s)")
    f = p.add_argument_group("fault injection (all off by default)")
    f.add_argument("--fault-ws-disconnect-every-s", type=_decimal, default=Decimal(0),
                   help="close every WebSocket connection every N seconds")
    f.add_argument("--fault-drop-rate", type=_decimal, default=Decimal(0),
                   help="fraction of pushed messages dropped (their seq is skipped)")
    f.add_argument("--fault-dup-rate", type=_decimal, default=Decimal(0),
                   help="fraction of pushed messages sent twice (same seq)")
    f.add_argument("--fault-latency-ms", type=_latency, default=(0, 0), metavar="MIN:MAX",
                   help="uniform extra REST latency in milliseconds")
    f.add_argument("--fault-5xx-rate", type=_decimal, default=Decimal(0),
                   help="fraction of REST calls answered HTTP 502/503 before executing")
    f.add_argument("--fault-lost-response-rate", type=_decimal, default=Decimal(0),
                   help="fraction of order/create calls executed but never answered")
    f.add_argument("--fault-late-create-rate", type=_decimal, default=Decimal(0),
                   help="fraction of order/create calls authenticated on arrival, then held and "
                        "executed late even if the client gave up (never after their api-expires)")
    f.add_argument("--fault-late-create-ms", type=_latency, default=d.fault_late_create_ms, metavar="MIN:MAX",
                   help="how long a late create is held, uniform in milliseconds (default %(default)s)")
    f.add_argument("--fault-rate-limit-every-s", type=_decimal, default=Decimal(0),
                   help="start a forced -10053 burst every N seconds")
    f.add_argument("--fault-rate-limit-duration-s", type=_decimal, default=Decimal(0),
                   help="length of each forced -10053 burst in seconds")
    return p


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """``SimConfig`` from parsed arguments."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(SimConfig) if hasattr(args, f.name)}
    symbols = dict(args.instrument)
    if len(symbols) != len(args.instrument):
        raise ValueError("--instrument: a symbol is given twice")
    values.update(flow=not args.no_flow, rate_limits=not args.no_rate_limits,
                  extra_accounts=tuple(args.account), symbols=symbols)
    return SimConfig(**values)


def _banner(server: SimServer, generated: bool) -> str:
    cfg = server.config
    lines = ["GTE simulator running",
             f"  REST      {server.base_url}/v1/api",
             f"  WebSocket {server.ws_url}",
             f"  stats     {server.base_url}/sim/stats",
             f"  symbols   {', '.join(f'{s} ({i.asset})' for s, i in server.exchange.instruments.items())}",
             f"  account   {server.account_id} ({cfg.balance} in {', '.join(server.assets)})",
             f"  api key   {server.api_key}"]
    if generated:
        lines.append(f"  api secret {server.api_secret}   (generated; shown once)")
    return "\n".join(lines)


async def serve(config: SimConfig) -> None:
    """Run until SIGINT/SIGTERM, then shut down cleanly."""
    server = SimServer(config)
    await server.start()
    freeze_startup_heap()
    generated = not (config.api_key and config.api_secret)
    print(_banner(server, generated), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
        print("GTE simulator stopped", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"invalid configuration: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
