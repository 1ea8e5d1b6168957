"""The authorisation matrix through the real API server: every endpoint against every role.

Expected outcomes come from the policy's MATRIX / APPROVERS (the same tables docs/access.md
shows); the assertions are on the HTTP status, the body and the audit entry each call leaves.
"""

from __future__ import annotations

import pytest
from access_helpers import (
    ADVISOR,
    ADVISOR2,
    ROLES,
    ctx_for,
    expected,
    last_audit,
    login,
    make_user,
    role_user,
    world_for,
)

from cfcore.access import approvals
from cfcore.defaults.access_policy import APPROVERS, MATRIX
from hookspecs.types import Decision

FOUR_EYES_ACTIONS = sorted(a for a, row in MATRIX.items() if "four-eyes" in row.values())


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with world_for(tmp_path_factory.mktemp("apimatrix")) as w:
        make_user(w.app, "t-user", [])
        for role in ROLES:  # a second user per role files the requests others approve
            make_user(w.app, f"req-{role}", [role], advisor_id=ADVISOR if role == "advisor" else None)
        yield w


def check(r, decision: Decision, ok_status: int = 200):
    if decision is Decision.ALLOW:
        assert r.status_code == ok_status, r.text
    elif decision is Decision.NEEDS_APPROVAL:
        assert r.status_code == 403 and "four-eyes" in r.json()["error"], r.text
    else:
        assert r.status_code == 403 and "may not" in r.json()["error"], r.text


def audited(world, role, function, outcome=None, action=None):
    e = last_audit(world.app, user=role_user(role), **({"action": action} if action else {}),
                   **({"outcome": outcome} if outcome else {}))
    assert (e.host, e.ip, e.function) == (f"pc-{role_user(role)}", "127.0.0.1", function), e
    return e


@pytest.mark.parametrize("role", ROLES)
def test_recordings_list_and_search(world, role):
    decision = expected(role, "recording.list", owner=ADVISOR)
    with world.http(role_user(role)) as c:
        r = c.get("/api/recordings")
        s = c.post("/api/recordings/search", json={"numbers": ["030 1234567"]})
    if decision is Decision.DENY:
        check(r, decision)
        check(s, decision)
        audited(world, role, "api.recordings.search", "denied", "recording.list")  # the later of the two
        return
    ids = {x["id"] for x in r.json()["recordings"]}
    found = {x["id"] for x in s.json()["recordings"]}
    if MATRIX["recording.list"][role] == "own":
        assert r.json()["scope"] == "own" and ids == {world.rec_own}
    else:
        assert r.json()["scope"] == "all" and ids == {world.rec_own, world.rec_other}
    assert found == {world.rec_own}  # the number was given differently, the pseudonym matches
    e = audited(world, role, "api.recordings.search", "ok", "recording.search")
    assert e.detail["customer_pseudonyms"] and "1234567" not in str(dict(e.detail))


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("which", ["own", "other"])
def test_recording_details(world, role, which):
    rec, owner = (world.rec_own, ADVISOR) if which == "own" else (world.rec_other, ADVISOR2)
    decision = expected(role, "recording.show", owner)
    with world.http(role_user(role)) as c:
        r = c.get(f"/api/recordings/{rec}")
    check(r, decision)
    e = audited(world, role, "api.recordings.show", action="recording.show")
    assert e.target_id == rec and e.outcome == ("ok" if decision is Decision.ALLOW else "denied")
    if decision is Decision.ALLOW:
        assert r.json()["advisor_id"] == owner and len(r.json()["row_digest"]) == 64


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("which", ["own", "other"])
def test_streaming_link(world, role, which):
    rec, owner = (world.rec_own, ADVISOR) if which == "own" else (world.rec_other, ADVISOR2)
    decision = expected(role, "recording.play", owner)
    with world.http(role_user(role)) as c:
        r = c.post(f"/api/recordings/{rec}/link")
        check(r, decision, 201)
        if decision is Decision.ALLOW:
            assert c.get(r.json()["url"], headers={"Range": "bytes=0-3"}).content == b"RIFF"
            audited(world, role, "api.stream", "ok", "recording.play")
        else:
            outcome = "denied" if decision is Decision.DENY else "needs-approval"
            audited(world, role, "api.recordings.link", outcome, "recording.play")


