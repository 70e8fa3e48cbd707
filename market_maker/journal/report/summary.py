"""One run's report: the figures (``build``) and their plain-text rendering (``text``)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import List, Optional, Tuple

from . import stats
from .attribution import Attribution, SCALE, attribute, inverse, mark_at, units_text
from .markouts import HORIZONS_MS, Markouts, markouts
from .model import RunData

LABEL_WIDTH = 46
COMPONENT_LABELS = {
    "spread": "spread capture",
    "inventory": "inventory (marked to the mid)",
    "mark_basis": "mark vs mid (exchange marks at its mark)",
    "fees": "fees and rebates",
    "funding": "funding",
    "rounding": "exchange ledger rounding (1e-12)",
    "unexplained": "unexplained (missing from the journal)",
}


@dataclass
class RunReport:
    """Everything shown about one run."""
    data: RunData
    attribution: Attribution
    markouts: Markouts
    uptime: Optional[float]
    position_times: List[int]
    position_nets: List[int]
    inventory_max: int
    inventory_avg: Optional[float]
    drawdown: float
    sharpe: Optional[float]
    margin_max: Optional[float]
    margin_avg: Optional[float]
    volume_contracts: int
    volume_settle: int               # units (1e-20)
    maker_fills: int
    maker_contracts: int
    last_mid: Optional[Decimal]

    @property
    def net_settle(self) -> Decimal:
        return Decimal(self.attribution.net).scaleb(-20)

    def equity_floats(self) -> List[float]:
        s = self.attribution.series
        return [(s.spread[k] + s.inventory[k] + s.fees[k] + s.funding[k]) / SCALE for k in range(len(s.ts))]


def build(data: RunData) -> RunReport:
    """Compute a run's figures."""
    mid_ts, mid_text, source = data.mid_ts, data.mid_text, "mid"
    if not mid_ts and data.mark_ts:
        mid_ts, mid_text, source = data.mark_ts, data.mark_text, "mark"
    first, last = data.equity_first, data.equity_last
    mark_start = mark_at(first[0] if first else data.start_ms, data.mark_ts, data.mark_text)
    mark_end = mark_at(last[0] if last else data.end_ms, data.mark_ts, data.mark_text)
    attr = attribute(data.fills, mid_ts, mid_text, data.funding, net_end=data.position_end,
                     mark_start=mark_start, mark_end=mark_end,
                     equity_start=Decimal(first[1]) if first else None,
                     equity_end=Decimal(last[1]) if last else None)
    if source == "mark" and attr.mid_source == "mid":
        attr.mid_source = "mark"
    s = attr.series
    if attr.mid_source == "fills":         # no market data: nothing to mark the fills out against
        marks = markouts(data.fills, attr.fill_mid, [], [], [])
    else:
        marks = markouts(data.fills, attr.fill_mid, s.ts, s.mid, s.mid_text)
    times, nets = stats.net_position_path(data.start_ms, attr.net_start, data.fills)
    inv_max, inv_avg = stats.inventory_stats(times, nets, data.end_ms)
    report = RunReport(
        data=data, attribution=attr, markouts=marks,
        uptime=stats.quote_uptime(data.start_ms, data.end_ms, data.quotes, data.events),
        position_times=times, position_nets=nets, inventory_max=inv_max, inventory_avg=inv_avg,
        drawdown=0.0, sharpe=None, margin_max=None, margin_avg=None,
        volume_contracts=sum(f.qty for f in data.fills),
        volume_settle=sum(f.qty * n for f, n in zip(data.fills, _inverses(data.fills))),
        maker_fills=sum(1 for f in data.fills if f.maker == 1),
        maker_contracts=sum(f.qty for f in data.fills if f.maker == 1),
        last_mid=Decimal(mid_text[-1]) if mid_text else None)
    equity = report.equity_floats()
    report.drawdown = stats.max_drawdown(equity)
    report.sharpe = stats.sharpe(stats.per_minute(attr.series.ts, equity, data.start_ms, data.end_ms))
    report.margin_max, report.margin_avg = stats.margin_usage(data.margins, data.end_ms)
    return report


def _inverses(fills) -> List[int]:
    """inverse(price) of each fill, computed once per distinct price."""
    cache: dict = {}
    out = []
    for f in fills:
        v = cache.get(f.price_text)
        if v is None:
            v = cache[f.price_text] = inverse(Decimal(f.price_text))
        out.append(v)
    return out


# ------------------------------------------------------------------------------------------------ rendering

def utc(ts_ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts_ms / 1000)) + f".{ts_ms % 1000:03d} UTC"


def duration_text(ms: int) -> str:
    s = ms // 1000
    days, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if days:
        return f"{days}d {h:02d}h {m:02d}m {s:02d}s"
    return f"{h}h {m:02d}m {s:02d}s" if h else f"{m}m {s:02d}s"


def settle_text(units: int, places: int = 8) -> str:
    """Units rounded to ``places`` decimals, for the summary (the attribution shows them exact)."""
    return f"{Decimal(units).scaleb(-20):.{places}f}"


def exact_text(units: int) -> str:
    """Units with all 20 decimals, so that a column of them aligns."""
    sign = "-" if units < 0 else " "
    whole, frac = divmod(abs(units), SCALE)
    return f"{sign}{whole}.{frac:020d}"


