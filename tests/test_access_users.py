"""Users: Argon2 passwords, lock-out, tokens, bootstrap, four-eyes role changes; CLI log-in."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from access_helpers import PASSWORD, cli_host_ip, ctx_for, fake_monotonic, last_audit, login_env, make_user
from sqlalchemy import select

from cfcore.access import approvals, users
from cfcore.cli.context import system_cli_context
from cfcore.db.models_access import ApiToken, User
from cfcore.errors import AccessDenied, ApprovalRequired, AuthenticationFailed, ConflictError, InputError, NotFound

LOCKOUT = "\n[access]\nmax_failed_logins = 3\nlockout_minutes = 10\n"


@pytest.fixture
def app3(deployment, make_app):
    deployment.write_text(deployment.read_text() + LOCKOUT)
    return make_app(deployment)


def _login(app, name, password=PASSWORD):
    return users.authenticate_password(app, name, password, host="pc-7", ip="10.0.0.7", function="test.login")


def test_password_is_argon2_and_never_stored_in_clear(app):
    make_user(app, "alice", ["advisor"], advisor_id="A1")
    with app.catalog.session() as s:
        row = s.scalars(select(User).where(User.username == "alice")).one()
    assert row.password_hash.startswith("$argon2id$") and PASSWORD not in row.password_hash
    actor = _login(app, "alice")
    assert actor.username == "alice" and actor.roles == {"advisor"} and actor.advisor_id == "A1"


def test_short_password_refused(app):
    admin = make_user(app, "root", ["administrator"])
    assert admin
    with pytest.raises(InputError, match="too short"):
        users.add_user(app, ctx_for(app, "root"), "bob", password="short")


def test_failed_logins_are_audited_with_user_host_ip_function(app):
    make_user(app, "alice", ["advisor"])
    with pytest.raises(AuthenticationFailed) as wrong:
        _login(app, "alice", "not the password")
    with pytest.raises(AuthenticationFailed) as unknown:
        _login(app, "mallory", "whatever it is")
    assert str(wrong.value) == str(unknown.value)  # no hint which accounts exist
    e = last_audit(app, action="auth.login", user="alice")
    assert (e.outcome, e.host, e.ip, e.function, e.target_id) == ("failed", "pc-7", "10.0.0.7", "test.login", "alice")
    assert e.detail["reason"] == "wrong password"
    u = last_audit(app, action="auth.login", user="unknown")
    assert u.outcome == "failed" and u.target_id is None and u.detail["reason"] == "unknown user"
    assert "mallory" not in json.dumps(dict(u.detail))  # a mistyped name may be a password: not logged


def test_wrong_passwords_never_lock_the_account(app3):
    """Issue 11 item 5: six wrong passwords locked any account (a denial of service). Now the
    old ``max_failed_logins`` setting locks nothing: the owner still logs in."""
    app = app3
    fake_monotonic(app)
    make_user(app, "alice", ["advisor"])
    make_user(app, "root", ["administrator"])
    for i in range(6):
        with pytest.raises(AuthenticationFailed):
            users.authenticate_password(app, "alice", "wrong wrong wrong", host="evil", ip=f"10.9.0.{i}",
                                        function="test.login")
    assert not [e for e in app.audit.entries(0, action="auth.lockout")]
    assert _login(app, "alice").username == "alice"
    assert users.get_user(app, "alice").locked_until is None
    assert last_audit(app, action="auth.login", user="alice", outcome="failed").detail["reason"] == "wrong password"
    users.unlock(app, ctx_for(app, "root"), "alice")  # still there for accounts an older version locked
    assert last_audit(app, action="user.unlock").user == "root"


def test_success_resets_the_failure_count(app3):
    app = app3
    make_user(app, "alice", ["advisor"])
    for _ in range(2):
        with pytest.raises(AuthenticationFailed):
            _login(app, "alice", "wrong wrong wrong")
    _login(app, "alice")
    for _ in range(2):
        with pytest.raises(AuthenticationFailed):
            _login(app, "alice", "wrong wrong wrong")
    assert _login(app, "alice").username == "alice"  # 2 + 2 failures, never 3 in a row


def test_disabled_user_cannot_log_in_and_tokens_stop(app):
    make_user(app, "alice", ["advisor"])
    make_user(app, "root", ["administrator"])
    token = users.create_token(app, ctx_for(app, "alice"), name="crm", days=30, origin_token=None)
    assert users.authenticate_token(app, token.token, host="h", ip="127.0.0.1", function="t").username == "alice"
    users.set_disabled(app, ctx_for(app, "root"), "alice", True)
    with pytest.raises(AuthenticationFailed):
        _login(app, "alice")
    with pytest.raises(AuthenticationFailed):
        users.authenticate_token(app, token.token, host="h", ip="127.0.0.1", function="t")
    assert last_audit(app, action="auth.login", user="alice", outcome="refused").detail["reason"] == "disabled"
    assert last_audit(app, action="auth.login", user="alice").detail["reason"] == "revoked"
    with pytest.raises(InputError, match="yourself"):
        users.set_disabled(app, ctx_for(app, "root"), "root", True)


def test_tokens_stored_as_hash_revocable_and_expiring(app, frozen_clock):
    make_user(app, "alice", ["advisor"])
    issued = users.create_token(app, ctx_for(app, "alice"), name="crm", days=2, origin_token=None)
    with app.catalog.session() as s:
        row = s.get(ApiToken, issued.id)
        assert row.token_hash == hashlib.sha256(issued.token.encode()).hexdigest()
        assert all(issued.token not in str(v) for v in vars(row).values())
    assert last_audit(app, action="token.create").detail["token_id"] == issued.id
    frozen_clock.advance(timedelta(days=2))
    with pytest.raises(AuthenticationFailed):
        users.authenticate_token(app, issued.token, host="h", ip="127.0.0.1", function="t")
    assert last_audit(app, action="auth.login", user="alice").detail["reason"] == "expired"
    second = users.create_token(app, ctx_for(app, "alice"), name="crm2", days=2, origin_token=None)
    users.revoke_token(app, ctx_for(app, "alice"), second.id)
    with pytest.raises(AuthenticationFailed):
        users.authenticate_token(app, second.token, host="h", ip="127.0.0.1", function="t")


def test_nobody_mints_a_token_for_another_user(app):
    """Issue 11 item 3: an administrator minted a token for any user and acted as them."""
    make_user(app, "alice", ["advisor"])
    make_user(app, "bob", ["supervisor"])
    make_user(app, "root", ["administrator"])
    for who in ("bob", "root"):
        with pytest.raises(AccessDenied, match="only the user themself"):
            users.create_token(app, ctx_for(app, who), username="alice", origin_token=None)
        e = last_audit(app, action="token.create", user=who)
        assert (e.outcome, e.target_id) == ("denied", "alice")
    with app.catalog.session() as s:
        assert s.scalars(select(ApiToken)).all() == []
    assert users.create_token(app, ctx_for(app, "alice"), origin_token=None).token.startswith("cft_")


def test_bootstrap_only_while_no_administrator(app):
    ctx = system_cli_context("test.bootstrap")
    view = users.bootstrap_administrator(app, ctx, "root", PASSWORD)
    assert view.roles == ("administrator",)
    with pytest.raises(ConflictError, match="exists already"):
        users.bootstrap_administrator(app, ctx, "root2", PASSWORD)
    entries = [e for e in app.audit.entries(0, action="user.bootstrap")]
    assert [(e.target_id, e.outcome) for e in entries] == [("root", "ok"), ("root2", "refused")]
    assert entries[0].user.startswith("system:") and entries[0].function == "test.bootstrap"
    with app.catalog.session() as s:
        assert s.scalars(select(User).where(User.username == "root2")).one_or_none() is None
    # the first DPO, so that a role change can ever be approved; only once
    users.bootstrap_user(app, ctx, "dora", PASSWORD, "dpo")
    with pytest.raises(ConflictError):
        users.bootstrap_user(app, ctx, "dora2", PASSWORD, "dpo")
    with pytest.raises(InputError):
        users.bootstrap_user(app, ctx, "sup", PASSWORD, "supervisor")


def test_bootstrap_closes_for_good_once_an_administrator_and_an_approver_exist(app):
    """Issue 11 item 3: bootstrap worked for any role nobody held *now* (e.g. after the only
    compliance officer left). Once an administrator and an approver existed, it is closed for good."""
    from cfcore.db.models_access import UserRole

    ctx = system_cli_context("test.bootstrap")
    users.bootstrap_administrator(app, ctx, "root", PASSWORD)
    users.bootstrap_user(app, ctx, "dora", PASSWORD, "dpo")
    with app.catalog.session() as s:
        assert users.bootstrap_closed(s)
    with pytest.raises(ConflictError, match="closed for good"):
        users.bootstrap_user(app, ctx, "carl", PASSWORD, "compliance")  # nobody holds compliance
    with app.catalog.session() as s:  # every role holder leaves; bootstrap stays closed
        for r in s.scalars(select(UserRole)).all():
            s.delete(r)
    for role in ("administrator", "dpo", "compliance"):
        with pytest.raises(ConflictError, match="closed for good"):
            users.bootstrap_user(app, ctx, f"x-{role}", PASSWORD, role)
    assert last_audit(app, action="user.bootstrap").detail["reason"] == "bootstrap is closed"


def test_bootstrap_closes_on_an_older_deployment_that_is_already_set_up(app):
    make_user(app, "root", ["administrator"])
    make_user(app, "dora", ["dpo"])  # set up before the flag existed
    ctx = system_cli_context("test.bootstrap")
    with pytest.raises(ConflictError):
        users.bootstrap_user(app, ctx, "carl", PASSWORD, "compliance")
    with app.catalog.session() as s:
        assert users.bootstrap_closed(s)


def test_role_change_is_four_eyes(app):
    make_user(app, "root", ["administrator"])
    make_user(app, "dora", ["dpo"])
    root, dora = ctx_for(app, "root"), ctx_for(app, "dora")
    users.add_user(app, root, "carl", password=PASSWORD)
    assert users.get_user(app, "carl").roles == ()
    approval_id = users.request_role_change(app, root, "carl", add=["compliance"], advisor_id="A9",
                                            reason="new compliance officer")
    with pytest.raises(AccessDenied, match="own request"):
        approvals.approve(app, root, approval_id)
    with pytest.raises(ConflictError, match="requested, not approved"):
        approvals.execute(app, root, approval_id)
    approvals.approve(app, dora, approval_id)
    result = approvals.execute(app, root, approval_id)
    assert result["roles"] == ["compliance"] and users.get_user(app, "carl").advisor_id == "A9"
    change = last_audit(app, action="roles.change")
    assert change.detail["before"] == [] and change.detail["after"] == ["compliance"] and change.user == "root"
    # a direct call without an approval needs four-eyes
    from cfcore.access.users import _execute_role_change

    with pytest.raises(ApprovalRequired):
        _execute_role_change(app, root, "carl", {"add": "dpo"})


def test_nobody_approves_a_change_of_their_own_roles(app):
    make_user(app, "root", ["administrator"])
    make_user(app, "dora", ["dpo"])
    approval_id = users.request_role_change(app, ctx_for(app, "root"), "dora", add=["compliance"], reason="more")
    with pytest.raises(AccessDenied, match="own roles"):
        approvals.approve(app, ctx_for(app, "dora"), approval_id)


def test_only_administrators_request_role_changes(app):
    make_user(app, "dora", ["dpo"])
    make_user(app, "carl", [])
    with pytest.raises(AccessDenied):
        users.request_role_change(app, ctx_for(app, "dora"), "carl", add=["dpo"], reason="self-made")
    with pytest.raises(InputError, match="unknown role"):
        users.request_role_change(app, ctx_for(app, "dora"), "carl", add=["king"], reason="x y z")


# --------------------------------------------------------------------------- the CLI as a process


def test_cli_bootstrap_login_and_no_lockout(run_cf, deployment, make_app):
    deployment.write_text(deployment.read_text() + LOCKOUT)
    r = run_cf("users", "add", "root", "--role", "administrator", "--bootstrap", "--password-stdin",
               input=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    again = run_cf("users", "add", "root2", "--role", "administrator", "--bootstrap", "--password-stdin",
                   input=PASSWORD + "\n")
    assert again.returncode == 9 and "exists already" in again.stderr
    nobody = run_cf("users", "list")
    assert nobody.returncode == 5 and "not logged in" in nobody.stderr
    ok = run_cf("users", "list", "--json", env=login_env("root"), check=True)
    assert [u["username"] for u in json.loads(ok.stdout)] == ["root"]
    via_option = run_cf("--user", "root", "users", "show", "--json", env={"CF_PASSWORD": PASSWORD}, check=True)
    assert json.loads(via_option.stdout)["roles"] == ["administrator"]
    app = make_app(deployment)
    host, ip = cli_host_ip()
    listed = last_audit(app, action="user.list")
    assert (listed.user, listed.host, listed.ip, listed.function) == ("root", host, ip, "cli.users.list")
    for _ in range(3):
        bad = run_cf("users", "list", env=login_env("root", "wrong wrong wrong"))
        assert bad.returncode == 5 and bad.stderr.startswith("cf: error: login failed")
        assert "Traceback" not in bad.stderr
    failed = last_audit(app, action="auth.login", user="root")
    assert (failed.outcome, failed.host, failed.ip, failed.function) == ("failed", host, ip, "cli.users.list")
    still = run_cf("users", "list", env=login_env("root"))  # wrong guesses lock nobody out
    assert still.returncode == 0, still.stderr
    assert not [e for e in app.audit.entries(0, action="auth.lockout")]


def test_cli_token_login(run_cf, app):
    make_user(app, "alice", ["supervisor"])
    token = users.create_token(app, ctx_for(app, "alice"), name="cli", origin_token=None).token
    r = run_cf("users", "show", "--json", env={"CF_TOKEN": token}, check=True)
    assert json.loads(r.stdout)["username"] == "alice"
    wrong_user = run_cf("users", "show", env={"CF_TOKEN": token, "CF_USER": "bob"})
    assert wrong_user.returncode == 5
    bad = run_cf("users", "show", env={"CF_TOKEN": "cft_forged"})
    assert bad.returncode == 5 and last_audit(app, action="auth.login").detail["reason"] == "unknown token"


def test_cli_users_add_requests_roles(run_cf, app):
    make_user(app, "root", ["administrator"])
    make_user(app, "dora", ["dpo"])
    r = run_cf("users", "add", "anna", "--role", "advisor", "--advisor-id", "A7", "--password-stdin", "--json",
               env=login_env("root"), input="anna's long passphrase\n", check=True)
    approval_id = json.loads(r.stdout)["approval_id"]
    assert users.get_user(app, "anna").roles == ()
    run_cf("approve", approval_id, env=login_env("dora"), check=True)
    run_cf("execute", approval_id, env=login_env("root"), check=True)
    view = users.get_user(app, "anna")
    assert view.roles == ("advisor",) and view.advisor_id == "A7"
    assert users.authenticate_password(app, "anna", "anna's long passphrase", host="h", ip="127.0.0.1",
                                       function="t").advisor_id == "A7"


def test_revoking_an_unknown_token_tells_nothing_to_who_may_not_manage_users(app):
    """No probing of token ids: an advisor revoking a colleague's token and an unknown one gets the
    same refusal (audited); an administrator learns that the unknown one does not exist."""
    make_user(app, "alice", ["advisor"])
    make_user(app, "bob", ["advisor"])
    make_user(app, "root", ["administrator"])
    theirs = users.create_token(app, ctx_for(app, "alice"), name="crm", days=2, origin_token=None)
    with pytest.raises(AccessDenied) as colleague:
        users.revoke_token(app, ctx_for(app, "bob"), theirs.id)
    with pytest.raises(AccessDenied) as unknown:
        users.revoke_token(app, ctx_for(app, "bob"), "t" * 32)
    assert type(colleague.value) is type(unknown.value)
    assert last_audit(app, action="users.manage", user="bob").outcome == "denied"
    with pytest.raises(NotFound):
        users.revoke_token(app, ctx_for(app, "root"), "t" * 32)
