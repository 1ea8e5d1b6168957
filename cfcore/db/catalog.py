"""The catalog database: engine, sessions, schema upgrade."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from ..errors import ConfigError
from .base import Base

# Not ``all_models``: a command imports the model modules it queries (each one imports the modules
# its foreign keys name), so that ``cf recordings list`` does not map the forty classes of every
# area; the schema tools (migrations, backup) import ``all_models`` themselves.


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=FULL")
    cur.close()


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

            @event.listens_for(self.engine, "begin")
            def _begin(conn):  # type: ignore[no-untyped-def]
                conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            self.engine = create_engine(url, pool_pre_ping=True)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

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

    def dispose(self) -> None:
        self.engine.dispose()


__all__ = ["Base", "Catalog"]
