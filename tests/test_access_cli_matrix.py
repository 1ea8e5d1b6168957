"""The authorisation matrix on the command line: every access-relevant ``cf`` command against every
role, logged in with CF_USER/CF_PASSWORD. Expected outcomes come from MATRIX / APPROVERS; the
assertions are on the exit code, the output and the audit entry (user, PC host, IP, function).

The commands run in-process through click's runner (the same code path as ``cf``, without a
Python start-up per call); test_access_users.py runs ``cf`` as a separate process.
"""

from __future__ import annotations

import json

import pytest
from access_helpers import (
    ADVISOR,
    ADVISOR2,
    ROLES,
    cli_host_ip,
    ctx_for,
    expected,
    last_audit,
    make_user,
    role_user,
    world_for,
)

from cfcore.access import approvals
from cfcore.defaults.access_policy import APPROVERS, MATRIX
from hookspecs.types import Decision

EXIT = {Decision.ALLOW: 0, Decision.NEEDS_APPROVAL: 6, Decision.DENY: 5}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with world_for(tmp_path_factory.mktemp("climatrix")) as w:
        make_user(w.app, "t-user", [])
        for role in ("compliance", "supervisor"):
            make_user(w.app, f"req-{role}", [role])
        yield w


def run(world, role, *args, input=None):
    return world.cli(role_user(role), *args, input=input)


def assert_exit(result, code, args):
    assert result.exit_code == code, (args, result.exit_code, result.output)
    if code:
        assert result.output.startswith("cf: error: ") and "Traceback" not in result.output


def audited(world, role, function, **filters):
    host, ip = cli_host_ip()
    e = last_audit(world.app, user=role_user(role), **filters)
    assert (e.host, e.ip, e.function) == (host, ip, function), e
    return e


@pytest.mark.parametrize("role", ROLES)
def test_recording_commands(world, role):
    r = run(world, role, "recordings", "list", "--json")
    decision = expected(role, "recording.list", ADVISOR)
    assert_exit(r, EXIT[decision], "recordings list")
    if decision is Decision.ALLOW:
        ids = {x["id"] for x in json.loads(r.stdout)}
        assert ids == ({world.rec_own} if MATRIX["recording.list"][role] == "own"
                       else {world.rec_own, world.rec_other})
        audited(world, role, "cli.recordings.list", action="recording.list", outcome="ok")
    else:
        audited(world, role, "cli.recordings.list", action="recording.list", outcome="denied")
    for rec, owner in ((world.rec_own, ADVISOR), (world.rec_other, ADVISOR2)):
        r = run(world, role, "recordings", "show", rec, "--json")
        decision = expected(role, "recording.show", owner)
        assert_exit(r, EXIT[decision], f"recordings show {rec}")
        e = audited(world, role, "cli.recordings.show", action="recording.show", target_id=rec)
        assert e.outcome == ("ok" if decision is Decision.ALLOW else "denied")
    out = world.tmp / f"export-{role}.wav"
    r = run(world, role, "export", world.rec_other, "--out", str(out))
    decision = expected(role, "recording.export", ADVISOR2)
    assert_exit(r, EXIT[decision], "export")
    assert not out.exists()  # nobody exports without four-eyes
    e = audited(world, role, "cli.export", action="recording.export", target_id=world.rec_other)
    assert e.outcome == {Decision.NEEDS_APPROVAL: "needs-approval", Decision.DENY: "denied"}[decision]


@pytest.mark.parametrize("role", ROLES)
def test_audit_commands(world, role):
    decision = expected(role, "audit.read")
    r = run(world, role, "audit", "list", "--json", "--limit", "3")
    assert_exit(r, EXIT[decision], "audit list")
    v = run(world, role, "audit", "verify")
    assert_exit(v, EXIT[decision], "audit verify")
    if decision is Decision.ALLOW:
        assert len(json.loads(r.stdout)) == 3 and "intact" in v.stdout
        audited(world, role, "cli.audit.verify", action="audit.verify", outcome="ok")
    else:
        audited(world, role, "cli.audit.verify", action="audit.read", outcome="denied")


