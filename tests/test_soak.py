"""The chaos soak (bench/soak.py), 60 seconds: the real bot against the simulator with every fault on.

Run as a subprocess so its monkeypatching (signature recording), logging capture and
threading.excepthook stay out of the test process. Every invariant must hold (exit 0).
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_soak_60_seconds_all_faults_no_violation() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "soak.py"), "--seconds", "60", "--seed", "3",
                           "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=240)
    report = proc.stdout + "\n" + proc.stderr[-4000:]
    assert proc.returncode == 0, report
    assert "RESULT: PASS" in proc.stdout, report
    rows = [re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in proc.stdout.splitlines()]
    table = {row[0]: row[1] for row in rows if len(row) == 2}
    # the run did inject the faults and did trade: a soak that exercised nothing proves nothing
    for kind in ("ws_disconnect", "drop", "dup", "http_5xx", "rate_limit_burst", "latency"):
        assert int(table[f"fault injected: {kind}"].strip()) > 0, report
    fills, traded = (int(v) for v in table["fills / contracts traded (bot view)"].split("/"))
    assert fills > 0 and traded > 0, report