def pct(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{100 * x:.2f} %"


def num(x: Optional[float], fmt: str = ".2f") -> str:
    return "n/a" if x is None else format(x, fmt)


def title(r: RunReport) -> str:
    run = r.data.run
    return (f"Run {run['run_id']}: {run['mode']} {run['symbol']} (settle {run['settle_currency']}), "
            f"strategy {run['strategy']}, version {run['version']}")


def summary_rows(r: RunReport) -> List[Tuple[str, str]]:
    """(label, value) rows of the summary, shared by the text and the HTML."""
    d, a, cur = r.data, r.attribution, r.data.settle
    req = d.requests
    stopped = (f"{utc(d.end_ms)} (exit {d.run['exit_status']})" if d.stopped
               else f"not recorded (running or crashed); last record {utc(d.end_ms)}")
    fills = len(d.fills)
    rows = [
        ("started", utc(d.start_ms)),
        ("stopped", stopped),
        ("duration", duration_text(d.end_ms - d.start_ms)),
        ("quote uptime (both sides quoted)", pct(r.uptime)),
        ("orders sent / cancelled / rejected", f"{req['sent']} / {req['cancelled']} / {req['rejected']}"),
        ("creates in doubt / errors; cancels not found", f"{req['in_doubt']} / {req['create_errors']}; "
                                                         f"{req['cancel_misses']}"),
    ]
    if req["paper"]:
        rows.append(("paper orders (dry run)", str(req["paper"])))
    rows += [
        ("API calls / per fill", f"{req['api_calls']} / {num(req['api_calls'] / fills if fills else None)}"),
        ("fills / maker share (of fills, of contracts)",
         f"{fills} / {pct(r.maker_fills / fills if fills else None)}, "
         f"{pct(r.maker_contracts / r.volume_contracts if r.volume_contracts else None)}"),
        ("volume", f"{r.volume_contracts} contracts, {settle_text(r.volume_settle)} {cur}"),
    ]
    source = a.mid_source if a.mid_source != "fills" else "fill price"
    usd = (f" = {r.net_settle * r.last_mid:.2f} USD at {source} {r.last_mid}" if r.last_mid is not None else "")
    if a.mid_source in ("mark", "fills"):
        rows.append(("mid prices", f"none in the journal: the {source}s stand for them"))
    elif a.mid_source == "none":
        rows.append(("mid prices", "none in the journal"))
    basis = "exchange equity change" if a.exchange_change is not None else "computed; no margins rows"
    rows += [
        ("net PnL", f"{settle_text(a.net)} {cur}{usd} ({basis})"),
        ("max drawdown (equity marked to the mid)", f"{r.drawdown:.8f} {cur}"),
        ("net position start / end", f"{a.net_start} / {a.net_end} contracts"),
        ("inventory |net| max / time-average", f"{r.inventory_max} / {num(r.inventory_avg, '.1f')} contracts"),
        ("margin used max / time-average", f"{num(r.margin_max, '.8f')} / {num(r.margin_avg, '.8f')} {cur}"),
        ("return on margin (net PnL / max, / average)",
         f"{pct(float(r.net_settle) / r.margin_max if r.margin_max else None)} / "
         f"{pct(float(r.net_settle) / r.margin_avg if r.margin_avg else None)}"),
        ("Sharpe (per-minute equity changes, annualised)", num(r.sharpe)),
    ]
    return rows


def attribution_rows(r: RunReport) -> List[Tuple[str, int]]:
    """(label, units) of each component, then the net PnL."""
    parts = r.attribution.parts()
    return [(COMPONENT_LABELS[name], parts[name]) for name in COMPONENT_LABELS] + [("net PnL", r.attribution.net)]


def markout_rows(r: RunReport) -> List[Tuple[str, List[str]]]:
    """(label, one value per horizon) rows of the markout table."""
    m = r.markouts
    return [
        ("fills with a markout", [str(m.count(h)) for h in HORIZONS_MS]),
        ("mean, price", [num(m.mean(h), ".4f") for h in HORIZONS_MS]),
        ("mean, bps", [num(m.mean_bps(h), ".3f") for h in HORIZONS_MS]),
    ]


def horizon_label(h: int) -> str:
    return f"{h // 1000} s"


def text(r: RunReport) -> str:
    """The summary as aligned plain text."""
    w = LABEL_WIDTH
    lines = [title(r)]
    lines += [f"{label:<{w}} {value}" for label, value in summary_rows(r)]
    a = r.attribution
    lines.append(f"PnL attribution ({r.data.settle}, exact)")
    lines += [f"  {label:<{w - 2}} {exact_text(units)}" for label, units in attribution_rows(r)]
    if a.exchange_change is None:
        lines.append("  (no margins rows: the net PnL is the sum of the components, not the exchange's figure)")
    heads = "".join(f"{horizon_label(h):>10}" for h in HORIZONS_MS)
    lines.append(f"{'markouts (mid move after a fill, our side)':<{w}}{heads}")
    lines += [f"  {label:<{w - 2}}" + "".join(f"{v:>10}" for v in values) for label, values in markout_rows(r)]
    return "\n".join(lines)


__all__ = ["RunReport", "build", "text", "summary_rows", "attribution_rows", "markout_rows", "units_text"]
