"""SQLite has one writer at a time: a "database is locked" failure names who held the lock.

An intermittent "database is locked" in a CI run of ``cf serve`` could not be traced, because the
error names only the waiter. The catalog now says which write transactions of the process were
open (thread, age, where opened, where the holder is now) and logs every write transaction held
longer than ``SLOW_WRITE_SECONDS`` when it ends."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from cfcore.db import catalog as catmod


@pytest.fixture
def cat(tmp_path, monkeypatch):
    monkeypatch.setattr(catmod, "BUSY_TIMEOUT_MS", 200)
    c = catmod.Catalog(f"sqlite:///{tmp_path / 'c.db'}")
    with c.session() as s:
        s.execute(text("CREATE TABLE t (x INTEGER)"))
    yield c
    c.dispose()


def hold_write_lock(cat, release: threading.Event, holding: threading.Event) -> None:
    with cat.session() as s:
        s.execute(text("INSERT INTO t VALUES (1)"))
        holding.set()
        release.wait(10)


def test_a_writer_that_times_out_names_the_holder(cat, caplog):
    release, holding = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_write_lock, args=(cat, release, holding), name="holder")
    holder.start()
    try:
        assert holding.wait(10)
        with caplog.at_level(logging.ERROR, logger="cfcore.db.catalog"), pytest.raises(OperationalError):
            with cat.session() as s:
                s.execute(text("INSERT INTO t VALUES (2)"))
    finally:
        release.set()
        holder.join()
    msg = "\n".join(r.getMessage() for r in caplog.records)
    assert "database is locked" in msg and "thread holder for" in msg, msg
    assert "opened at test_catalog_write_watch.py:" in msg and "in hold_write_lock" in msg, msg
    assert "now at threading.py" in msg, msg  # the holder waits on its event
    with cat.read_session() as s:  # the holder's write landed, the waiter's did not
        assert s.execute(text("SELECT x FROM t")).scalars().all() == [1]
    assert cat.writes.open == {}


def test_a_long_write_transaction_is_logged_when_it_ends(cat, caplog, monkeypatch):
    monkeypatch.setattr(catmod, "SLOW_WRITE_SECONDS", 0.1)
    with caplog.at_level(logging.WARNING, logger="cfcore.db.catalog"):
        with cat.session() as s:
            s.execute(text("INSERT INTO t VALUES (3)"))
        assert not caplog.records  # a quick one is not
        with cat.session() as s:
            s.execute(text("INSERT INTO t VALUES (4)"))
            time.sleep(0.3)
    [rec] = caplog.records
    assert "write transaction held 0." in rec.getMessage() and "MainThread" in rec.getMessage()
    assert "test_catalog_write_watch.py" in rec.getMessage()
    with cat.read_session() as s:  # a read session takes no write lock and is not watched
        s.execute(text("SELECT 1"))
        assert cat.writes.open == {}
