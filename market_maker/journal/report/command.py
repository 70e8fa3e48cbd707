"""``python marketmaker report [JOURNAL] [--run ID | --all] [--html FILE | --no-html] [--csv DIR]``.

Exit status: 0 done; 1 the HTML was asked for (``--html``) but matplotlib is missing;
2 a bad argument, a journal that cannot be read, or a run it does not have (one line on
stderr, no traceback).
"""
from __future__ import annotations

import argparse
import sqlite3
import sys
from contextlib import closing
from typing import List, Optional, Sequence

from ..schema import JournalVersionError
from . import plots
from .reader import ReportError, default_html_path, load_run, open_journal, pick_runs
from .summary import RunReport, build, text

DEFAULT_JOURNAL = "journal.sqlite"
PROG = "marketmaker report"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Summary, PnL attribution, markouts and figures of a "
                                                       "run of the trading journal (read-only).")
    p.add_argument("journal", nargs="?", default=DEFAULT_JOURNAL, metavar="JOURNAL",
                   help=f"journal file (default: ./{DEFAULT_JOURNAL})")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--run", type=int, metavar="ID", help="the run to report (default: the latest)")
    which.add_argument("--all", action="store_true", help="report every run of the journal")
    html = p.add_mutually_exclusive_group()
    html.add_argument("--html", metavar="FILE",
                      help="write the HTML report there (default: report-<run>.html next to the journal)")
    html.add_argument("--no-html", action="store_true", help="print the summary only")
    p.add_argument("--csv", metavar="DIR", help="also write fills.csv, orders.csv and equity.csv into DIR")
    return p


def fail(message: str, code: int = 2) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return code


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the report command; returns the exit status."""
    args = parser().parse_args(argv)
    try:
        db = open_journal(args.journal)
    except (ReportError, JournalVersionError) as exc:
        return fail(str(exc))
    with closing(db):
        try:
            ids = pick_runs(db, args.journal, args.run, args.all)
            reports = [build(load_run(db, run_id)) for run_id in ids]
        except ReportError as exc:
            return fail(str(exc), exc.code)
        except sqlite3.DatabaseError as exc:
            return fail(f"{args.journal} cannot be read: {exc}")
        print("\n\n".join(text(r) for r in reports))
        if args.csv:
            from .export import write_csv
            try:
                paths = write_csv(args.csv, reports, db)
            except OSError as exc:
                return fail(f"cannot write the CSV files into {args.csv}: {exc.strerror or exc}")
            print(f"CSV written: {', '.join(paths)}")
    if args.no_html:
        return 0
    if not plots.available():
        print(f"The HTML report needs matplotlib: {plots.EXTRA_HINT}", file=sys.stderr if args.html else sys.stdout)
        return 1 if args.html else 0
    path = args.html or default_html_path(args.journal, ids, args.all)
    try:
        write_html(path, args.journal, reports)
    except OSError as exc:
        return fail(f"cannot write {path}: {exc.strerror or exc}")
    print(f"HTML report: {path}")
    return 0


def write_html(path: str, journal: str, reports: List[RunReport]) -> None:
    """Draw the figures and write the self-contained page."""
    from .html import page, run_section
    sections = [run_section(r, plots.figures(r)) for r in reports]
    with open(path, "w", encoding="utf-8") as out:
        out.write(page(journal, sections))