@pytest.mark.parametrize("role", ROLES)
def test_audit_endpoints(world, role):
    decision = expected(role, "audit.read")
    with world.http(role_user(role)) as c:
        r = c.get("/api/audit", params={"limit": 5, "action": "auth.login"})
        v = c.get("/api/audit/verify")
    check(r, decision)
    check(v, decision)
    if decision is Decision.ALLOW:
        assert len(r.json()) == 5 and all(e["action"] == "auth.login" for e in r.json())
        assert v.json()["ok"] is True
        audited(world, role, "api.audit.verify", "ok", "audit.verify")
    else:
        audited(world, role, "api.audit.verify", "denied", "audit.read")


@pytest.mark.parametrize("role", ROLES)
def test_user_management_endpoints(world, role):
    decision = expected(role, "users.manage")
    with world.http(role_user(role)) as c:
        listing = c.get("/api/users")
        added = c.post("/api/users", json={"username": f"new-{role}", "password": "a long new password"})
        unlock = c.post(f"/api/users/{role_user('advisor')}/unlock")
        disable = c.post("/api/users/t-user/disable")
        enable = c.post("/api/users/t-user/enable")
        roles = c.post("/api/users/t-user/roles", json={"add": ["qa_reviewer"], "reason": "joins QA"})
    for r, status in ((listing, 200), (added, 201), (unlock, 200), (disable, 200), (enable, 200)):
        check(r, decision, status)
    if decision is Decision.ALLOW:
        assert "t-user" in {u["username"] for u in listing.json()}
        assert enable.json()["disabled"] is False
    role_change = expected(role, "roles.change")
    if role_change is Decision.NEEDS_APPROVAL:  # roles are never granted directly
        assert roles.status_code == 202 and len(roles.json()["approval_id"]) == 32
        audited(world, role, "api.users.roles", "requested", "approval.request")
    else:
        check(roles, role_change)
        audited(world, role, "api.users.roles", "denied", "approval.request")


@pytest.mark.parametrize("role", ROLES)
def test_self_service_endpoints_for_every_role(world, role):
    with world.http(role_user(role)) as c:
        me = c.get("/api/auth/me")
        assert me.status_code == 200 and me.json()["roles"] == [role]
        assert me.json()["host"] == f"pc-{role_user(role)}" and me.json()["ip"] == "127.0.0.1"
        tok = c.post("/api/auth/tokens", json={"name": "crm", "days": 7})
        assert tok.status_code == 201 and tok.json()["token"].startswith("cft_")
        listed = c.get("/api/auth/tokens")
        assert tok.json()["id"] in {t["id"] for t in listed.json()}
        assert c.delete(f"/api/auth/tokens/{tok.json()['id']}").status_code == 200
        assert c.get("/api/approvals").status_code == 200
    audited(world, role, "api.auth.tokens.revoke", "ok", "token.revoke")


def _target(action, world):
    kind = {"recording": world.rec_other, "retention": world.rec_other, "hold": world.rec_other,
            "transcript": world.rec_other}
    prefix = action.split(".")[0]
    if prefix in kind:
        return kind[prefix]
    return {"roles": "t-user", "dsar": "subject-4711"}.get(prefix)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", FOUR_EYES_ACTIONS)
def test_four_eyes_requests(world, role, action):
    decision = expected(role, action, owner=ADVISOR2)
    with world.http(role_user(role)) as c:
        r = c.post("/api/approvals", json={"action": action, "target": _target(action, world),
                                           "reason": "matrix test", "params": {"until": "2040-01-01"}})
    if decision is Decision.NEEDS_APPROVAL:
        assert r.status_code == 201, r.text
        assert r.json()["state"] == "requested" and r.json()["requester"] == role_user(role)
        audited(world, role, "api.approvals.request", "requested", "approval.request")
    elif decision is Decision.DENY:
        assert r.status_code == 403, r.text
        audited(world, role, "api.approvals.request", "denied", "approval.request")
    else:
        assert r.status_code == 400 and "needs no approval" in r.json()["error"]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", FOUR_EYES_ACTIONS)
