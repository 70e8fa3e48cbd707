"""The PnL report of a trading journal: ``python marketmaker report`` (see docs/report.md).

reader (read-only journal access) -> attribution and markouts (exact, pure) -> stats and
summary (figures, plain text) -> plots, html and export (outputs) -> command (the CLI).
"""
