"""pytest plugin for CallFort and its plugin authors: a temporary deployment per test.

Fixtures: ``frozen_clock``, ``deployment`` (a config directory), ``app`` (an ``App`` on it),
``catalog_url`` (SQLite by default; PostgreSQL with ``CF_TEST_DB=postgres``, a fresh schema per
test), ``free_port``, ``run_cf`` (runs the CLI in a subprocess, as a user would).

Installed plugins do not leak into tests (llm#626): ``app`` and ``make_app`` load the in-tree
defaults and only the installed entry points named by the ``cf_plugins`` fixture — by default
``store_local``, the store the default deployment names. Ask for more with the marker
``@pytest.mark.cf_plugins("store_local", "pbx_acme")``, or override the fixture in a conftest
(return ``None`` for every installed plugin).

With ``CF_TEST_DB=postgres`` an unreachable server fails the run instead of skipping it.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from .clock import FrozenClock

#: In the warning every command logs while a test-only plugin is loaded (cfcore.plugins).
TEST_ONLY_MARK = "TEST-ONLY plugin"

PG_ADMIN_URL = os.environ.get("CF_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def test_backend() -> str:
    backend = os.environ.get("CF_TEST_DB", "sqlite")
    if backend not in ("sqlite", "postgres"):
        raise pytest.UsageError(f"CF_TEST_DB must be sqlite or postgres, not {backend!r}")
    return backend


def pytest_report_header(config: pytest.Config) -> str:
    return f"callfort catalog backend: {test_backend()}"


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def free_port() -> int:
    return free_tcp_port()


@pytest.fixture
def frozen_clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 11, 28, 9, 0, tzinfo=UTC))


@pytest.fixture
def catalog_url(tmp_path: Path) -> Iterator[str]:
    if test_backend() == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.db'}"
        return
    from sqlalchemy import create_engine, text

    try:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text("SELECT 1"))
    except Exception as exc:  # CI must fail, not skip, without PostgreSQL
        pytest.fail(f"CF_TEST_DB=postgres but PostgreSQL at {PG_ADMIN_URL} is unreachable: {exc}")
    schema = f"t_{secrets.token_hex(6)}"
    with admin.connect() as c:
        c.execute(text(f"CREATE SCHEMA {schema}"))
    base = PG_ADMIN_URL.split("?")[0]
    yield f"{base}?options=-csearch_path%3D{schema}"
    with admin.connect() as c:
        c.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def write_deployment(directory: Path, catalog_url: str, extra: str = "") -> Path:
    """Write a deployment like ``cf init`` does (secrets included), with ``catalog_url`` and extra TOML appended."""
    from .deployment import DEFAULT_CONFIG

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "keys").mkdir(mode=0o700, exist_ok=True)
    text_ = DEFAULT_CONFIG.replace("{site}", "site-a").replace(
        'url = "sqlite:///catalog.db"', f'url = "{catalog_url}"')
    path = directory / "callfort.toml"
    path.write_text(text_ + "\n" + extra, encoding="utf-8")
    from .secrets import create_secrets

    create_secrets(directory / "keys", lambda: datetime(2026, 11, 28, 9, 0, tzinfo=UTC))
    return path


@pytest.fixture
def deployment(tmp_path: Path, catalog_url: str) -> Path:
    """Path of a fresh ``callfort.toml``; tests may append sections before opening the app."""
    return write_deployment(tmp_path / "deploy", catalog_url)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cf_plugins(*names): installed CallFort plugins the app fixtures load")


#: What the default deployment of ``cf init`` needs.
DEFAULT_TEST_PLUGINS = ("store_local",)


def open_test_app(config_path: Path, **kwargs: Any) -> Any:
    """An ``App`` for a test process: its clock is passed in, so the test-only plugin (the test
    kit, for ``cf`` subprocesses) is not loaded into it and the FIS does not report it."""
    from .app import App
    from .config import load_config
    from .plugins import get_plugin_manager

    config = load_config(config_path)
    return App(config, pm=get_plugin_manager(config, load_test_only=False), **kwargs)


@pytest.fixture
def cf_plugins(request: pytest.FixtureRequest) -> tuple[str, ...] | None:
    """Names of the installed entry points (group ``cfcore``) the app fixtures load; ``None``: all."""
    marker = request.node.get_closest_marker("cf_plugins")
    return tuple(marker.args) if marker is not None else DEFAULT_TEST_PLUGINS


def entry_points_named(names: tuple[str, ...] | None) -> list[Any]:
    """The installed entry points of group ``cfcore`` with these names (``None``: all); a name that
    is not installed fails the test with the names that are."""
    import importlib.metadata as md

    from .plugins import ENTRY_POINT_GROUP

    installed = list(md.entry_points(group=ENTRY_POINT_GROUP))
    if names is None:
        return installed
    missing = sorted(set(names) - {ep.name for ep in installed})
    if missing:
        pytest.fail(f"plugin {missing[0]} is not installed; installed: {', '.join(sorted(e.name for e in installed))}")
    return [ep for ep in installed if ep.name in names]


@pytest.fixture
def make_app(frozen_clock: FrozenClock, cf_plugins: tuple[str, ...] | None) -> Iterator[Callable[..., Any]]:
    from .app import App
    from .config import load_config
    from .plugins import get_plugin_manager

    opened: list[App] = []

    def make(config_path: Path, **kwargs: Any) -> App:
        kwargs.setdefault("clock", frozen_clock)
        if "pm" not in kwargs:
            config = load_config(config_path)
            kwargs["pm"] = get_plugin_manager(config, entry_points=entry_points_named(cf_plugins),
                                              load_test_only=False)
        app = App.open(config_path, **kwargs)
        opened.append(app)
        return app

    yield make
    for app in opened:
        app.close()


@pytest.fixture
def app(deployment: Path, make_app: Callable[..., Any]) -> Any:
    return make_app(deployment)


@pytest.fixture
def run_cf(deployment: Path, frozen_clock: FrozenClock) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``cf`` as a separate process against the test deployment.

    The process runs on the test's clock: ``CF_NOW`` is the ``frozen_clock``'s time at the call
    (the in-process app and the subprocess must never disagree about the date; a test may pass its
    own ``CF_NOW``), honoured through the test-only plugin ``testkit/``. That plugin's warning line
    is removed from ``stderr`` unless ``raw_stderr=True``. ``real_clock=True`` runs it on the real
    clock instead, for tests whose app and other processes run on the real clock (a PBX simulator,
    sipp, a ``cf capture run`` subprocess)."""

    def run(*args: str, env: dict[str, str] | None = None, check: bool = False, input: str | None = None,
            timeout: float = 120, raw_stderr: bool = False,
            real_clock: bool = False) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "CF_CONFIG": str(deployment), "CF_NOW": frozen_clock.now().isoformat(),
                    **(env or {})}
        if real_clock:
            full_env.pop("CF_NOW", None)
        proc = subprocess.run([sys.executable, "-m", "cfcore", *args], capture_output=True, text=True,
                              env=full_env, input=input, timeout=timeout)
        if not raw_stderr:  # the test kit's own warning line, printed by every command it is loaded in
            proc.stderr = "".join(line for line in proc.stderr.splitlines(keepends=True)
                                  if TEST_ONLY_MARK not in line)
        if check and proc.returncode != 0:
            raise AssertionError(f"cf {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc

    return run