@pytest.mark.parametrize("role", ROLES)
def test_retention_run(world, role):
    decision = expected(role, "retention.run")
    r = run(world, role, "retention", "run", "--dry-run", "--json")
    assert_exit(r, EXIT[decision], "retention run")
    if decision is Decision.DENY:
        audited(world, role, "cli:retention.run", action="retention.run", outcome="denied")


@pytest.mark.parametrize("role", ROLES)
def test_user_commands(world, role):
    manage = expected(role, "users.manage")
    r = run(world, role, "users", "list", "--json")
    assert_exit(r, EXIT[manage], "users list")
    if manage is Decision.ALLOW:
        assert role_user("dpo") in {u["username"] for u in json.loads(r.stdout)}
    added = run(world, role, "users", "add", f"cli-{role}", "--password-stdin", input="a long new password\n")
    assert_exit(added, EXIT[manage], "users add")
    for cmd in ("unlock", "disable", "enable"):
        assert_exit(run(world, role, "users", cmd, "t-user"), EXIT[manage], f"users {cmd}")
    audited(world, role, "cli.users.enable")
    change = run(world, role, "users", "roles", "t-user", "--add", "qa_reviewer", "--reason", "joins QA", "--json")
    role_change = expected(role, "roles.change")
    if role_change is Decision.NEEDS_APPROVAL:  # files the four-eyes request
        assert_exit(change, 0, "users roles")
        assert json.loads(change.stdout)["state"] == "requested"
        audited(world, role, "cli.users.roles", action="approval.request", outcome="requested")
    else:
        assert_exit(change, EXIT[role_change], "users roles")
        audited(world, role, "cli.users.roles", action="approval.request", outcome="denied")
    # self-service works for everyone
    me = run(world, role, "users", "show", "--json")
    assert_exit(me, 0, "users show")
    assert json.loads(me.stdout)["roles"] == [role]
    tok = run(world, role, "users", "token", "--json")
    assert_exit(tok, 0, "users token")
    assert json.loads(tok.stdout)["token"].startswith("cft_")
    assert_exit(run(world, role, "users", "password", "--password-stdin", input="correct horse battery staple\n"),
                0, "users password")


@pytest.mark.parametrize("role", ROLES)
def test_four_eyes_commands(world, role):
    # cf request: as the matrix says for another advisor's recording
    for action in ("recording.play", "recording.export", "retention.shorten", "hold.release"):
        r = run(world, role, "request", action, world.rec_other, "--reason", "cli matrix", "--param",
                "until=2040-01-01", "--json")
        decision = expected(role, action, ADVISOR2)
        code = {Decision.NEEDS_APPROVAL: 0, Decision.DENY: 5, Decision.ALLOW: 2}[decision]
        assert_exit(r, code, f"request {action}")
        if code == 0:
            assert json.loads(r.stdout)["state"] == "requested"
            audited(world, role, "cli.request", action="approval.request", outcome="requested")
    for action in ("audit.export", "keys.rotate"):
        r = run(world, role, "request", action, "-", "--reason", "cli matrix")
        assert_exit(r, {Decision.NEEDS_APPROVAL: 0, Decision.DENY: 5}[expected(role, action)], f"request {action}")
    assert_exit(run(world, role, "requests", "list", "--json"), 0, "requests list")
    # cf approve / cf reject a request someone else filed
    for action, requester in (("recording.export", "req-compliance"), ("recording.play", "req-supervisor")):
        aid = approvals.request(world.app, ctx_for(world.app, requester), action, world.rec_other, "cli approve matrix")
        r = run(world, role, "approve", aid, "--json")
        assert_exit(r, 0 if role in APPROVERS[action] else 5, f"approve {action}")
        e = audited(world, role, "cli.approve", action="approval.approve", target_id=aid)
        assert e.outcome == ("approved" if role in APPROVERS[action] else "denied")
        bid = approvals.request(world.app, ctx_for(world.app, requester), action, world.rec_other, "cli reject matrix")
        assert_exit(run(world, role, "reject", bid), 0 if role in APPROVERS[action] else 5, f"reject {action}")
        # cf execute: only the requester
        if role in APPROVERS[action]:
            assert_exit(run(world, role, "execute", aid), 5, "execute someone else's")
            assert last_audit(world.app, action="approval.execute", target_id=aid).outcome == "denied"


