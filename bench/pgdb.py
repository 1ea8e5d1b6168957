"""A PostgreSQL database of a benchmark's own (created for the run, dropped after it)."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from sqlalchemy import create_engine, text


def own_database(url: str, prefix: str) -> tuple[str, Callable[[], None]]:
    """A fresh database named ``<prefix>_<random>`` beside ``url``'s; returns its URL and a
    function that drops it."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url.rsplit("/", 1)[0] + "/" + name, drop
