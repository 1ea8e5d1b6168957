"""Issue 11 item 5: log-ins under attack.

The attack: 120 concurrent log-ins for unknown users ran Argon2 inside the catalog transaction,
stalled ingest (``database is locked``) and the API; six wrong passwords locked any account;
locked or disabled accounts answered at once (an enumeration oracle). Now: Argon2 outside any
transaction on one thread per core, throttling with 429 + Retry-After instead of a lock-out, and
the same work on every path. Outcomes are asserted, never times (figures: bench_login_flood.py).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from access_helpers import PASSWORD, ApiServer, client, ctx_for, fake_monotonic, ingest, login, make_user
from argon2 import PasswordHasher

from cfcore.access import users
from cfcore.errors import AuthenticationFailed, TooManyRequests

PROXY = '\n[server]\ntrusted_proxies = ["127.0.0.1/32"]\n'


@pytest.fixture
def server_app(deployment, make_app):
    deployment.write_text(deployment.read_text() + PROXY)
    app = make_app(deployment)
    server = ApiServer(app).start()
    yield app, server
    server.stop()


def test_a_flood_of_bad_logins_leaves_api_and_ingest_working(server_app, tmp_path):
    """120 concurrent log-ins for unknown users (default Argon2 settings) against the real server,
    while a logged-in user calls /api/auth/me and a recording is ingested."""
    app, server = server_app
    make_user(app, "alice", ["supervisor"])
    token = login(server, "alice")
    start = threading.Barrier(121 + 2)
    results: list[httpx.Response] = []

    def attack(i: int) -> httpx.Response:
        with httpx.Client(base_url=server.base, timeout=120) as c:
            start.wait()
            return c.post("/api/auth/login", json={"username": f"nobody{i}", "password": "guess guess guess"})

    me_status: list[int] = []
    ingested: list[str] = []
    errors: list[BaseException] = []

    def legit_me() -> None:
        with client(server, token) as c:
            start.wait()
            for _ in range(5):
                me_status.append(c.get("/api/auth/me").status_code)

    def legit_ingest() -> None:
        start.wait()
        try:
            ingested.append(ingest(app, tmp_path, "A1"))
        except BaseException as exc:  # the assertion below names it
            errors.append(exc)

    others = [threading.Thread(target=legit_me), threading.Thread(target=legit_ingest)]
    for t in others:
        t.start()
    with ThreadPoolExecutor(120) as pool:
        futures = [pool.submit(attack, i) for i in range(120)]
        start.wait()
        results = [f.result() for f in futures]
    for t in others:
        t.join(300)
    statuses = sorted({r.status_code for r in results})
    assert set(statuses) <= {401, 429}, statuses
    refused = [r for r in results if r.status_code == 429]
    assert refused and all(int(r.headers["Retry-After"]) >= 1 for r in refused)
    assert errors == [] and len(ingested) == 1
    assert me_status == [200] * 5
    with client(server, token) as c:
        assert c.get("/api/auth/me").json()["username"] == "alice"
    assert app.audit.verify().ok


def test_throttle_answers_429_with_retry_after_then_lets_the_owner_in(server_app):
    app, server = server_app
    clock = fake_monotonic(app)
    make_user(app, "alice", ["supervisor"])
    with client(server) as c:
        codes = [c.post("/api/auth/login", json={"username": "alice", "password": "wrong wrong wrong"}).status_code
                 for _ in range(5)]
        assert codes == [401, 401, 401, 401, 429]
        right = c.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
        assert right.status_code == 429 and right.headers["Retry-After"] == "1"  # not even looked at
        clock.advance(1.5)
        assert c.post("/api/auth/login", json={"username": "alice", "password": PASSWORD}).status_code == 200


def test_nobody_is_locked_out_by_others_guesses(server_app):
    """Guesses from many addresses: the owner logs in from their usual address throughout, and
    from a new address after the Retry-After delay; the account is never locked."""
    app, server = server_app
    clock = fake_monotonic(app)
    make_user(app, "admin", ["administrator"])

    def post(ip: str, password: str) -> httpx.Response:
        with client(server) as c:
            return c.post("/api/auth/login", json={"username": "admin", "password": password},
                          headers={"X-Forwarded-For": ip})

    assert post("10.0.0.1", PASSWORD).status_code == 200  # the owner's PC
    seen = set()
    for i in range(60):
        seen.add(post(f"10.66.{i // 200}.{i % 200 + 1}", "guess guess guess").status_code)
        clock.advance(0.01)
    assert seen == {401, 429}  # the account-wide delay took over
    assert post("10.0.0.1", PASSWORD).status_code == 200
    new_pc = post("10.0.0.2", PASSWORD)
    assert new_pc.status_code == 429
    clock.advance(int(new_pc.headers["Retry-After"]) + 0.5)
    assert post("10.0.0.2", PASSWORD).status_code == 200
    view = users.get_user(app, "admin")
    assert view.locked_until is None and not view.disabled


class CountingHasher(PasswordHasher):
    """Argon2 as configured, counting verifications and whether a catalog connection is held meanwhile."""

    def __init__(self, app, base: PasswordHasher) -> None:
        super().__init__(time_cost=base.time_cost, memory_cost=base.memory_cost, parallelism=base.parallelism)
        self.app = app
        self.calls = 0
        self.connections_held: list[int] = []

    def verify(self, hash, password):  # type: ignore[no-untyped-def]
        self.calls += 1
        self.connections_held.append(self.app.catalog.engine.pool.checkedout())
        return super().verify(hash, password)


def test_every_path_does_the_same_work_outside_any_transaction(deployment, make_app):
    """Unknown user, disabled, no password, wrong password, right password: one Argon2
    verification each (a dummy hash where there is none to check), one audit entry, and no
    catalog connection held while Argon2 runs."""
    deployment.write_text(deployment.read_text() + "\n[access]\nargon2_time_cost = 1\nargon2_memory_kib = 1024\n"
                          "argon2_parallelism = 1\n")
    app = make_app(deployment)
    fake_monotonic(app)
    make_user(app, "alice", ["supervisor"])
    make_user(app, "dis", ["supervisor"], disabled=True)
    make_user(app, "nopw", ["supervisor"], password=None)
    hasher = CountingHasher(app, users._hasher(app))
    app.__dict__["_cf_password_hasher"] = hasher
    users._dummy_hash(app)
    paths = [("nobody", PASSWORD), ("dis", PASSWORD), ("nopw", PASSWORD), ("alice", "wrong wrong wrong"),
             ("alice", PASSWORD)]
    for i, (name, password) in enumerate(paths):
        before_calls = hasher.calls
        before_audit = len(list(app.audit.entries(0)))
        try:
            users.authenticate_password(app, name, password, host="h", ip=f"10.0.0.{i}", function="t",
                                        audit_success=True)
            outcome = "ok"
        except AuthenticationFailed as exc:
            outcome = str(exc)
        assert hasher.calls - before_calls == 1, name
        assert len(list(app.audit.entries(0))) - before_audit == 1, name
        assert outcome == ("ok" if password == PASSWORD and name == "alice" else users.LOGIN_FAILED
                           + f" ({users.LOGIN_HINT})")
    assert hasher.connections_held == [0] * len(paths)


def test_throttled_attempt_raises_before_any_work(deployment, make_app):
    app = make_app(deployment)
    fake_monotonic(app)
    make_user(app, "alice", ["supervisor"])
    for _ in range(4):
        with pytest.raises(AuthenticationFailed):
            users.authenticate_password(app, "alice", "wrong wrong wrong", host="h", ip="10.1.1.1", function="t")
    before = len(list(app.audit.entries(0)))
    with pytest.raises(TooManyRequests) as exc:
        users.authenticate_password(app, "alice", PASSWORD, host="h", ip="10.1.1.1", function="t")
    assert exc.value.retry_after >= 1 and exc.value.http_status == 429
    assert len(list(app.audit.entries(0))) == before
    assert users.authenticate_password(app, "alice", PASSWORD, host="h", ip="10.1.1.2", function="t")
    assert ctx_for(app, "alice").actor.username == "alice"
