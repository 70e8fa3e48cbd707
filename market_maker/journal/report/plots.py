"""The report's figures as PNG bytes (matplotlib, Agg, no pyplot: headless and no global state).

matplotlib is the optional ``report`` extra: ``available()`` says whether it is installed.
"""
from __future__ import annotations

import io
from typing import Dict, List, Optional, Sequence

from .attribution import SCALE
from .markouts import HORIZONS_MS
from .summary import RunReport

EXTRA_HINT = "pip install -e '.[report]'"
BUY, SELL = "#1a9850", "#d73027"
SIZE = (10, 3.6)


def available() -> bool:
    """Whether matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    except ImportError:
        return False
    return True


def _axes():
    """A new figure (not registered with pyplot) and its axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=SIZE, dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _finish(fig, ax, title: str, ylabel: str, over_time: bool = True) -> bytes:
    """Title, labels, time axis and legend; the figure as PNG bytes."""
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if over_time:
        _time_axis(ax)
    else:
        ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize=8)
    buf = io.BytesIO()
    fig.subplots_adjust(left=0.08, right=0.98, top=0.9, bottom=0.16)   # fixed: tight_layout costs a draw
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _times(ts: Sequence[int]):
    import numpy as np
    return np.asarray(ts, dtype="int64").astype("datetime64[ms]")


def _floats(values: Sequence[Optional[float]]):
    import numpy as np
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _time_axis(ax) -> None:
    import matplotlib.dates as mdates
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("time (UTC)")
    ax.grid(True, alpha=0.3)


def price_figure(r: RunReport) -> bytes:
    """Mid price, our best bid and ask (steps), our fills by side."""
    fig, ax = _axes()
    s = r.attribution.series
    if s.ts:
        ax.plot(_times(s.ts), s.mid, color="#555555", lw=0.8, label=f"{r.attribution.mid_source}")
    quotes = r.data.quotes
    if quotes:
        qt = _times([q[0] for q in quotes])
        ax.step(qt, _floats([q[1] for q in quotes]), where="post", color=BUY, lw=0.6, alpha=0.7, label="our bid")
        ax.step(qt, _floats([q[2] for q in quotes]), where="post", color=SELL, lw=0.6, alpha=0.7, label="our ask")
    for side, color, marker, name in ((1, BUY, "^", "buy fills"), (-1, SELL, "v", "sell fills")):
        mine = [f for f in r.data.fills if f.side == side]
        if mine:
            ax.scatter(_times([f.ts_ms for f in mine]), _floats([float(f.price_text) for f in mine]), s=12, c=color,
                       marker=marker, label=name, zorder=3, linewidths=0)
    return _finish(fig, ax, "Mid price, our best quotes and our fills", "price")


def inventory_figure(r: RunReport) -> bytes:
    """Net position (long - short) over time."""
    fig, ax = _axes()
    times = list(r.position_times) + [r.data.end_ms]
    nets = list(r.position_nets) + [r.position_nets[-1]]
    ax.step(_times(times), nets, where="post", color="#3060a0", lw=0.9)
    ax.axhline(0, color="black", lw=0.5)
    return _finish(fig, ax, "Net inventory (long - short)", "contracts")


def pnl_figure(r: RunReport) -> bytes:
    """Cumulative PnL components and the equity (marked to the mid), with the exchange's equity."""
    fig, ax = _axes()
    s = r.attribution.series
    cur = r.data.settle
    if s.ts:
        t = _times(s.ts)
        curves: Dict[str, List[int]] = {"spread capture": s.spread, "inventory": s.inventory, "fees": s.fees,
                                        "funding": s.funding}
        for name, values in curves.items():
            ax.plot(t, [v / SCALE for v in values], lw=0.9, label=name)
        ax.plot(t, r.equity_floats(), color="black", lw=1.3, label="equity (mid)")
    if r.data.margins:
        base = r.data.margins[0][1]
        ax.step(_times([m[0] for m in r.data.margins]), [m[1] - base for m in r.data.margins], where="post",
                color="#aa00aa", lw=0.9, ls="--", label="exchange equity change")
    ax.axhline(0, color="black", lw=0.5)
    return _finish(fig, ax, f"Cumulative PnL by component ({cur})", cur)


def markout_figure(r: RunReport) -> bytes:
    """Histogram of the markouts (bps) at each horizon."""
    fig, ax = _axes()
    values = [v for h in HORIZONS_MS for v in r.markouts.bps[h]]
    if values:
        import numpy as np
        lo, hi = np.percentile(values, [0.5, 99.5])
        if hi <= lo:
            lo, hi = lo - 1, hi + 1
        bins = np.linspace(lo, hi, 61)
        for h in HORIZONS_MS:
            data = np.clip(r.markouts.bps[h], lo, hi)
            if len(data):
                ax.hist(data, bins=bins, histtype="step", lw=1.2, label=f"{h // 1000} s (n={len(data)})")
        ax.axvline(0, color="black", lw=0.5)
    ax.set_xlabel("markout, bps (negative: the mid moved against us)")
    return _finish(fig, ax, "Markouts after our fills", "fills", over_time=False)


FIGURES = (
    ("price", "Mid price, our quotes and fills", price_figure),
    ("inventory", "Net inventory", inventory_figure),
    ("pnl", "Cumulative PnL components", pnl_figure),
    ("markouts", "Markout histogram", markout_figure),
)


def figures(r: RunReport) -> List[tuple]:
    """(key, caption, PNG bytes) of every figure of a run."""
    return [(key, caption, draw(r)) for key, caption, draw in FIGURES]
