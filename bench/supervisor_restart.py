#!/usr/bin/env python3
"""How fast the multi-symbol supervisor starts, recovers and stops its bots, on the simulator.

  python bench/supervisor_restart.py --rounds 3

One simulator (in-process) serves BTC_USD and ETH_USD; a ``Supervisor`` runs one bot process per symbol.
Measured, in wall-clock seconds:

* start: supervisor started -> both bots have orders on the book;
* restart: SIGKILL of one bot -> its replacement has orders on the book (includes the 1 s backoff),
  ``rounds`` times (the backoff doubles after each quick crash: 1, 2, 4 s...);
* kill switch: the account's margin usage pushed over MAX_MARGIN_USAGE -> every bot stopped, nothing open.
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from market_maker.ops.supervisor import Supervisor  # noqa: E402
from market_maker.settings import load_settings  # noqa: E402
from market_maker.sim import SimConfig, run_simulator  # noqa: E402

SETTINGS = ("from decimal import Decimal\nORDER_PAIRS = 2\nORDER_START_SIZE = 10\nORDER_STEP_SIZE = 10\n"
            "INTERVAL = Decimal('0.002')\nMIN_SPREAD = Decimal('0.002')\nLOOP_INTERVAL = 1\n"
            "MAX_MARGIN_USAGE = Decimal('0.3')\n")


def wait(predicate, timeout: float = 60.0) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError("condition not reached")
        time.sleep(0.02)
    return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="SIGKILL/restart rounds (default 3)")
    args = parser.parse_args()
    markets = {"BTC_USD": {}, "ETH_USD": {"tick_size": "0.05", "start_price": "300", "taker_rate": "1"}}
    with tempfile.TemporaryDirectory() as tmp, \
            run_simulator(SimConfig(port=0, seed=5, volatility=Decimal("0.0002"), symbols=markets)) as sim:
        path = Path(tmp) / "settings.py"
        path.write_text(SETTINGS + f"SUPERVISOR_LOG_DIR = {str(Path(tmp) / 'logs')!r}\n")
        settings = load_settings(str(path), environ={}, overrides={
            "BASE_URL": sim.base_url, "WS_URL": sim.ws_url, "API_KEY": sim.api_key, "API_SECRET": sim.api_secret,
            "SYMBOLS": "BTC_USD,ETH_USD"})
        sup = Supervisor(settings, {"BTC_USD": "BTC", "ETH_USD": "ETH"}, sim.base_url, sim.ws_url, sim.api_key,
                         sim.api_secret, settings_path=str(path))

        def open_of(prefix: str, exclude_pid: int | None = None) -> bool:
            rows = sim.call(lambda ex: ex.open_orders_of(sim.account_id))
            return sum(1 for r in rows if r["client_oid"].startswith(prefix)) >= 2

        codes = {}
        thread = threading.Thread(target=lambda: codes.setdefault("code", sup.run(duration=600)))
        started = time.monotonic()
        thread.start()
        btc, eth = sup.children
        wait(lambda: open_of(btc.prefix) and open_of(eth.prefix))
        print(f"start: both bots quoting after {time.monotonic() - started:.2f} s")
        restarts = []
        for n in range(args.rounds):
            pid = eth.proc.pid
            os.kill(pid, signal.SIGKILL)
            t0 = time.monotonic()
            wait(lambda: eth.alive and eth.proc.pid != pid)
            wait(lambda: open_of(eth.prefix))
            restarts.append(time.monotonic() - t0)
            print(f"restart {n + 1}: quoting again {restarts[-1]:.2f} s after SIGKILL (backoff {eth.backoff:.0f} s)")
        row = sim.call(lambda ex: ex.pc_account_rows(sim.account_id, "ETH"))[0]
        t0 = time.monotonic()
        sim.call(lambda ex: ex.transfer(sim.account_id, "ETH", 2, 1, Decimal(row["available"]) - Decimal("0.005")))
        thread.join(120)
        left = sim.call(lambda ex: ex.open_orders_of(sim.account_id))
        print(f"kill switch: exit {codes.get('code')} after {time.monotonic() - t0:.2f} s, {len(left)} orders left")
        print(f"restart latency minus backoff: median "
              f"{statistics.median(r - b for r, b in zip(restarts, [1, 2, 4, 8, 16, 32][:len(restarts)])):.2f} s")
    return 0 if codes.get("code") == 3 and not left else 1


if __name__ == "__main__":
    sys.exit(main())
