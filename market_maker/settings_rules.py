"""The validation rules of the settings: what each setting may be, and how settings must agree.

:func:`validate` converts every value of :data:`RULES` (numbers to ``Decimal``, lists to tuples...) and
checks it; the first problem raises a ``SettingsError`` naming the setting and what is allowed.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Dict, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from .settings_file import SettingsError, masked

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Upper bounds. GTE's instrument rows state no maximum order size (gte-api.md §2), so the largest order
# the bot may send is this constant (BitMEX's maximum order quantity for its inverse perpetual).
MAX_ORDER_QTY = 10_000_000
MAX_POSITION_QTY = 1_000_000_000  # contracts, for MIN_POSITION / MAX_POSITION
MAX_AMOUNT = Decimal(1_000_000)  # settle currency, for balances and MAX_DRAWDOWN
MINUTE, HOUR, DAY = 60, 3600, 86400
MAX_SYMBOLS = 50  # bot processes one supervisor runs
SIM_MAX_START_TICKS = 10_000_000  # the simulator's prices are below 100 000 000 ticks: room for the market to move


@dataclass(frozen=True)
class Rule:
    convert: Callable[[str, Any], Any]
    allowed: str
    check: Callable[[Any], bool] = lambda value: True


def _bad(name: str, value: Any, allowed: str) -> SettingsError:
    return SettingsError(f"{name} = {_shown(masked(name, value))} is not allowed: {allowed}")


def _shown(value: Any, most: int = 80) -> str:
    """The repr of a value, shortened (a settings file may hold a 10 000-digit number)."""
    try:
        text = repr(value)
    except ValueError:  # an int too long for str()
        return "<a number too long to show>"
    return text if len(text) <= most else text[:most - 15] + "...(shortened)"


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError
    return value


def _number(name: str, value: Any) -> Decimal:
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, (int, Decimal)):
        result = Decimal(value)
    elif isinstance(value, (str, float)):
        result = Decimal(str(value))  # str() of a float is its shortest exact-looking form: 0.005 -> "0.005"
    else:
        raise TypeError
    if not result.is_finite():
        raise TypeError
    return result


def _seconds(name: str, value: Any) -> float:
    return float(_number(name, value))  # a duration, not money: float is what time.sleep and Event.wait take


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError
    return value


def _optional_str(name: str, value: Any) -> Optional[str]:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError
    return value


def _str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError
    return value


def _files(name: str, value: Any) -> Optional[Tuple[str, ...]]:
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        return (os.fspath(value),)
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, os.PathLike)) for v in value):
        return tuple(os.fspath(v) for v in value)
    raise TypeError


def _symbols(name: str, value: Any) -> Tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise TypeError
    symbols = tuple(v.strip() for v in value)
    if len(set(symbols)) != len(symbols) or not all(_SYMBOL.fullmatch(v) for v in symbols):
        raise ValueError
    return symbols


def _sim_symbols(name: str, value: Any) -> Any:
    if value is None or value == ():
        return ()
    if not isinstance(value, (dict, tuple)):  # a tuple: the validated form, validated again by replace()
        raise TypeError
    from .sim.config import SimConfig  # only when set: the bot does not import the simulator otherwise
    return SimConfig(symbols=value).symbols  # ValueError when a key or value is wrong


def _ms_range(name: str, value: Any) -> Tuple[int, int]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError
    return _int(name, value[0]), _int(name, value[1])


def _between(low: Decimal, high: Decimal, low_open: bool = False, high_open: bool = False) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        above = v > low if low_open else v >= low
        below = v < high if high_open else v <= high
        return above and below
    return check


_PREFIX = re.compile(r"[A-Za-z0-9_-]{1,13}")
_SYMBOL = re.compile(r"[A-Z0-9]+_[A-Z0-9]+")
_STRATEGY = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def _url(schemes: Tuple[str, ...]) -> Callable[[Optional[str]], bool]:
    def check(v: Optional[str]) -> bool:
        if v is None:
            return True
        try:
            parts = urlsplit(v)
            parts.port  # raises ValueError when out of range
        except ValueError:
            return False
        return parts.scheme in schemes and bool(parts.hostname)
    return check



# ops settings (market_maker/ops reads them; the syntax is checked here so a bad one stops the bot at start)
_NOTIFY_URL = re.compile(r"(discord|slack)://([A-Za-z0-9_]{0,32})|telegram://(-?[0-9]{1,20})")
_ADDRESS = re.compile(r"(?:(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):)?([0-9]{1,5})")


def _address(name: str, value: Any) -> Optional[Tuple[str, int]]:
    """ "host:port" or "port" -> (host, port); a bare port binds the loopback interface."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError
    match = _ADDRESS.fullmatch(value)
    if not match:
        raise ValueError
    host = (match.group(1) or "127.0.0.1").strip("[]")
    port = int(match.group(2))
    if port > 65535:
        raise ValueError
    return host, port


