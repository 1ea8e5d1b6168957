"""The Alembic revisions build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from cfcore.authority import SYSTEM
from cfcore.db.base import Base


def test_upgraded_schema_matches_the_models(app):
    with app.catalog.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
        assert diff == [], f"models and migrations differ; write a revision (cfcore.db.migrate.revision): {diff}"
        assert ctx.get_current_revision() is not None
    tables = set(inspect(app.catalog.engine).get_table_names())
    assert {"recordings", "audit_log", "users", "approvals", "tombstones"} <= tables


def test_upgrade_is_idempotent(app):
    app.catalog.upgrade()
    app.catalog.upgrade()
    with app.catalog.session() as s:
        app.audit.append(s, SYSTEM, "test.after-upgrade", "thing", None)
    assert app.audit.verify().ok


def test_processes_opening_a_new_catalog_at_once_all_succeed(deployment, tmp_path, catalog_url):
    """Reproduces CI's failure of 2026-12-02: Alembic committed after each revision on SQLite, so
    a second process started from a revision the first was leaving ("table ... already exists")."""
    import subprocess
    import sys

    from cfcore.testing import write_deployment

    code = "import sys; from cfcore.app import App; App.open(sys.argv[1]).close()"
    configs = [deployment]
    if catalog_url.startswith("sqlite"):
        configs += [write_deployment(tmp_path / f"round{i}", "sqlite:///catalog.db") for i in range(2)]
    for cfg in configs:
        procs = [subprocess.Popen([sys.executable, "-c", code, str(cfg)], stderr=subprocess.PIPE, text=True)
                 for _ in range(4)]
        errors = [p.communicate(timeout=120)[1][-2000:] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0, 0], errors


def test_a_new_sqlite_catalog_is_private(tmp_path):
    import stat

    from cfcore.app import App
    from cfcore.testing import write_deployment

    cfg = write_deployment(tmp_path / "d", "sqlite:///catalog.db")
    app = App.open(cfg)
    with app.catalog.session() as s:
        app.audit.append(s, SYSTEM, "test.private", "thing", None)
    app.close()
    for name in ("catalog.db", "catalog.db-wal", "catalog.db-shm"):
        path = tmp_path / "d" / name
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    assert (tmp_path / "d" / "catalog.db").exists()
