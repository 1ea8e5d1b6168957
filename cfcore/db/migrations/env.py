"""Alembic environment: runs on the connection handed in by cfcore.db.migrate."""

from alembic import context

from cfcore.db import all_models  # noqa: F401
from cfcore.db.base import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
