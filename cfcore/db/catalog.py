"""The catalog database: engine, sessions, schema upgrade."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from ..errors import ConfigError
from .base import Base

# Not ``all_models``: a command imports the model modules it queries (each one imports the modules
# its foreign keys name), so that ``cf recordings list`` does not map the forty classes of every
# area; the schema tools (migrations, backup) import ``all_models`` themselves.


#: How long a writer waits for SQLite's write lock before it fails with "database is locked".
BUSY_TIMEOUT_MS = 30000


def _sqlite_pragmas(dbapi_conn, _record, synchronous: str = "FULL") -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute(f"PRAGMA synchronous={synchronous}")
    cur.close()


def _sqlite_unsynced_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    _sqlite_pragmas(dbapi_conn, _record, "NORMAL")


#: Execution option of the read-only sessions' connections (SQLite: a deferred ``BEGIN``).
_READ_ONLY = "cf_read_only"

log = logging.getLogger(__name__)

#: A write transaction held longer than this is logged when it ends (SQLite: every other writer of
#: the deployment, in any process, waits for it; after ``busy_timeout`` they fail).
SLOW_WRITE_SECONDS = 5.0


def _opened_at() -> str:
    """``file:line in function`` of the code that opened the transaction: the first frame outside
    SQLAlchemy, contextlib and this module (no values, so nothing personal)."""
    f: Any = sys._getframe(2)
    while f is not None:
        name = f.f_code.co_filename
        if not (name == __file__ or "sqlalchemy" in name or name.endswith("contextlib.py")):
            return f"{os.path.basename(name)}:{f.f_lineno} in {f.f_code.co_name}"
        f = f.f_back
    return "?"


class WriteWatch:
    """Who holds SQLite's write lock in this process, and for how long.

    SQLite has one writer at a time; a writer that waits longer than ``busy_timeout`` fails with
    "database is locked". When that happens this names each write transaction open in this process
    (thread, age, where it was opened and the holder's current frame), and every write transaction
    held longer than ``SLOW_WRITE_SECONDS`` is logged when it ends, so such a failure names its cause."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.open: dict[int, tuple[float, int, str, str]] = {}

    def attach(self, engine: Engine) -> None:
        event.listen(engine, "commit", self._end)
        event.listen(engine, "rollback", self._end)
        event.listen(engine, "handle_error", self._error)
        event.listen(engine, "checkin", self._checkin)

    def _checkin(self, dbapi_conn: Any, _record: Any) -> None:
        with self._lock:  # back in the pool without a commit or rollback of ours (an error, a closed session)
            self.open.pop(id(dbapi_conn), None)

    def begun(self, conn: Any) -> None:
        t = threading.current_thread()
        with self._lock:
            self.open[id(conn.connection.dbapi_connection)] = (time.monotonic(), t.ident or 0, t.name, _opened_at())

    def _end(self, conn: Any) -> None:
        with self._lock:
            began = self.open.pop(id(conn.connection.dbapi_connection), None)
        if began is not None:
            held = time.monotonic() - began[0]
            if held > SLOW_WRITE_SECONDS:
                log.warning("catalog write transaction held %.1f s by thread %s (opened at %s)", held, began[2],
                            began[3])

    def _error(self, ctx: Any) -> None:
        if "database is locked" not in str(ctx.original_exception):
            return
        now = time.monotonic()
        frames = sys._current_frames()
        with self._lock:
            holders = list(self.open.values())
        me = threading.get_ident()
        lines = []
        for began, ident, name, site in holders:
            f = frames.get(ident)
            where = ("this statement (a transaction of the failing thread itself)" if ident == me else
                     f"{os.path.basename(f.f_code.co_filename)}:{f.f_lineno} in {f.f_code.co_name}" if f else "?")
            lines.append(f"thread {name} for {now - began:.1f} s (opened at {site}; now at {where})")
        log.error("catalog: database is locked; write transactions open in this process: %s",
                  "; ".join(lines) or "none (the holder is another process)")


def _create_private(path: Path) -> None:
    """A new SQLite catalog file is readable by its owner only (SQLite gives its -wal and -shm
    files the same mode): it holds employees' and pseudonymised customers' metadata."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


class Catalog:
    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            # pysqlite's own transaction handling is replaced by explicit BEGIN IMMEDIATE, so that
            # concurrent writers queue on the lock instead of failing on upgrade.
            self.engine: Engine = create_engine(url, connect_args={"isolation_level": None, "timeout": 30})
            event.listen(self.engine, "connect", _sqlite_pragmas)
            self.writes = WriteWatch()
            self.writes.attach(self.engine)

            @event.listens_for(self.engine, "begin")
            def _begin(conn):  # type: ignore[no-untyped-def]
                if conn.get_execution_options().get(_READ_ONLY):
                    conn.exec_driver_sql("BEGIN")
                else:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                    self.writes.begun(conn)
        else:
            self.engine = create_engine(url, pool_pre_ping=True)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(self.engine.execution_options(**{_READ_ONLY: True}), expire_on_commit=False)
        self._unsynced_engine: Engine | None = None
        self._unsynced_sessions: sessionmaker[Session] | None = None

    @classmethod
    def from_url(cls, url: str, base_dir: Path) -> Catalog:
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            rel = url[len("sqlite:///"):]
            if rel and rel != ":memory:":
                url = "sqlite:///" + str((base_dir / rel).resolve())
        if url.startswith("sqlite:///") and url[len("sqlite:///"):] not in ("", ":memory:"):
            _create_private(Path(url[len("sqlite:///"):]))
        elif not (url.startswith("sqlite") or url.startswith("postgresql")):
            raise ConfigError(f"catalog.url must be sqlite:/// or postgresql+psycopg://, got {url.split(':')[0]}")
        return cls(url)

    def upgrade(self) -> None:
        """Bring the schema to the newest version (Alembic migrations)."""
        from .migrate import upgrade

        upgrade(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any error."""
        with self._sessions() as s, s.begin():
            yield s

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A unit of work that only reads: on SQLite a deferred ``BEGIN`` (a snapshot, no write
        lock, so it never queues behind writers nor makes them wait); on PostgreSQL an ordinary
        transaction. Meant for reads only (it ends with a commit, which has nothing to write and
        keeps the loaded objects usable after the block)."""
        with self._read_sessions() as s, s.begin():
            yield s

    @contextmanager
    def unsynced_session(self) -> Iterator[Session]:
        """A unit of work whose commit does not wait for the disk: once it returns the change is
        committed and visible to every session and survives a crash of this process, but an
        operating-system crash or power cut before the next ``sync`` (or the next ordinary commit)
        may lose it. SQLite: ``synchronous=NORMAL`` in WAL mode; PostgreSQL:
        ``synchronous_commit=off``. Locks like ``session``. Callers that must not lose the change
        call ``sync`` soon after (``cfcore.db.durability.SyncQueue`` batches that)."""
        if not self.is_sqlite:
            with self._sessions() as s, s.begin():
                s.connection().exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                yield s
            return
        if self._unsynced_sessions is None:
            # a pool of its own: synchronous is a setting of the SQLite connection
            engine = create_engine(self.url, connect_args={"isolation_level": None, "timeout": 30})
            event.listen(engine, "connect", _sqlite_unsynced_pragmas)
            self.writes.attach(engine)

            @event.listens_for(engine, "begin")
            def _begin(conn):  # type: ignore[no-untyped-def]
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                self.writes.begun(conn)

            self._unsynced_engine = engine
            self._unsynced_sessions = sessionmaker(engine, expire_on_commit=False)
        with self._unsynced_sessions() as s, s.begin():
            yield s

    def sync(self) -> None:
        """Make every commit made so far durable (also those of ``unsynced_session``).

        SQLite (WAL): an fsync of the write-ahead log, which holds every commit not yet
        checkpointed (a checkpoint syncs the log before and the database after copying).
        PostgreSQL: a commit that has a transaction id waits until the WAL is flushed up to its
        commit record, which lies after every earlier commit record."""
        if self.is_sqlite:
            db = self.engine.url.database
            if not db or db == ":memory:":
                return
            try:
                fd = os.open(db + "-wal", os.O_RDONLY)
            except FileNotFoundError:
                return  # no log: everything was checkpointed (and synced) already
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            return
        with self.engine.begin() as conn:
            conn.exec_driver_sql("SELECT txid_current()")

    def dispose(self) -> None:
        self.engine.dispose()
        if self._unsynced_engine is not None:
            self._unsynced_engine.dispose()


__all__ = ["Base", "Catalog"]
