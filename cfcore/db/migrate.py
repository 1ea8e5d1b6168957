"""Schema upgrade. Until the first Alembic revision exists this creates the tables directly."""

from __future__ import annotations

from sqlalchemy import Engine

from .base import Base


def upgrade(engine: Engine) -> None:
    Base.metadata.create_all(engine)
