"""What a sweep writes: results.csv, summary.txt and the heatmaps, published into the output folder at once.

Everything is made in memory first and written into a fresh folder beside the output folder, which
then becomes it (or whose files replace the old ones): a sweep that fails part-way leaves the folder
as it was. Only deterministic figures are written (no wall-clock time), so the same sweep gives the
same bytes wherever it ran.
"""
from __future__ import annotations

import csv
import io
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from .grid import Axis, Combo
from .runs import RunResult

FIGURES = ("heatmap_pnl.png", "heatmap_sharpe.png")
FILES = ("results.csv", "summary.txt") + FIGURES
METRICS = ("net_pnl", "sharpe", "max_drawdown", "inventory_std", "fills", "maker_fills", "volume", "sim_seconds")


def _float_text(value: float) -> str:
    return repr(value) if math.isfinite(value) else str(value)  # repr: the shortest text that reads back exactly


def results_csv(axes: Sequence[Axis], combos: Sequence[Combo], results: Sequence[RunResult]) -> str:
    """One row per run, sorted by (combination, seed): its parameters as written, the seed and its figures."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([axis.name for axis in axes] + ["seed", *METRICS])
    for r in sorted(results, key=lambda r: r.key):
        figures = [f"{r.net_pnl:f}", _float_text(r.sharpe), f"{r.max_drawdown:f}", _float_text(r.inventory_std),
                   r.fills, r.maker_fills, r.volume, _float_text(r.sim_seconds)]
        writer.writerow([label for _, label in combos[r.combo_index].labels] + [r.seed, *figures])
    return out.getvalue()


@dataclass(frozen=True)
class ComboStats:
    """A combination's figures over its seeds."""
    combo: Combo
    runs: int
    mean_pnl: Decimal
    sd_pnl: float
    mean_sharpe: float  # over the seeds whose Sharpe is defined; NaN when none is
    mean_drawdown: Decimal
    mean_inventory_std: float
    mean_fills: float
    mean_volume: float


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return math.fsum(finite) / len(finite) if finite else math.nan


def combo_stats(combos: Sequence[Combo], results: Sequence[RunResult]) -> List[ComboStats]:
    by_combo: Dict[int, List[RunResult]] = {}
    for r in sorted(results, key=lambda r: r.key):
        by_combo.setdefault(r.combo_index, []).append(r)
    stats = []
    for index, runs in sorted(by_combo.items()):
        n = len(runs)
        mean_pnl = sum((r.net_pnl for r in runs), Decimal(0)) / n
        sd = math.sqrt(math.fsum(float(r.net_pnl - mean_pnl) ** 2 for r in runs) / (n - 1)) if n > 1 else math.nan
        stats.append(ComboStats(combos[index], n, mean_pnl, sd, _mean([r.sharpe for r in runs]),
                                sum((r.max_drawdown for r in runs), Decimal(0)) / n,
                                _mean([r.inventory_std for r in runs]), _mean([float(r.fills) for r in runs]),
                                _mean([float(r.volume) for r in runs])))
    return stats


def _sharpe_key(s: ComboStats) -> Tuple[float, int]:
    return (-s.mean_sharpe if math.isfinite(s.mean_sharpe) else math.inf), s.combo.index


def _table(axes: Sequence[Axis], ranked: Sequence[ComboStats]) -> str:
    head = ["rank", *(a.name for a in axes), "mean PnL", "sd PnL", "mean Sharpe", "mean max DD", "mean inv sd",
            "mean fills", "mean volume"]
    rows = [[str(rank), *(label for _, label in s.combo.labels), f"{s.mean_pnl:.8f}", f"{s.sd_pnl:.8f}",
             f"{s.mean_sharpe:.3f}", f"{s.mean_drawdown:.8f}", f"{s.mean_inventory_std:.1f}", f"{s.mean_fills:.1f}",
             f"{s.mean_volume:.0f}"] for rank, s in enumerate(ranked, 1)]
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths)).rstrip() for row in [head, *rows])


def summary_text(axes: Sequence[Axis], combos: Sequence[Combo], results: Sequence[RunResult],
                 about: Mapping[str, str]) -> str:
    """The combinations ranked by mean net PnL and by mean Sharpe over their seeds."""
    stats = combo_stats(combos, results)
    seeds = sorted({r.seed for r in results})
    lines = [f"Sweep: {len(combos)} combination(s) x {len(seeds)} seed(s) = {len(results)} runs",
             *(f"{key}: {value}" for key, value in about.items()),
             "grid: " + ("; ".join(f"{a.name} = {', '.join(a.labels)}" for a in axes) or "none (the base settings)"),
             f"seeds: {_seed_ranges(seeds)}",
             "PnL and drawdown in the settle currency; Sharpe of the run's equity curve; means over the seeds.",
             "", "Ranked by mean net PnL:",
             _table(axes, sorted(stats, key=lambda s: (-s.mean_pnl, s.combo.index))),
             "", "Ranked by mean Sharpe:", _table(axes, sorted(stats, key=_sharpe_key))]
    return "\n".join(lines) + "\n"


