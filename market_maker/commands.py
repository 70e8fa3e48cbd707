"""Subcommands of the command line: ``python marketmaker COMMAND ...``.

No subcommand runs the bot (``cli.run``). A subcommand is a module with a
``main(argv) -> int`` (the exit status), imported only when it is used. To add one, add a
line to ``COMMANDS``.
"""
from __future__ import annotations

import importlib
from typing import Callable, Dict, Optional, Sequence, Tuple

# name -> (module with main(argv) -> int, one-line description)
COMMANDS: Dict[str, Tuple[str, str]] = {
    "report": ("market_maker.journal.report.command", "summary, PnL attribution and HTML report of a journal run"),
    "backtest": ("market_maker.backtest.command", "run the strategy against a market in simulated time"),
    "record": ("market_maker.backtest.record", "record an endpoint's public book and trades for backtest replay"),
    "sweep": ("market_maker.backtest.sweep", "backtest a grid of settings x seeds, locally or on a Dask cluster"),
}


def find(argv: Sequence[str]) -> Optional[Callable[[Sequence[str]], int]]:
    """The ``main`` of the subcommand named by ``argv[0]``, or None (run the bot)."""
    if not argv or argv[0] not in COMMANDS:
        return None
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return module.main  # type: ignore[no-any-return]


def epilog() -> str:
    """The subcommands, for the bot's --help."""
    width = max(len(name) for name in COMMANDS)
    lines = [f"  {name:<{width}}  {about}" for name, (_, about) in COMMANDS.items()]
    return "commands (python marketmaker COMMAND --help):\n" + "\n".join(lines)
