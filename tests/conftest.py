"""Suite-wide fixtures."""
import logging

import pytest


@pytest.fixture(autouse=True)
def _market_maker_logger_as_it_was():
    """A command run in-process (backtest, sweep, report) sets the ``market_maker`` logger's level for
    its run; the next test must find it as it was, or its INFO records (and caplog) go silent."""
    logger = logging.getLogger("market_maker")
    level, handlers = logger.level, list(logger.handlers)
    yield
    logger.setLevel(level)
    for handler in logger.handlers[:]:
        if handler not in handlers:
            logger.removeHandler(handler)