def test_four_eyes_approvals(world, role, action):
    requester = f"req-{next(r for r in ROLES if MATRIX[action][r] == 'four-eyes')}"
    if requester not in world.tokens:
        world.tokens[requester] = login(world.server, requester)
    with world.http(requester) as c:
        r = c.post("/api/approvals", json={"action": action, "target": _target(action, world),
                                           "reason": "approval matrix", "params": {"until": "2040-01-01"}})
        assert r.status_code == 201, r.text
        aid = r.json()["id"]
    with world.http(role_user(role)) as c:
        a = c.post(f"/api/approvals/{aid}/approve")
    if role in APPROVERS[action]:
        assert a.status_code == 200 and a.json()["state"] == "approved" and a.json()["approver"] == role_user(role)
        audited(world, role, "api.approvals.approve", "approved", "approval.approve")
    else:
        assert a.status_code == 403 and "no approving role" in a.json()["error"]
        audited(world, role, "api.approvals.approve", "denied", "approval.approve")


def test_not_logged_in_is_401_everywhere(world):
    import httpx

    paths = [("GET", "/api/recordings"), ("POST", "/api/recordings/search"), ("GET", f"/api/recordings/{world.rec_own}"),
             ("POST", f"/api/recordings/{world.rec_own}/link"), ("GET", "/api/audit"), ("GET", "/api/users"),
             ("GET", "/api/approvals"), ("POST", "/api/approvals"), ("GET", "/api/auth/me")]
    with httpx.Client(base_url=world.server.base, timeout=30) as c:
        for method, path in paths:
            r = c.request(method, path, json={} if method == "POST" else None)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", (path, r.text)
            bad = c.request(method, path, headers={"Authorization": "Bearer cft_nope"})
            assert bad.status_code == 401, path


def test_login_logout_and_session_cookie(world):
    import httpx
    from access_helpers import PASSWORD

    with httpx.Client(base_url=world.server.base, timeout=30, headers={"X-Client-Host": "ws-1"}) as c:
        wrong = c.post("/api/auth/login", json={"username": "u-dpo", "password": "nope nope nope"})
        assert wrong.status_code == 401 and wrong.json()["error"].startswith("login failed")
        e = last_audit(world.app, action="auth.login", user="u-dpo", outcome="failed")
        assert (e.host, e.ip, e.function) == ("ws-1", "127.0.0.1", "api.auth.login")
        ok = c.post("/api/auth/login", json={"username": "u-dpo", "password": PASSWORD})
        assert ok.status_code == 200 and "httponly" in ok.headers["set-cookie"].lower()
        assert "samesite=strict" in ok.headers["set-cookie"].lower()
        assert c.get("/api/auth/me").json()["username"] == "u-dpo"  # by the cookie
        assert c.post("/api/auth/logout").json() == {"ended": True}
        c.cookies.set("cf_session", ok.json()["token"])
        assert c.get("/api/auth/me").status_code == 401


def test_errors_are_json_with_status(world):
    with world.http("u-dpo") as c:
        missing = c.get(f"/api/recordings/{'0' * 32}")
        assert missing.status_code == 404 and "no recording" in missing.json()["error"]
        invalid = c.get("/api/recordings", params={"limit": 0})
        assert invalid.status_code == 422 and invalid.json()["error"].startswith("invalid request")
        nothere = c.get("/api/nothing")
        assert nothere.status_code == 404 and "error" in nothere.json()
        nosuch = c.post(f"/api/approvals/{'e' * 32}/approve")
        assert nosuch.status_code == 404


