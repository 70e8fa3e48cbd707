"""A bot running on the simulator with its operations parts on, for the tests of market_maker/ops."""
from __future__ import annotations

import contextlib
import threading
from decimal import Decimal
from typing import Any, Iterator, Mapping, Optional

from market_maker.cli import build_runner
from market_maker.settings import load_settings

LIVELY = dict(volatility=Decimal("0.001"), taker_rate=Decimal("4"), taker_mean_qty=Decimal("200"),
              depth_levels=30, level_step_ticks=2)
TIGHT = {"ORDER_PAIRS": 3, "ORDER_START_SIZE": 50, "ORDER_STEP_SIZE": 50, "INTERVAL": Decimal("0.001"),
         "MIN_SPREAD": Decimal("0.0005"), "RELIST_INTERVAL": Decimal("0.001"), "LOOP_INTERVAL": 1,
         "API_REST_INTERVAL": 0.1}


def settings_for(sim: Any, tmp_path: Any, **extra: Any) -> Any:
    overrides = {"BASE_URL": sim.base_url, "WS_URL": sim.ws_url, "API_KEY": sim.api_key,
                 "API_SECRET": sim.api_secret, **TIGHT, **extra}
    return load_settings(overrides=overrides, environ={}, cwd=tmp_path)


@contextlib.contextmanager
def running_bot(sim: Any, settings: Any, environ: Optional[Mapping[str, str]] = None) -> Iterator[Any]:
    """The bot of ``settings`` trading on ``sim`` in a thread, its ops parts on; yields the Ops.

    On leaving, the bot is stopped (it cancels its orders) and the ops parts are stopped."""
    from market_maker.ops.parts import start_ops
    runner = build_runner(settings, sim.base_url, sim.ws_url, sim.api_key, sim.api_secret)
    result: dict = {}

    def run() -> None:
        try:
            result["code"] = runner.run()
        except BaseException as exc:  # noqa: BLE001 -- reported by the test
            result["error"] = exc
    with start_ops(runner, environ=environ or {}) as ops:
        thread = threading.Thread(target=run, name="bot")
        thread.start()
        try:
            yield ops
        finally:
            runner.stop()
            thread.join(30)
    assert not thread.is_alive(), "the bot did not stop"
    assert "error" not in result, result.get("error")
    ops.result = result