def is_notify_url(value: str) -> bool:
    if _NOTIFY_URL.fullmatch(value):
        return True
    return _url(("http", "https"))(value) and "@" not in urlsplit(value).netloc


def _notify_urls(name: str, value: Any) -> Tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise TypeError
    return tuple(value)


def _chat_ids(name: str, value: Any) -> Tuple[int, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise TypeError
    return tuple(_int(name, v) for v in value)


def _fractions(name: str, value: Any) -> Tuple[Decimal, ...]:
    if not isinstance(value, (list, tuple)):
        raise TypeError
    return tuple(_number(name, v) for v in value)


def _seconds_rule(most: int, shown: str, zero: bool = False) -> Rule:
    low = "0 or more" if zero else "greater than 0"
    return Rule(_seconds, f"a number of seconds {low}, at most {most} ({shown})",
                _between(Decimal(0), Decimal(most), low_open=not zero))


def _amount_rule(zero: bool, most: Decimal = MAX_AMOUNT) -> Rule:
    low = "0 or more" if zero else "greater than 0"
    return Rule(_number, f"a number {low}, at most {most}", _between(Decimal(0), most, low_open=not zero))


def _whole_rule(low: int, high: int, unit: str) -> Rule:
    return Rule(_int, f"a whole number of {unit} from {low} to {high}", lambda v: low <= v <= high)



def _positive_pair(name: str, value: Any) -> Tuple[Decimal, Decimal]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError
    return _number(name, value[0]), _number(name, value[1])


def _pair_rule(most: Decimal, unit: str) -> Rule:
    return Rule(_positive_pair, f"(low, high): two numbers ({unit}) with 0 < low <= high <= {most}",
                lambda v: 0 < v[0] <= v[1] <= most)


def _positive_rule(most: Decimal, unit: str) -> Rule:
    return Rule(_number, f"a number greater than 0 ({unit}), at most {most}",
                _between(Decimal(0), most, low_open=True))


def _fair_value(v: str) -> bool:
    from .strategies.fairvalue import parse_spec
    try:
        parse_spec(v)
    except ValueError:
        return False
    return True


_FRACTION = Rule(_number, "a number from 0 to 1", _between(Decimal(0), Decimal(1)))
_SIZE = _whole_rule(1, MAX_ORDER_QTY, "contracts")
_POSITION = _whole_rule(-MAX_POSITION_QTY, MAX_POSITION_QTY, "contracts")

RULES: Dict[str, Rule] = {
    "BASE_URL": Rule(_optional_str, 'None or a URL starting with "http://" or "https://" and naming a host',
                     _url(("http", "https"))),
    "WS_URL": Rule(_optional_str, 'None or a URL starting with "ws://" or "wss://" and naming a host',
                   _url(("ws", "wss"))),
    "API_KEY": Rule(_optional_str, "None or a string"),
    "API_SECRET": Rule(_optional_str, "None or a string"),
    "TIMEOUT": _seconds_rule(5 * MINUTE, "5 minutes"),
    "WS_PING_INTERVAL": _seconds_rule(5 * MINUTE, "5 minutes"),
    "WS_SILENCE_TIMEOUT": _seconds_rule(HOUR, "an hour"),
    "INSTRUMENTTYPE": Rule(_str, '"pc" (perpetual contracts)', lambda v: v == "pc"),
    "SETTLECURRENCY": Rule(_str, 'an upper-case currency code such as "BTC"', lambda v: v.isalnum() and v.isupper()),
    "SYMBOL": Rule(_str, 'a symbol such as "BTC_USD"', lambda v: bool(_SYMBOL.fullmatch(v))),
    "LEVERAGE": Rule(_number, "a number from 1 to 100 with at most 2 decimals",
                     lambda v: 1 <= v <= 100 and v == v.quantize(Decimal("0.01"))),
    "MARGIN_MODE": Rule(_str, '"cross" or "isolated"', lambda v: v in ("cross", "isolated")),
    "ORDER_PAIRS": Rule(_int, "a whole number from 1 to 50", lambda v: 1 <= v <= 50),
    "ORDER_START_SIZE": _SIZE,
    "ORDER_STEP_SIZE": _whole_rule(0, MAX_ORDER_QTY, "contracts"),
    "RANDOM_ORDER_SIZE": Rule(_bool, "True or False"),
    "MIN_ORDER_SIZE": _SIZE,
    "MAX_ORDER_SIZE": _SIZE,
    "INTERVAL": Rule(_number, "a number strictly between 0 and 1", _between(Decimal(0), Decimal(1), True, True)),
    "MIN_SPREAD": Rule(_number, "a number from 0 up to (not including) 1", _between(Decimal(0), Decimal(1), False, True)),
    "MAINTAIN_SPREADS": Rule(_bool, "True or False"),
    "RELIST_INTERVAL": Rule(_number, "a number from 0 up to (not including) 1",
                            _between(Decimal(0), Decimal(1), False, True)),
    "POST_ONLY": Rule(_bool, "True or False"),
    "CHECK_POSITION_LIMITS": Rule(_bool, "True or False"),
    "MIN_POSITION": _POSITION,
    "MAX_POSITION": _POSITION,
    "MAX_DRAWDOWN": _amount_rule(zero=True),
    "MAX_MARGIN_USAGE": _FRACTION,
    "STALE_DATA_SECONDS": _seconds_rule(DAY, "a day"),
    "DRY_RUN": Rule(_bool, "True or False"),
    "DRY_BTC": _amount_rule(zero=False),
    "LOOP_INTERVAL": _seconds_rule(HOUR, "an hour"),
    "REQUOTE_DEBOUNCE_MS": _whole_rule(0, MINUTE * 1000, "milliseconds"),
    "API_REST_INTERVAL": _seconds_rule(MINUTE, "a minute", zero=True),
    "API_ERROR_INTERVAL": _seconds_rule(HOUR, "an hour", zero=True),
    "ORDERID_PREFIX": Rule(_str, "1 to 13 characters of A-Z a-z 0-9 _ -", lambda v: bool(_PREFIX.fullmatch(v))),
    "WATCHED_FILES": Rule(_files, "None, a path, or a list of paths"),
    "STRATEGY": Rule(_optional_str, '"" or "module:Class"', lambda v: v is None or bool(_STRATEGY.fullmatch(v))),
    "LOG_LEVEL": Rule(_str, " ".join(LOG_LEVELS), lambda v: v in LOG_LEVELS),
    "NOTIFY_URLS": Rule(_notify_urls, 'a list of "discord://", "discord://NAME", "slack://", "slack://NAME", '
                        '"telegram://CHAT_ID" (a whole number) or "https://..." URLs (no user:password@ in them: '
                        'secrets come from environment variables)', lambda v: all(is_notify_url(u) for u in v)),
    "NOTIFY_WS_DOWN_SECONDS": Rule(_seconds, "a number of seconds from 1 to 3600",
                                   _between(Decimal(1), Decimal(HOUR))),
    "NOTIFY_MIN_INTERVAL": _seconds_rule(HOUR, "an hour", zero=True),
    "NOTIFY_REJECT_BURST": _whole_rule(1, 10_000, "orders"),
    "NOTIFY_RESYNC_STORM": _whole_rule(1, 10_000, "resyncs"),
    "NOTIFY_DRAWDOWN_FRACTIONS": Rule(_fractions, "a list of ascending numbers, each above 0 and at most 1",
                                      lambda v: all(0 < f <= 1 for f in v) and list(v) == sorted(set(v))),
    "NOTIFY_DAILY_UTC_HOUR": _whole_rule(0, 23, "hours"),
    "TELEGRAM_API_URL": Rule(_str, 'a URL starting with "http://" or "https://" and naming a host',
                             _url(("http", "https"))),
    "CONTROL_ADDRESS": Rule(_address, 'None, "host:port" or "port" (port 0 to 65535)'),
    "CONTROL_TELEGRAM_CHATS": Rule(_chat_ids, "a list of Telegram chat ids (whole numbers)"),
    "FLATTEN_SLIPPAGE": Rule(_number, "a number from 0.0001 to 0.1", _between(Decimal("0.0001"), Decimal("0.1"))),
    "FLATTEN_STEP_SECONDS": Rule(_seconds, "a number of seconds from 0.05 to 60",
                                 _between(Decimal("0.05"), Decimal(MINUTE))),
    "FLATTEN_STEP_TICKS": _whole_rule(1, 10_000, "ticks"),
    "FLATTEN_TIMEOUT": Rule(_seconds, "a number of seconds from 1 to 3600", _between(Decimal(1), Decimal(HOUR))),
    "METRICS_ADDRESS": Rule(_address, 'None, "host:port" or "port" (port 0 to 65535)'),
    "JOURNAL_PATH": Rule(_str, '"" (no journal) or the path of an SQLite file', lambda v: "\0" not in v),
    "SYMBOLS": Rule(_symbols, f'None, or up to {MAX_SYMBOLS} different symbols such as ["BTC_USD", "ETH_USD"] '
                    'or "BTC_USD,ETH_USD"', lambda v: len(v) <= MAX_SYMBOLS),
    "SUPERVISOR_LOG_DIR": Rule(_str, "a directory path", lambda v: bool(v.strip())),
    "SUPERVISOR_MAX_BACKOFF": _seconds_rule(HOUR, "an hour"),
    "SIM_SYMBOLS": Rule(_sim_symbols, 'None or {"SYMBOL": {KEY: value}}, KEY one of asset, symbol_id, tick_size, '
                        'start_price or a flow knob (volatility, taker_rate, depth_levels...), values > 0'),
    "AS_GAMMA": _positive_rule(Decimal(1000), "per price unit"),
    "AS_HORIZON_S": _seconds_rule(DAY, "a day"),
    "GLFT_GAMMA": _positive_rule(Decimal(1000), "per price unit"),
    "INVENTORY_LIMIT": _whole_rule(1, MAX_POSITION_QTY, "contracts"),
    "QUOTE_SPACING_TICKS": _whole_rule(1, 10_000, "ticks"),
    "VOL_WINDOW_S": _seconds_rule(DAY, "a day"),
    "VOL_FALLBACK": _positive_rule(Decimal(1), "relative move per sqrt(second)"),
    "VOL_BOUNDS": _pair_rule(Decimal(1), "relative move per sqrt(second)"),
    "INTENSITY_WINDOW_S": _seconds_rule(DAY, "a day"),
    "INTENSITY_BUCKET": _positive_rule(Decimal(10_000_000), "price units"),
    "INTENSITY_BUCKETS": _whole_rule(3, 1000, "buckets"),
    "INTENSITY_A": _positive_rule(Decimal(1_000_000), "fills per second"),
    "INTENSITY_K": _positive_rule(Decimal(1_000_000), "per price unit"),
    "INTENSITY_A_BOUNDS": _pair_rule(Decimal(1_000_000), "fills per second"),
    "INTENSITY_K_BOUNDS": _pair_rule(Decimal(1_000_000), "per price unit"),
    "FAIR_VALUE": Rule(_str, '"mid", "microprice", "binance:SYMBOL" or "gateio:SYMBOL"', _fair_value),
    "FAIR_VALUE_URL": Rule(_optional_str, 'None or a URL starting with "ws://" or "wss://" and naming a host',
                           _url(("ws", "wss"))),
    "FAIR_VALUE_STALE_S": _seconds_rule(HOUR, "an hour"),
    "FAIR_VALUE_MAX_DEVIATION": Rule(_number, "a number greater than 0, at most 1",
                                     _between(Decimal(0), Decimal(1), low_open=True)),
    "FAIR_VALUE_CONNECT_TIMEOUT_S": _seconds_rule(5 * MINUTE, "5 minutes"),
    "SIM_SEED": Rule(_int, "a whole number from 0 to 2**63 - 1", lambda v: 0 <= v < 2 ** 63),
    "SIM_START_PRICE": Rule(_number, "a price greater than 0, at most 10000000",
                            _between(Decimal(0), Decimal(10_000_000), low_open=True)),
    "SIM_TICK_SIZE": Rule(_number, "a number from 0.00000001 to 1000", _between(Decimal("1e-8"), Decimal(1000))),
    "SIM_BALANCE": _amount_rule(zero=False),
    "SIM_FLOW": Rule(_bool, "True or False"),
    "SIM_SPEED": Rule(_number, "a number greater than 0, at most 1000",
                      _between(Decimal(0), Decimal(1000), low_open=True)),
    "SIM_VOLATILITY": Rule(_number, "a number from 0 to 0.1", _between(Decimal(0), Decimal("0.1"))),
    "SIM_TAKER_RATE": Rule(_number, "a number of takers per second from 0 to 1000",
                           _between(Decimal(0), Decimal(1000))),
    "SIM_TAKER_MEAN_QTY": Rule(_number, f"a number of contracts greater than 0, at most {MAX_ORDER_QTY}",
                               _between(Decimal(0), Decimal(MAX_ORDER_QTY), low_open=True)),
    "SIM_DEPTH_LEVELS": Rule(_int, "a whole number from 1 to 500", lambda v: 1 <= v <= 500),
    "SIM_LEVEL_STEP_TICKS": _whole_rule(1, 10_000, "ticks"),
    "SIM_FUNDING_INTERVAL": Rule(_seconds, "a number of seconds from 1 to 604800 (a week)",
                                 _between(Decimal(1), Decimal(7 * DAY))),
    "SIM_FAULT_WS_DISCONNECT_EVERY_S": _seconds_rule(DAY, "a day", zero=True),
    "SIM_FAULT_DROP_RATE": _FRACTION,
    "SIM_FAULT_DUP_RATE": _FRACTION,
    "SIM_FAULT_5XX_RATE": _FRACTION,
    "SIM_FAULT_LOST_RESPONSE_RATE": _FRACTION,
    "SIM_FAULT_LATE_CREATE_RATE": _FRACTION,
    "SIM_FAULT_LATE_CREATE_MS": Rule(_ms_range, "(min, max) whole milliseconds with 0 <= min <= max",
                                     lambda v: 0 <= v[0] <= v[1]),
}


def validate(values: Mapping[str, Any]) -> Dict[str, Any]:
    """Convert and check every setting; the first problem raises a SettingsError naming it."""
    result = dict(values)
    for name, rule in RULES.items():
        value = values.get(name)
        try:
            converted = rule.convert(name, value)
            allowed = rule.check(converted)
        except (TypeError, ValueError, ArithmeticError):
            allowed = False
        if not allowed:
            raise _bad(name, value, rule.allowed) from None
        result[name] = converted
    _check_together(result)
    return result


def _check_together(v: Mapping[str, Any]) -> None:
    if not v["RANDOM_ORDER_SIZE"]:
        largest = v["ORDER_START_SIZE"] + (v["ORDER_PAIRS"] - 1) * v["ORDER_STEP_SIZE"]
        if largest > MAX_ORDER_QTY:
            raise SettingsError(f"the outermost order of the ladder, ORDER_START_SIZE + (ORDER_PAIRS - 1) x "
                                f"ORDER_STEP_SIZE = {largest} contracts, is over the largest order allowed "
                                f"({MAX_ORDER_QTY})")
    ticks = v["SIM_START_PRICE"] / v["SIM_TICK_SIZE"]
    if not 10 <= ticks <= SIM_MAX_START_TICKS:
        raise SettingsError(f"SIM_START_PRICE ({v['SIM_START_PRICE']}) must be from 10 to {SIM_MAX_START_TICKS} "
                            f"ticks of SIM_TICK_SIZE ({v['SIM_TICK_SIZE']}); it is {ticks:f}")
    if v["INVENTORY_LIMIT"] < v["ORDER_START_SIZE"]:
        raise SettingsError(f"INVENTORY_LIMIT ({v['INVENTORY_LIMIT']}) must be at least one order, ORDER_START_SIZE "
                            f"({v['ORDER_START_SIZE']} contracts)")
    for name in ("INTENSITY_A", "INTENSITY_K"):
        low, high = v[name + "_BOUNDS"]
        if not low <= v[name] <= high:
            raise SettingsError(f"{name} ({v[name]}) must lie within {name}_BOUNDS ({low}, {high})")
    low, high = v["VOL_BOUNDS"]
    if not low <= v["VOL_FALLBACK"] <= high:
        raise SettingsError(f"VOL_FALLBACK ({v['VOL_FALLBACK']}) must lie within VOL_BOUNDS ({low}, {high})")
    if v["MIN_POSITION"] >= v["MAX_POSITION"]:
        raise SettingsError(f"MIN_POSITION ({v['MIN_POSITION']}) must be less than MAX_POSITION ({v['MAX_POSITION']})")
    if v["MIN_ORDER_SIZE"] > v["MAX_ORDER_SIZE"]:
        raise SettingsError(f"MIN_ORDER_SIZE ({v['MIN_ORDER_SIZE']}) must not exceed MAX_ORDER_SIZE "
                            f"({v['MAX_ORDER_SIZE']})")
    if v["BASE_URL"]:
        if not v["WS_URL"]:
            raise SettingsError("WS_URL must be set when BASE_URL is set (e.g. \"wss://td.gte.io/ws\")")
        if not v["DRY_RUN"] and not (v["API_KEY"] and v["API_SECRET"]):
            raise SettingsError("API_KEY and API_SECRET (or env GTE_API_KEY and GTE_API_SECRET) must be set "
                                "when BASE_URL is set and DRY_RUN is False")
