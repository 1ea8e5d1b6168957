"""Schema upgrade with Alembic. The revisions live in cfcore/db/migrations/versions."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: object | None = None) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


_REV = re.compile(r"""(?m)^(down_)?revision\s*(?::[^=]*)?=\s*['"]([^'"]+)['"]""")


def head_revisions() -> set[str]:
    """The newest revision(s), read from the revision files without importing Alembic (cheap
    enough for every ``cf`` command)."""
    revs: set[str] = set()
    downs: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        for down, rev in _REV.findall(path.read_text(encoding="utf-8")):
            (downs if down else revs).add(rev)
    return revs - downs


def current_revisions(engine: Engine) -> set[str] | None:
    """The catalog's revision(s), or None when it has no ``alembic_version`` table."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    try:
        with engine.connect() as conn:
            return set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    except DBAPIError:
        return None


def upgrade(engine: Engine, revision: str = "head") -> None:
    if revision == "head":
        heads = head_revisions()
        if heads and current_revisions(engine) == heads:
            return  # at the newest revision already: no Alembic, no lock
    if not any(p.name != "__init__.py" for p in (MIGRATIONS / "versions").glob("*.py")):
        from . import all_models  # noqa: F401 - every table
        from .base import Base

        Base.metadata.create_all(engine)  # before the first revision is written (development)
        return
    with engine.connect() as conn:
        # Several processes may open a new catalog at once: one migrates, the others wait. The
        # lock is taken in a transaction that spans the whole upgrade (Alembic then runs inside
        # it instead of committing after each revision), so a second process never starts from a
        # revision the first one is about to leave, and a crash leaves the schema as it was.
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7263010001)")
        else:
            conn.exec_driver_sql("SELECT 1")  # SQLite: begins with BEGIN IMMEDIATE (catalog.py)
        from alembic import command

        command.upgrade(alembic_config(conn), revision)
        conn.commit()


def revision(engine: Engine, message: str) -> None:
    """Developers: write a new revision from the difference between models and the schema."""
    from alembic import command

    with engine.connect() as conn:
        command.revision(alembic_config(conn), message=message, autogenerate=True)