def _seed_ranges(seeds: Sequence[int]) -> str:
    parts: List[str] = []
    for seed in seeds:
        if parts and parts[-1][1] == seed - 1:
            parts[-1] = (parts[-1][0], seed)
        else:
            parts.append((seed, seed))  # type: ignore[arg-type]
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in parts)  # type: ignore[misc]


# ----------------------------------------------------------------------------------------------------------------------
# Heatmaps


def heatmap_grid(axes: Sequence[Axis], stats: Sequence[ComboStats], field: str) -> Tuple[List[str], List[str],
                                                                                          List[List[float]]]:
    """(column labels: the first parameter's values, row labels: the second's, the means per cell).

    A cell is the mean of ``field`` over every run with those first two values: over the seeds, and
    over the other parameters when there are more than two. One parameter: one row; none: one cell.
    """
    cols = list(axes[0].labels) if axes else ["(base settings)"]
    rows = list(axes[1].labels) if len(axes) > 1 else [""]
    cells: Dict[Tuple[str, str], List[Tuple[float, int]]] = {}
    for s in stats:
        labels = [label for _, label in s.combo.labels]
        col = labels[0] if labels else cols[0]
        row = labels[1] if len(labels) > 1 else ""
        cells.setdefault((row, col), []).append((float(getattr(s, field)), s.runs))
    matrix = []
    for row in rows:
        line = []
        for col in cols:
            parts = [(v, n) for v, n in cells.get((row, col), []) if math.isfinite(v)]
            total = sum(n for _, n in parts)
            line.append(math.fsum(v * n for v, n in parts) / total if total else math.nan)
        matrix.append(line)
    return cols, rows, matrix


def heatmap_png(axes: Sequence[Axis], stats: Sequence[ComboStats], field: str, title: str) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure
    cols, rows, matrix = heatmap_grid(axes, stats, field)
    fig = Figure(figsize=(max(4.0, 1.3 * len(cols) + 2.5), max(2.2, 0.7 * len(rows) + 1.6)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    finite = [v for line in matrix for v in line if math.isfinite(v)]
    low, high = (min(finite), max(finite)) if finite else (0.0, 0.0)
    norm = TwoSlopeNorm(vcenter=0.0, vmin=min(low, -1e-12), vmax=max(high, 1e-12)) if low < 0 < high else None
    image = ax.imshow(matrix, cmap="RdYlGn", norm=norm, aspect="auto")
    fig.colorbar(image, ax=ax)
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel(axes[0].name if axes else "")
    ax.set_ylabel(axes[1].name if len(axes) > 1 else "")
    for i, line in enumerate(matrix):
        for j, value in enumerate(line):
            ax.text(j, i, f"{value:.3g}" if math.isfinite(value) else "n/a", ha="center", va="center", fontsize=9)
    more = " and the other parameters" if len(axes) > 2 else ""
    ax.set_title(f"{title} (mean over the seeds{more})", fontsize=10)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def figures(axes: Sequence[Axis], combos: Sequence[Combo], results: Sequence[RunResult]) -> Dict[str, bytes]:
    stats = combo_stats(combos, results)
    return {"heatmap_pnl.png": heatmap_png(axes, stats, "mean_pnl", "Net PnL"),
            "heatmap_sharpe.png": heatmap_png(axes, stats, "mean_sharpe", "Sharpe")}


# ----------------------------------------------------------------------------------------------------------------------
# Writing


def check_out_dir(out: Path) -> Optional[str]:
    """Why ``out`` cannot take a sweep's files (None when it can), asked before the sweep runs."""
    if out.exists() and not out.is_dir():
        return f"--out {out}: exists and is not a folder"
    parent = out.parent if out.parent != Path("") else Path(".")
    existing = next((p for p in [parent, *parent.parents] if p.exists()), Path("."))
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return f"--out {out}: {existing} is not a folder this user can write in"
    return None


def publish(out: Path, files: Mapping[str, bytes]) -> None:
    """Write ``files`` into ``out`` all at once (see the module's docstring)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.sweep-", dir=out.parent))
    try:
        for name, data in files.items():
            (stage / name).write_bytes(data)
        if not out.exists():
            stage.chmod(0o755)  # mkdtemp's folder is private; the result is an ordinary folder
            os.rename(stage, out)
            return
        for name in files:
            os.replace(stage / name, out / name)
        stage.rmdir()
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
