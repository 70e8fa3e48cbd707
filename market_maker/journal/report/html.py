"""The report as one self-contained HTML file: inline CSS, figures as base64 PNG data URIs,
no external URL."""
from __future__ import annotations

import base64
from html import escape
from typing import List, Optional, Sequence

from .markouts import HORIZONS_MS
from .summary import RunReport, attribution_rows, exact_text, horizon_label, markout_rows, summary_rows, title

STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1100px; }
h1 { font-size: 1.4em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0 1em 0; }
td, th { padding: 2px 12px 2px 0; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; font-family: monospace; white-space: pre; }
tr.total td { border-top: 1px solid #888; font-weight: bold; }
figure { margin: 1em 0; } figcaption { font-size: 0.9em; color: #555; }
img { max-width: 100%; }
p.note { font-size: 0.9em; color: #555; }
"""


def _table(rows: Sequence[Sequence[str]], numeric_from: Optional[int] = 1, total_last: bool = False) -> str:
    """Rows as a table; cells from column ``numeric_from`` on are right-aligned monospace."""
    out = ["<table>"]
    for i, row in enumerate(rows):
        cls = ' class="total"' if total_last and i == len(rows) - 1 else ""
        first = len(row) if numeric_from is None else numeric_from
        cells = "".join(f'<td class="num">{escape(c)}</td>' if j >= first else f"<td>{escape(c)}</td>"
                        for j, c in enumerate(row))
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</table>")
    return "\n".join(out)


def run_section(r: RunReport, figures: Sequence[tuple]) -> str:
    """One run: summary, attribution, markouts, figures."""
    cur = escape(r.data.settle)
    parts = [f'<section id="run-{r.data.run_id}">', f"<h1>{escape(title(r))}</h1>",
             "<h2>Summary</h2>", _table(summary_rows(r), numeric_from=None)]
    parts.append(f"<h2>PnL attribution ({cur}, exact)</h2>")
    parts.append(_table([(label, exact_text(units)) for label, units in attribution_rows(r)], total_last=True))
    if r.attribution.exchange_change is None:
        parts.append('<p class="note">No margins rows in this run: the net PnL is the sum of the components, '
                     "not the exchange's equity change.</p>")
    heads = "".join(f'<th class="num">{escape(horizon_label(h))}</th>' for h in HORIZONS_MS)
    rows = "".join("<tr><td>" + escape(label) + "</td>" + "".join(f'<td class="num">{escape(v)}</td>' for v in values)
                   + "</tr>" for label, values in markout_rows(r))
    parts.append("<h2>Markouts (mid move after a fill, from our side)</h2>")
    parts.append(f"<table><tr><th></th>{heads}</tr>{rows}</table>")
    if figures:
        parts.append("<h2>Figures</h2>")
    for key, caption, png in figures:
        data = base64.b64encode(png).decode("ascii")
        parts.append(f'<figure id="{escape(key)}-{r.data.run_id}"><img alt="{escape(caption)}" '
                     f'src="data:image/png;base64,{data}"><figcaption>{escape(caption)}</figcaption></figure>')
    parts.append("</section>")
    return "\n".join(parts)


def page(journal: str, sections: List[str]) -> str:
    """The whole document."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Trading report: {escape(journal)}</title><style>{STYLE}</style></head><body>\n"
            f'<p class="note">Journal {escape(journal)}. Every figure and formula: docs/report.md in the project.</p>\n'
            + "\n".join(sections) + "\n</body></html>\n")
