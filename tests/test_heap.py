"""The GC policy shared by the bot and the simulator server."""
from __future__ import annotations

import gc

from market_maker.heap import GC_THRESHOLDS, freeze_startup_heap


def test_freeze_startup_heap_freezes_and_raises_thresholds() -> None:
    before = gc.get_threshold()
    try:
        freeze_startup_heap()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
