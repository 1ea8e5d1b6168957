"""Shared helpers of the access and API tests: users per role, recordings, a real API server.

``make_user`` writes a user with roles straight into the catalog: a test shortcut around the
four-eyes role change (which has its own tests). Other areas' tests may use ``make_user`` and
``login_env`` to run ``cf`` as a logged-in user::

    from access_helpers import login_env, make_user
    make_user(app, "ops", ["administrator"])
    run_cf("retention", "run", env=login_env("ops"))
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import httpx

from cfcore.clock import FrozenClock
from cfcore.testing import PG_ADMIN_URL, free_tcp_port, open_test_app, test_backend, write_deployment
from hookspecs.types import AccessTarget, Actor, Decision, RequestContext

PASSWORD = "correct horse battery staple"
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
ROLES = ("advisor", "supervisor", "qa_reviewer", "compliance", "dpo", "auditor", "administrator")
#: The advisor id of the ``u-advisor`` user; ``u-advisor2`` has ADVISOR2.
ADVISOR, ADVISOR2 = "A1", "A2"


_HASHES: dict[tuple[str | None, int, int, int], str] = {}


def make_user(app: Any, username: str, roles: list[str] | tuple[str, ...] = (), *, advisor_id: str | None = None,
              password: str | None = PASSWORD, disabled: bool = False) -> str:
    """Create a user with roles directly in the catalog (test-only shortcut). Returns the user id."""
    from cfcore.access.users import _hasher, hash_password
    from cfcore.db.models_access import User, UserRole

    now = app.clock.now()
    user_id = secrets.token_hex(16)
    ph = _hasher(app)
    key = (password, ph.time_cost, ph.memory_cost, ph.parallelism)
    if password and key not in _HASHES:  # one Argon2 hash per password, settings and test run (it is slow)
        _HASHES[key] = hash_password(app, password)
    with app.catalog.session() as s:
        user = User(id=user_id, username=username, password_hash=_HASHES[key] if password else None,
                    advisor_id=advisor_id, disabled=disabled, failed_logins=0, created_at=now, created_by="test")
        for role in roles:
            user.roles.append(UserRole(role=role, granted_at=now))
        s.add(user)
    return user_id


class FakeMonotonic:
    """A hand-moved monotonic clock for the log-in throttle (``advance(seconds)``)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def fake_monotonic(app: Any) -> FakeMonotonic:
    """Give ``app`` a fresh log-in throttle on a hand-moved clock; returns the clock."""
    from cfcore.access.throttle import LoginThrottle, settings

    clock = FakeMonotonic()
    app.__dict__["_cf_login_throttle"] = LoginThrottle(settings(app), monotonic=clock)
    return clock


def login_env(username: str, password: str = PASSWORD) -> dict[str, str]:
    """Environment for ``run_cf`` to log in as ``username``."""
    return {"CF_USER": username, "CF_PASSWORD": password}


def ctx_for(app: Any, username: str, *, host: str = "pc-test", ip: str = "10.1.2.3",
            function: str = "test") -> RequestContext:
    """A request context for ``username`` as the catalog knows them (roles, advisor id)."""
    from sqlalchemy import select

    from cfcore.access.users import actor_for
    from cfcore.db.models_access import User

    with app.catalog.session() as s:
        user = s.scalars(select(User).where(User.username == username)).one()
        actor = actor_for(user)
    return RequestContext(actor=actor, host=host, ip=ip, function=function)


def role_user(role: str) -> str:
    return f"u-{role}"


def expected(role: str, action: str, owner: str | None = None) -> Decision:
    """What the default policy's matrix says for a user with just ``role`` (the advisor has
    advisor id ADVISOR) on a recording of ``owner``."""
    from cfcore.defaults.access_policy import MATRIX, cell_decision

    actor = Actor(user_id="x", username="x", roles={role}, advisor_id=ADVISOR if role == "advisor" else None)
    return cell_decision(MATRIX[action][role], actor, AccessTarget(kind="recording", owner_advisor_id=owner))


def make_wav(path: Path, seconds: float = 3.0, two_sided: bool = True) -> Path:
    from retention_helpers import make_wav as _make

    return _make(path, seconds, two_sided)


def ingest(app: Any, tmp: Path, advisor: str, *, started: str = "2026-11-20T10:00:00+00:00", seconds: float = 3.0,
           customer: str = "K-1", number: str | None = None) -> str:
    from cfcore.ingest import ingest_wav

    wav = make_wav(tmp / f"{advisor}-{secrets.token_hex(3)}.wav", seconds)
    return ingest_wav(app, wav, advisor_id=advisor, customer_ids=[customer], customer_numbers=[number] if number else [],
                      consent_at=0.5, started=started)


# --------------------------------------------------------------------------- a real server


