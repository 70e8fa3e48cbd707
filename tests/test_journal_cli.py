"""JOURNAL_PATH on the command line: a bad one is exit 2 naming it; a run writes its journal beside the
settings file, says where at exit, and the report reads it."""
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def launch(folder, *args, timeout=60):
    return subprocess.run([sys.executable, str(ROOT / "marketmaker"), *args], cwd=folder, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("journal, prepare, said", [
    ("missing/journal.sqlite", None, "the folder"),
    ("notes.txt", "just some notes, not a database\n", "is not an SQLite file"),
])
def test_a_bad_journal_path_is_exit_2_naming_the_setting(tmp_path, journal, prepare, said):
    if prepare:
        (tmp_path / journal).write_text(prepare)
    (tmp_path / "settings.py").write_text(f"JOURNAL_PATH = {journal!r}\n")
    proc = launch(tmp_path, "--settings", "settings.py", "--dry-run", "--duration", "5", timeout=30)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "marketmaker: bad settings: JOURNAL_PATH = " in proc.stderr and said in proc.stderr
    assert "Traceback" not in proc.stderr and "Trading on" not in proc.stderr + proc.stdout


def test_a_dry_run_is_journaled_beside_the_settings_file_and_reported(tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "settings.py").write_text("ORDER_PAIRS = 2\nLOOP_INTERVAL = 1\n")
    proc = launch(tmp_path, "--settings", "conf/settings.py", "--dry-run", "--duration", "3")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    journal = conf / "journal.sqlite"
    assert f"Report on it: python3 marketmaker report {journal} --run 1" in proc.stderr
    assert "Net PnL since start: 0 BTC; inventory +0 contracts" in out
    db = sqlite3.connect(journal)
    assert db.execute("SELECT mode, exit_status, run_tag IS NOT NULL FROM runs").fetchall() == [("dry_run", 0, 1)]
    assert db.execute("SELECT DISTINCT outcome FROM order_requests").fetchall() == [("paper",)]
    assert db.execute("SELECT COUNT(*) FROM requotes").fetchone()[0] >= 1
    assert db.execute("SELECT COUNT(*) FROM market").fetchone()[0] >= 1
    assert db.execute("SELECT COUNT(*) FROM executions").fetchone()[0] == 0
    db.close()
    report = launch(tmp_path, "report", str(journal), "--no-html", timeout=30)
    assert report.returncode == 0, report.stderr