def test_openapi_is_published(world):
    with world.http("u-dpo") as c:
        spec = c.get("/api/openapi.json").json()
    paths = set(spec["paths"])
    for p in ("/api/auth/login", "/api/auth/tokens", "/api/recordings", "/api/recordings/search",
              "/api/recordings/{rec_id}",
              "/api/recordings/{rec_id}/link", "/api/stream/{rec_id}", "/api/approvals",
              "/api/approvals/{approval_id}/approve", "/api/approvals/{approval_id}/execute", "/api/audit",
              "/api/users"):
        assert p in paths, p
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


@pytest.mark.parametrize("role", ROLES)
def test_show_reject_execute_endpoints(world, role):
    requester = "req-supervisor"
    if requester not in world.tokens:
        world.tokens[requester] = login(world.server, requester)
    with world.http(requester) as c:
        ids = [c.post("/api/approvals", json={"action": "recording.play", "target": world.rec_other,
                                              "reason": f"coaching {i}"}).json()["id"] for i in range(2)]
    approver = role in APPROVERS["recording.play"]
    reader = expected(role, "approval.read") is Decision.ALLOW
    with world.http(role_user(role)) as c:
        shown = c.get(f"/api/approvals/{ids[0]}")
        assert shown.status_code == (200 if approver or reader else 404), shown.text
        listed = {a["id"] for a in c.get("/api/approvals").json()}
        assert (ids[0] in listed) == (approver or reader)
        rejected = c.post(f"/api/approvals/{ids[0]}/reject", json={"note": "no"})
        assert rejected.status_code == (200 if approver else 403), rejected.text
        if approver:
            assert c.post(f"/api/approvals/{ids[1]}/approve").status_code == 200
        executed = c.post(f"/api/approvals/{ids[1]}/execute")
        assert executed.status_code == (403 if approver or reader else 404), executed.text
    if approver:
        with world.http(requester) as c:
            run = c.post(f"/api/approvals/{ids[1]}/execute")
            assert run.status_code == 200 and run.json()["result"]["purpose"] == "play"


def test_api_does_not_run_executors_that_write_server_files(world):
    with world.http("u-administrator") as c:
        aid = c.post("/api/approvals", json={"action": "keys.rotate", "target": None, "reason": "rotation",
                                             "params": {"out": "/tmp/x"}}).json()["id"]
    with world.http("u-dpo") as c:
        assert c.post(f"/api/approvals/{aid}/approve").status_code == 200
    with world.http("u-administrator") as c:
        r = c.post(f"/api/approvals/{aid}/execute")
    assert r.status_code == 400 and "run it on your PC" in r.json()["error"]
    assert approvals.get_request(world.app, ctx_for(world.app, "u-dpo"), aid).state == "approved"


UNKNOWN = "0123456789abcdef0123456789abcdef"
BY_ID = [("get", "/api/recordings/{}", None), ("post", "/api/recordings/{}/link", None),
         ("get", "/api/retention/recordings/{}", None), ("post", "/api/retention/holds/{}", {"reason": "probe"}),
         ("post", "/api/retention/holds/{}/release", {"reason": "probe"}),
         ("post", "/api/retention/recordings/{}/extend", {"reason": "probe", "years": 7}),
         ("post", "/api/retention/recordings/{}/erase", {"reason": "probe"})]


@pytest.mark.parametrize("role", ROLES)
def test_an_unknown_recording_id_answers_like_a_colleagues(world, role):
    """No id probing over HTTP: where a role is refused a colleague's recording, an id that does
    not exist gets the same status and the same words; a 404 only for who may act on it."""
    with world.http(role_user(role)) as c:
        for method, path, body in BY_ID:
            kw = {"json": body} if body is not None else {}
            theirs = getattr(c, method)(path.format(world.rec_other), **kw)
            unknown = getattr(c, method)(path.format(UNKNOWN), **kw)
            if theirs.status_code == 403:
                assert unknown.status_code == 403, (path, unknown.text)
                assert unknown.json()["error"].replace(UNKNOWN, "ID") == theirs.json()["error"].replace(
                    world.rec_other, "ID"), path
            else:
                assert unknown.status_code == 404, (path, theirs.status_code, unknown.text)
