"""The journal writer: batches, commits, flush on close, failures counted and survived."""
import sqlite3
import threading

from market_maker.journal.writer import JournalWriter, connect
from tests.waiting import wait_until


def _db(tmp_path):
    db = connect(str(tmp_path / "w.sqlite"))
    db.execute("CREATE TABLE t (v INTEGER)")
    return db


def _insert(db, item):
    db.execute("INSERT INTO t VALUES (?)", (item,))


def _count(tmp_path):
    other = sqlite3.connect(str(tmp_path / "w.sqlite"))
    try:
        return other.execute("SELECT COUNT(*), COALESCE(SUM(v), 0) FROM t").fetchone()
    finally:
        other.close()


def test_threaded_writer_commits_in_the_background_and_close_flushes(tmp_path):
    writer = JournalWriter(_db(tmp_path), _insert, threaded=True, commit_s=0.05)
    threads = set()
    writer.apply = lambda db, item: (threads.add(threading.current_thread().name), _insert(db, item))
    for i in range(500):
        writer.put(i)
    assert wait_until(lambda: _count(tmp_path)[0] == 500, timeout=10)  # committed without close: a reader sees it
    assert threads == {"journal-writer"}
    for i in range(500, 700):
        writer.put(i)
    writer.close()
    assert _count(tmp_path) == (700, sum(range(700)))
    assert writer.written == 700 and writer.lost == 0
    writer.put(1)  # after close: counted, never raised
    assert writer.lost == 1


def test_synchronous_writer_writes_in_the_callers_thread_and_commits_in_batches(tmp_path):
    writer = JournalWriter(_db(tmp_path), lambda db, item: (_insert(db, item), seen.append(threading.current_thread())),
                           threaded=False, batch=100)
    seen = []
    for i in range(250):
        writer.put(i)
    assert set(seen) == {threading.current_thread()} and writer._thread is None
    assert _count(tmp_path)[0] == 200  # two batches committed, 50 pending
    writer.close()
    assert _count(tmp_path)[0] == 250


def test_a_failing_write_is_logged_once_counted_and_the_writer_goes_on(tmp_path, caplog):
    broken = {"on": False}

    def apply(db, item):
        if broken["on"]:
            raise sqlite3.OperationalError("database or disk is full")
        _insert(db, item)
    writer = JournalWriter(_db(tmp_path), apply, threaded=False, batch=10)
    for i in range(5):
        writer.put(i)
    broken["on"] = True
    for i in range(5, 25):
        writer.put(i)  # never raises
    assert writer.failing
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "disk is full" in errors[0].getMessage()
    assert writer.lost == 5 + 20  # the uncommitted 5 went with the failed transaction
    broken["on"] = False
    writer.put(99)
    writer.close()
    assert not writer.failing and _count(tmp_path) == (1, 99)


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path):
    gate = threading.Event()
    writer = JournalWriter(_db(tmp_path), lambda db, item: (gate.wait(5), _insert(db, item)), threaded=True,
                           max_queued=10, commit_s=0.01)
    for i in range(100):
        writer.put(i)
    assert writer.lost >= 80
    gate.set()
    writer.close()
    assert _count(tmp_path)[0] + writer.lost == 100