class ApiServer:
    """The API of ``app`` served by uvicorn in a thread on a free loopback port."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        import uvicorn

        from cfcore.web import create_app

        self.port = port or free_tcp_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(app), host="127.0.0.1", port=self.port, log_level="warning",
                                proxy_headers=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{self.port}", daemon=True)

    def start(self) -> ApiServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)


@contextmanager
def api_server(app: Any) -> Iterator[ApiServer]:
    server = ApiServer(app).start()
    try:
        yield server
    finally:
        server.stop()


def client(server: ApiServer, token: str | None = None, host: str = "pc-test") -> httpx.Client:
    headers = {"X-Client-Host": host}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(base_url=server.base, headers=headers, timeout=60)


def login(server: ApiServer, username: str, password: str = PASSWORD) -> str:
    with client(server) as c:
        r = c.post("/api/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return r.json()["token"]


# --------------------------------------------------------------------------- a shared world


@contextmanager
def catalog_url_for(tmp: Path) -> Iterator[str]:
    """Like the ``catalog_url`` fixture, for module-scoped deployments."""
    if test_backend() == "sqlite":
        yield f"sqlite:///{tmp / 'catalog.db'}"
        return
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    schema = f"t_{secrets.token_hex(6)}"
    with admin.connect() as c:
        c.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{PG_ADMIN_URL.split('?')[0]}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as c:
            c.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@attrs.define
class World:
    """A deployment with one user per role, two advisors' recordings and a running API server."""

    app: Any
    clock: FrozenClock
    deployment: Path
    tmp: Path
    server: ApiServer
    rec_own: str  # advisor A1's (u-advisor's) recording
    rec_other: str  # advisor A2's recording
    tokens: dict[str, str] = attrs.Factory(dict)

    def http(self, username: str, host: str | None = None) -> httpx.Client:
        return client(self.server, self.tokens[username], host or f"pc-{username}")

    def cli(self, username: str | None, *args: str, input: str | None = None,
            env: dict[str, str] | None = None) -> Any:
        return run_cli_inprocess(self.deployment, self.clock, username, *args, input=input, env=env)


#: Cheap Argon2 for the shared worlds: hundreds of log-ins (the defaults are tested elsewhere).
FAST_ARGON2 = "argon2_time_cost = 1\nargon2_memory_kib = 1024\nargon2_parallelism = 1\n"


def build_world(tmp: Path, catalog_url: str, extra_config: str = "") -> World:

    if "[access]" in extra_config:
        extra_config = extra_config.replace("[access]\n", "[access]\n" + FAST_ARGON2, 1)
    else:
        extra_config += "\n[access]\n" + FAST_ARGON2
    dep = write_deployment(tmp / "deploy", catalog_url, extra_config)
    clock = FrozenClock(NOW)
    app = open_test_app(dep, clock=clock)
    for role in ROLES:
        make_user(app, role_user(role), [role], advisor_id=ADVISOR if role == "advisor" else None)
    make_user(app, "u-advisor2", ["advisor"], advisor_id=ADVISOR2)
    rec_own = ingest(app, tmp, ADVISOR, number="+49 30 1234567")
    rec_other = ingest(app, tmp, ADVISOR2, customer="K-2")
    server = ApiServer(app).start()
    world = World(app=app, clock=clock, deployment=dep, tmp=tmp, server=server, rec_own=rec_own, rec_other=rec_other)
    for name in [role_user(r) for r in ROLES] + ["u-advisor2"]:
        world.tokens[name] = login(server, name)
    return world


@contextmanager
def world_for(tmp: Path, extra_config: str = "") -> Iterator[World]:
    with catalog_url_for(tmp) as url:
        world = build_world(tmp, url, extra_config)
        try:
            yield world
        finally:
            world.server.stop()
            world.app.close()


def run_cli_inprocess(deployment: Path, clock: FrozenClock, username: str | None, *args: str,
                      input: str | None = None, env: dict[str, str] | None = None) -> Any:
    """Run ``cf`` in this process (click's runner) as ``username``: the same command, exit code and
    output as a subprocess, without a Python start-up per call. The CLI's clock is pinned to
    ``clock`` (``CF_NOW``)."""
    from click.testing import CliRunner

    from cfcore.cli.main import cli

    full_env = {"CF_CONFIG": str(deployment), "CF_NOW": clock.now().isoformat(), "CF_TOKEN": None,
                "CF_USER": username, "CF_PASSWORD": PASSWORD if username else None, "CF_NEW_PASSWORD": None}
    full_env.update(env or {})
    return _WithoutTestKitWarning(CliRunner().invoke(cli, list(args), env=full_env, input=input,
                                                     catch_exceptions=False))


class _WithoutTestKitWarning:
    """A click ``Result`` without the test kit's own warning line (as ``run_cf`` strips it)."""

    def __init__(self, result: Any) -> None:
        self._result = result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._result, name)

    @staticmethod
    def _strip(text: str) -> str:
        from cfcore.testing import TEST_ONLY_MARK

        return "".join(line for line in text.splitlines(keepends=True) if TEST_ONLY_MARK not in line)

    @property
    def output(self) -> str:
        return self._strip(self._result.output)

    @property
    def stderr(self) -> str:
        return self._strip(self._result.stderr)


def cli_host_ip() -> tuple[str, str]:
    from cfcore.cli.context import local_host_and_ip

    return local_host_and_ip()


def last_audit(app: Any, **filters: Any) -> Any:
    """The newest audit entry matching ``filters`` (action=, user=, target_id=, outcome=)."""
    outcome = filters.pop("outcome", None)
    rows = [e for e in app.audit.entries(0, **filters) if outcome is None or e.outcome == outcome]
    assert rows, f"no audit entry for {filters} outcome={outcome}"
    return rows[-1]


def audit_seq(app: Any) -> int:
    rows = list(app.audit.entries(0))
    return rows[-1].seq if rows else 0


def env_without_login() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("CF_USER", "CF_PASSWORD", "CF_TOKEN")}
