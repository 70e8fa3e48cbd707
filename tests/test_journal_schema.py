"""The journal's schema version and its migrations."""
import sqlite3
import threading

import pytest

from market_maker.journal import schema
from market_maker.journal.writer import connect


def test_a_new_journal_is_migrated_to_the_current_version_with_every_table(tmp_path):
    db = connect(str(tmp_path / "j.sqlite"))
    assert schema.migrate(db) == 0
    assert db.execute("PRAGMA user_version").fetchone()[0] == schema.VERSION
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"runs", "order_requests", "orders", "executions"} <= tables
    assert schema.migrate(db) == schema.VERSION  # a second open changes nothing


def test_bots_opening_one_new_journal_at_once_migrate_it_once(tmp_path):
    path = str(tmp_path / "shared.sqlite")
    barrier = threading.Barrier(4)
    failures = []

    def open_it():
        db = connect(path)
        barrier.wait()
        try:
            schema.migrate(db)
        except Exception as exc:  # e.g. "table runs already exists" without the write lock
            failures.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == schema.VERSION


def test_a_step_that_fails_leaves_the_journal_at_the_version_before(tmp_path, monkeypatch):
    monkeypatch.setitem(schema.MIGRATIONS, 2, "CREATE TABLE extra (x INTEGER);\nTHIS IS NOT SQL;")
    monkeypatch.setattr(schema, "VERSION", 2)
    db = connect(str(tmp_path / "j.sqlite"))
    with pytest.raises(sqlite3.OperationalError):
        schema.migrate(db)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    assert db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'extra'").fetchone()[0] == 0


def test_a_journal_from_a_newer_version_is_refused(tmp_path):
    db = connect(str(tmp_path / "j.sqlite"))
    db.execute(f"PRAGMA user_version = {schema.VERSION + 1}")
    with pytest.raises(schema.JournalVersionError, match="newer|knows up to"):
        schema.migrate(db)
