"""CSV export of fills, orders and the equity curve (decimal strings kept exact)."""
from __future__ import annotations

import csv
import os
import sqlite3
from typing import Sequence

from .attribution import units_text
from .markouts import HORIZONS_MS
from .reader import order_rows
from .summary import RunReport

FILL_COLUMNS = ["run_id", "ts_ms", "exec_id", "order_id", "client_oid", "side", "close_flag", "price", "qty", "fee",
                "maker", "realised_pnl", "source", "mid", "spread_capture"] + \
               [f"markout_{h // 1000}s" for h in HORIZONS_MS]
EQUITY_COLUMNS = ["run_id", "ts_ms", "mid", "net_position", "spread_capture", "inventory", "fees", "funding",
                  "equity"]


def _blank(value: object) -> object:
    return "" if value is None else value


def write_csv(directory: str, reports: Sequence[RunReport], db: sqlite3.Connection) -> list:
    """Write fills.csv, orders.csv and equity.csv into ``directory`` (made if missing); their paths."""
    os.makedirs(directory, exist_ok=True)
    paths = [os.path.join(directory, name) for name in ("fills.csv", "orders.csv", "equity.csv")]
    with open(paths[0], "w", newline="", encoding="utf-8") as out:
        w = csv.writer(out)
        w.writerow(FILL_COLUMNS)
        for r in reports:
            a, m = r.attribution, r.markouts
            mids = a.series.mid_text
            for i, f in enumerate(r.data.fills):
                marks = [m.move(h, i) for h in HORIZONS_MS]
                w.writerow([r.data.run_id, f.ts_ms, f.exec_id, f.order_id, _blank(f.client_oid),
                            "buy" if f.side > 0 else "sell", f.close_flag, f.price_text, f.qty, f.fee_text,
                            _blank(f.maker), _blank(f.realised_pnl), f.source, mids[a.fill_mid[i]],
                            units_text(a.fill_spread[i])] + ["" if v is None else str(v) for v in marks])
    columns, rows = order_rows(db, [r.data.run_id for r in reports])
    with open(paths[1], "w", newline="", encoding="utf-8") as out:
        w = csv.writer(out)
        w.writerow(columns)
        w.writerows([_blank(v) for v in row] for row in rows)
    with open(paths[2], "w", newline="", encoding="utf-8") as out:
        w = csv.writer(out)
        w.writerow(EQUITY_COLUMNS)
        for r in reports:
            s = r.attribution.series
            run_id = r.data.run_id
            for k, ts in enumerate(s.ts):
                w.writerow([run_id, ts, s.mid_text[k], s.net[k], units_text(s.spread[k]),
                            units_text(s.inventory[k]), units_text(s.fees[k]), units_text(s.funding[k]),
                            units_text(s.equity(k))])
    return paths
