"""Issue 11 items 3, 6 and 9: nobody obtains another user's credentials, names are compared as
people read them, and credentials end when they should. Each test first plays the attack."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from access_helpers import PASSWORD, api_server, client, ctx_for, last_audit, login, login_env, make_user
from sqlalchemy import select

from cfcore.access import approvals, users
from cfcore.db.models_access import ApiToken, Approval
from cfcore.errors import AccessDenied, AuthenticationFailed, ConflictError, InputError

NEW = "a brand new passphrase"
FAST = "\n[access]\nargon2_time_cost = 1\nargon2_memory_kib = 1024\nargon2_parallelism = 1\n"


@pytest.fixture
def fast_app(deployment, make_app):
    deployment.write_text(deployment.read_text() + FAST)
    return make_app(deployment)


def _pw(app, name, password=PASSWORD, ip="10.0.0.7"):
    return users.authenticate_password(app, name, password, host="pc-7", ip=ip, function="test.login")


def _tok(app, token):
    return users.authenticate_token(app, token, host="h", ip="127.0.0.1", function="t")


def _staff(app):
    make_user(app, "root", ["administrator"])
    make_user(app, "root2", ["administrator"])
    make_user(app, "dora", ["dpo"])
    make_user(app, "alice", ["supervisor"])


# --------------------------------------------------------------------------- item 3: nobody acts as another


def test_administrator_cannot_set_another_users_password(fast_app):
    app = fast_app
    _staff(app)
    with pytest.raises(AccessDenied, match="only the user themself"):
        users.set_password(app, ctx_for(app, "root"), "alice", NEW)
    assert last_audit(app, action="user.password", user="root").outcome == "denied"
    with pytest.raises(AuthenticationFailed):
        _pw(app, "alice", NEW)
    assert _pw(app, "alice").username == "alice"


def test_administrator_cannot_mint_a_token_for_another_user_over_the_api(fast_app):
    app = fast_app
    _staff(app)
    with api_server(app) as server:
        with client(server, login(server, "root")) as c:
            r = c.post("/api/auth/tokens", json={"username": "alice", "days": 30})
            assert r.status_code == 403 and "only the user themself" in r.json()["error"]
            mine = c.post("/api/auth/tokens", json={"days": 1})
            assert mine.status_code == 201
    with app.catalog.session() as s:
        owners = {t.user_id for t in s.scalars(select(ApiToken).where(ApiToken.kind == "token"))}
    assert owners == {users.get_user(app, "root").id}


def test_cli_token_and_password_act_on_oneself_only(fast_app, run_cf, frozen_clock):
    app = fast_app
    _staff(app)
    tok = run_cf("users", "token", "alice", env=login_env("root"))
    assert tok.returncode == 5 and "only the user themself" in tok.stderr and "Traceback" not in tok.stderr
    pw = run_cf("users", "password", "alice", "--password-stdin", env=login_env("root"), input=NEW + "\n")
    assert pw.returncode == 5 and "cf users reset" in pw.stderr
    assert _pw(app, "alice").username == "alice"
    # a copied token is not enough to take an account over by changing its password
    stolen = users.create_token(app, ctx_for(app, "alice"), days=30, origin_token=None).token
    own = run_cf("users", "password", "--password-stdin", input=NEW + "\n",
                 env={"CF_TOKEN": stolen, "CF_NOW": frozen_clock.now().isoformat()})
    assert own.returncode == 5 and "current password" in own.stderr
    assert _pw(app, "alice").username == "alice"


def test_password_reset_needs_two_people_and_only_the_user_can_use_it(fast_app, frozen_clock):
    app = fast_app
    _staff(app)
    session = users.start_session(app, ctx_for(app, "alice"))
    token = users.create_token(app, ctx_for(app, "alice"), days=30, origin_token=None)
    with pytest.raises(AccessDenied):  # no users.manage: no first half
        users.reset_password(app, ctx_for(app, "dora"), "alice")
    half1 = users.reset_password(app, ctx_for(app, "root"), "ALICE")
    assert half1.half == 1 and half1.username == "alice"
    # at once: the old password and every session and token of alice end
    for t in (session.token, token.token):
        with pytest.raises(AuthenticationFailed):
            _tok(app, t)
    with pytest.raises(AuthenticationFailed):
        _pw(app, "alice")
    # the administrator alone holds nothing usable: half 1 alone, or twice, sets no password
    for second in ("", half1.code, "guessed-guessed-guessed"):
        with pytest.raises(AuthenticationFailed):
            users.complete_reset(app, "alice", half1.code, second, NEW, host="h", ip=f"10.0.1.{len(second)}",
                                 function="t")
    # the same administrator cannot issue the second half; nor another administrator
    for who in ("root", "root2"):
        with pytest.raises(AccessDenied):
            users.reset_password(app, ctx_for(app, who), "alice")
    assert last_audit(app, action="user.reset", user="root", outcome="denied").detail["reason"] == \
        "the second half must come from a second person"
    half2 = users.reset_password(app, ctx_for(app, "dora"), "alice")
    assert half2.half == 2 and half2.code != half1.code
    with pytest.raises(InputError):
        users.reset_password(app, ctx_for(app, "alice"), "alice")  # nobody resets their own
    users.complete_reset(app, "alice", half1.code, half2.code, NEW, host="pc-alice", ip="10.0.0.9",
                         function="cli.users.reset-password")
    assert _pw(app, "alice", NEW).username == "alice"
    with pytest.raises(AuthenticationFailed):  # one-time
        users.complete_reset(app, "alice", half1.code, half2.code, "yet another passphrase", host="h",
                             ip="10.0.0.9", function="t")
    issued = [e for e in app.audit.entries(0, action="user.reset") if e.outcome == "issued"]
    assert [(e.user, e.detail["half"]) for e in issued] == [("root", 1), ("dora", 2)]
    assert issued[0].detail["revoked_tokens"] == 2
    done = last_audit(app, action="user.password", outcome="ok")
    assert (done.user, done.detail["method"], done.host) == ("alice", "reset", "pc-alice")
    assert all(half1.code not in json.dumps(dict(e.detail)) and half2.code not in json.dumps(dict(e.detail))
               for e in app.audit.entries(0))


def test_password_reset_expires(fast_app, frozen_clock):
    app = fast_app
    _staff(app)
    half1 = users.reset_password(app, ctx_for(app, "root"), "alice")
    half2 = users.reset_password(app, ctx_for(app, "dora"), "alice")
    frozen_clock.advance(timedelta(hours=24, seconds=1))
    with pytest.raises(AuthenticationFailed, match="expired"):
        users.complete_reset(app, "alice", half1.code, half2.code, NEW, host="h", ip="10.0.0.9", function="t")
    with pytest.raises(AuthenticationFailed):
        _pw(app, "alice", NEW)


def test_password_reset_on_the_command_line_and_the_api(fast_app, run_cf):
    app = fast_app
    _staff(app)
    r1 = run_cf("users", "reset", "alice", "--json", env=login_env("root"), check=True)
    code1 = json.loads(r1.stdout)["code"]
    again = run_cf("users", "reset", "alice", env=login_env("root"))
    assert again.returncode == 5 and "second person" in again.stderr
    with api_server(app) as server:
        with client(server, login(server, "dora")) as c:
            r2 = c.post("/api/users/alice/reset")
            assert r2.status_code == 200 and r2.json()["half"] == 2
            code2 = r2.json()["code"]
        with client(server) as anon:
            bad = anon.post("/api/auth/reset", json={"username": "alice", "code_1": code1, "code_2": code1,
                                                     "new_password": NEW})
            assert bad.status_code == 401
    done = run_cf("users", "reset-password", "alice", "--stdin", input=f"{code1}\n{code2}\n{NEW}\n")
    assert done.returncode == 0, done.stderr
    assert _pw(app, "alice", NEW).username == "alice"


# --------------------------------------------------------------------------- item 6: names as people read them


def test_a_role_change_for_DORA_cannot_be_approved_by_dora(fast_app):
    """The attack: request a change for ``DORA`` (or full-width ``ｄｏｒａ``); dora approved it herself."""
    app = fast_app
    _staff(app)
    make_user(app, "carl", ["compliance"])
    for spelling in ("DORA", " Dora ", "ｄｏｒａ"):
        aid = approvals.request(app, ctx_for(app, "root"), "roles.change", spelling, "more rights",
                                {"add": "auditor", "remove": ""})
        with app.catalog.session() as s:
            assert s.get(Approval, aid).target_id == "dora"
        with pytest.raises(AccessDenied, match="their own roles"):
            approvals.approve(app, ctx_for(app, "dora"), aid)
    approvals.approve(app, ctx_for(app, "carl"), aid)  # a second person may
    approvals.execute(app, ctx_for(app, "root"), aid)
    assert users.get_user(app, "dora").roles == ("auditor", "dpo")


def test_look_alike_user_names_are_refused(fast_app):
    app = fast_app
    _staff(app)
    for name in ("Dora", "DORA", " dora", "ｄｏｒａ", "Ｄｏｒａ"):
        with pytest.raises(ConflictError, match="exists already"):
            users.add_user(app, ctx_for(app, "root"), name)
    view = users.add_user(app, ctx_for(app, "root"), "Ｅｖａ")
    assert view.username == "eva"
    with pytest.raises(InputError):  # letters that only look Latin are not accepted at all
        users.add_user(app, ctx_for(app, "root"), "dоra")  # Cyrillic о
    assert _pw(app, "ＤＯＲＡ").username == "dora"


def test_migration_folds_user_targets_of_open_requests(catalog_url):
    from sqlalchemy import create_engine, text

    from cfcore.db.migrate import upgrade

    engine = create_engine(catalog_url)
    upgrade(engine, "0001")
    with engine.begin() as c:
        c.execute(text(
            "INSERT INTO approvals (id, action, target_kind, target_id, params, reason, state, approvals_required,"
            " requester_id, requester, requested_at, requested_host, requested_ip, expires_at) VALUES"
            " ('a1', 'roles.change', 'user', 'DORA', '{}', 'r', 'requested', 1, 'x', 'root',"
            " '2026-11-28 09:00:00', 'h', '1.2.3.4', '2026-11-29 09:00:00')"))
    upgrade(engine)
    with engine.begin() as c:
        assert c.execute(text("SELECT target_id FROM approvals WHERE id = 'a1'")).scalar() == "dora"
    engine.dispose()


# --------------------------------------------------------------------------- item 9: credentials end


def test_password_change_revokes_sessions_and_tokens(fast_app):
    app = fast_app
    _staff(app)
    session = users.start_session(app, ctx_for(app, "alice"))
    token = users.create_token(app, ctx_for(app, "alice"), days=30, origin_token=None)
    users.set_password(app, ctx_for(app, "alice"), "alice", NEW)
    for t in (session.token, token.token):
        with pytest.raises(AuthenticationFailed):
            _tok(app, t)
    assert last_audit(app, action="user.password").detail["revoked_tokens"] == 2


def test_disable_and_enable_does_not_resurrect_credentials(fast_app):
    app = fast_app
    _staff(app)
    session = users.start_session(app, ctx_for(app, "alice"))
    token = users.create_token(app, ctx_for(app, "alice"), days=30, origin_token=None)
    users.set_disabled(app, ctx_for(app, "root"), "alice", True)
    users.set_disabled(app, ctx_for(app, "root"), "alice", False)
    for t in (session.token, token.token):
        with pytest.raises(AuthenticationFailed):
            _tok(app, t)
    assert last_audit(app, action="auth.login", user="alice").detail["reason"] == "revoked"
    assert _pw(app, "alice").username == "alice"  # the person may log in again, afresh


def test_a_token_minted_from_a_session_lives_no_longer_than_the_session(fast_app):
    app = fast_app
    _staff(app)
    with api_server(app) as server:
        session = login(server, "alice")
        with client(server, session) as c:
            me = c.get("/api/auth/tokens").json()
            session_end = next(t["expires_at"] for t in me if t["kind"] == "session")
            capped = c.post("/api/auth/tokens", json={"days": 365})
            assert capped.status_code == 201 and capped.json()["expires_at"] == session_end
            wrong = c.post("/api/auth/tokens", json={"days": 365, "password": "not my password"})
            assert wrong.status_code == 401
            fresh = c.post("/api/auth/tokens", json={"days": 365, "password": PASSWORD})
            assert fresh.status_code == 201
            too_long = c.post("/api/auth/tokens", json={"days": 366, "password": PASSWORD})
            assert too_long.status_code == 400
        with client(server, capped.json()["token"]) as c2:  # and a token minted from that token
            child = c2.post("/api/auth/tokens", json={"days": 365})
            assert child.json()["expires_at"] == session_end
    assert fresh.json()["expires_at"] > session_end
    e = last_audit(app, action="token.create", outcome="ok")
    assert e.detail["capped_by"] is not None and e.detail["fresh_password"] is False


def test_cli_token_from_a_token_is_capped(fast_app, run_cf, frozen_clock):
    app = fast_app
    _staff(app)
    parent = users.create_token(app, ctx_for(app, "alice"), days=2, origin_token=None)
    # the subprocess runs on the test's clock, like run_cli_inprocess (sec-clock converts this pattern)
    r = run_cf("users", "token", "--days", "365", "--json", check=True,
               env={"CF_TOKEN": parent.token, "CF_NOW": frozen_clock.now().isoformat()})
    assert json.loads(r.stdout)["expires_at"] == parent.expires_at.isoformat()