def test_request_approve_execute_on_the_command_line(world):
    r = world.cli("req-supervisor", "request", "recording.play", world.rec_own, "--reason", "coaching", "--json")
    assert r.exit_code == 0, r.output
    aid = json.loads(r.stdout)["id"]
    assert world.cli("req-supervisor", "approve", aid).exit_code == 5  # own request
    ok = world.cli(role_user("dpo"), "approvals", "approve", aid)
    assert ok.exit_code == 0 and "approved" in ok.stdout
    again = world.cli(role_user("dpo"), "approve", aid)
    assert again.exit_code == 0 and "counted once" in again.stdout
    run_ = world.cli("req-supervisor", "execute", aid)
    assert run_.exit_code == 0 and f"/api/stream/{world.rec_own}?t=v1." in run_.stdout
    assert world.cli("req-supervisor", "execute", aid).exit_code == 9
    shown = json.loads(world.cli("req-supervisor", "requests", "show", aid, "--json").stdout)
    assert (shown["state"], shown["requester"], shown["approver"], shown["votes"]) == (
        "executed", "req-supervisor", role_user("dpo"), [role_user("dpo")])


def test_audit_export_on_the_command_line(world):
    r = world.cli(role_user("auditor"), "request", "audit.export", "-", "--reason", "annual audit", "--json")
    aid = json.loads(r.stdout)["id"]
    assert world.cli(role_user("dpo"), "approve", aid).exit_code == 0
    out = world.tmp / "audit-export.json"
    done = world.cli(role_user("auditor"), "execute", aid, "--out", str(out))
    assert done.exit_code == 0, done.output
    data = json.loads(out.read_text())
    assert data["count"] == len(data["entries"]) > 10
    assert {"user", "host", "ip", "function"} <= set(data["entries"][0])
    e = last_audit(world.app, action="audit.export")
    assert e.user == role_user("auditor") and e.outcome == "ok"


def test_exit_codes_for_login_problems(world):
    r = world.cli(None, "recordings", "list")
    assert r.exit_code == 5 and "not logged in" in r.output
    bad = world.cli(role_user("dpo"), "recordings", "list", env={"CF_PASSWORD": "wrong wrong wrong"})
    assert bad.exit_code == 5 and "login failed" in bad.output
    host, ip = cli_host_ip()
    e = last_audit(world.app, action="auth.login", user=role_user("dpo"))
    assert (e.outcome, e.host, e.ip, e.function) == ("failed", host, ip, "cli.recordings.list")


UNKNOWN = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("role", ROLES)
def test_an_unknown_id_answers_like_a_colleagues_recording(world, role):
    """No id probing: whoever may not see a colleague's recording gets the same audited refusal for
    an id that does not exist (earlier: "no recording …", exit 4, before any access decision);
    whoever may see every recording learns that it does not exist."""
    for args in (("recordings", "show", UNKNOWN, "--json"), ("export", UNKNOWN, "--out", str(world.tmp / "x.wav")),
                 ("recordings", "show", UNKNOWN, "--consent-proof")):
        action = "recording.export" if args[0] == "export" else "recording.show"
        colleague = run(world, role, *(world.rec_other if a == UNKNOWN else a for a in args))
        unknown = run(world, role, *args)
        decision = expected(role, action, ADVISOR2)
        if decision is Decision.ALLOW:
            assert_exit(unknown, 4, args)
            assert "no recording" in unknown.output
        else:
            assert_exit(unknown, colleague.exit_code, args)
            assert unknown.output.replace(UNKNOWN, "ID") == colleague.output.replace(world.rec_other, "ID")
            e = audited(world, role, "cli.recordings.show" if action == "recording.show" else "cli.export",
                        action=action, target_id=UNKNOWN)
            assert e.outcome in ("denied", "needs-approval")
