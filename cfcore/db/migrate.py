"""Schema upgrade with Alembic. The revisions live in cfcore/db/migrations/versions."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: object | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    if not any(p.name != "__init__.py" for p in (MIGRATIONS / "versions").glob("*.py")):
        from .base import Base

        Base.metadata.create_all(engine)  # before the first revision is written (development)
        return
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # several processes may open a new catalog at once: one migrates, the others wait
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7263010001)")
        command.upgrade(alembic_config(conn), revision)
        conn.commit()


def revision(engine: Engine, message: str) -> None:
    """Developers: write a new revision from the difference between models and the schema."""
    with engine.connect() as conn:
        command.revision(alembic_config(conn), message=message, autogenerate=True)
