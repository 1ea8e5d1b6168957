"""Four-eyes: request, approve, reject, expire, execute; self-approval, double approval, plugins."""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest
from access_helpers import ctx_for, ingest, last_audit, make_user

from cfcore.access import approvals
from cfcore.access.guard import authorize
from cfcore.errors import AccessDenied, ApprovalRequired, ConflictError, InputError, NotFound
from hookspecs import hookimpl
from hookspecs.types import AccessDecision, AccessTarget, ApprovalAction, Decision


@pytest.fixture
def world(app, tmp_path):
    """Users of every approving role plus a supervisor and an advisor; two recordings."""
    make_user(app, "sam", ["supervisor"])
    make_user(app, "cora", ["compliance"])
    make_user(app, "cole", ["compliance"])
    make_user(app, "dora", ["dpo"])
    make_user(app, "adam", ["advisor"], advisor_id="A1")
    make_user(app, "quinn", ["qa_reviewer"])
    rec_a1 = ingest(app, tmp_path, "A1")
    rec_a2 = ingest(app, tmp_path, "A2")
    return app, rec_a1, rec_a2


def c(app, name, host=None):
    return ctx_for(app, name, host=host or f"pc-{name}", ip="10.9.8.7", function=f"test.{name}")


def _target(rec_id, owner):
    return AccessTarget(kind="recording", id=rec_id, owner_advisor_id=owner)


def test_every_state_is_audited_with_user_host_ip_function(world, tmp_path):
    app, _, rec = world
    sam = c(app, "sam")
    aid = approvals.request(app, sam, "recording.play", rec, "customer complaint 4711")
    approvals.approve(app, c(app, "cora"), aid)
    result = approvals.execute(app, sam, aid)
    assert result["url"].startswith(f"/api/stream/{rec}?t=") and "token" in result
    rid = approvals.request(app, sam, "recording.play", rec, "second look")
    approvals.reject(app, c(app, "dora"), rid, "not needed")
    eid = approvals.request(app, sam, "recording.play", rec, "third look")
    app.clock.advance(timedelta(hours=25))
    assert approvals.expire(app) == 1
    seen = {}
    for e in app.audit.entries(0):
        if e.action.startswith("approval."):
            seen[(e.target_id, e.action, e.outcome)] = e
    expect = [
        (aid, "approval.request", "requested", "sam"), (aid, "approval.approve", "approved", "cora"),
        (aid, "approval.execute", "executed", "sam"), (aid, "approval.result", "ok", "sam"),
        (rid, "approval.reject", "rejected", "dora"), (eid, "approval.expire", "expired", "system"),
    ]
    for target, action, outcome, user in expect:
        e = seen[(target, action, outcome)]
        assert e.user == user
        if user != "system":
            assert (e.host, e.ip, e.function) == (f"pc-{user}", "10.9.8.7", f"test.{user}")
        assert e.detail["action"] == "recording.play" and e.detail["target_id"] == rec
    # the access itself runs under the approval and names it
    link = last_audit(app, action="link.create")
    assert link.user == "sam" and link.detail["purpose"] == "play"
    view = approvals.get_request(app, sam, aid)
    assert (view.state, view.requester, view.approver, view.reviewer, view.executed_by) == (
        "executed", "sam", "cora", "cora", "sam")


def test_self_approval_refused(world):
    app, _, rec = world
    cora = c(app, "cora")
    aid = approvals.request(app, cora, "recording.export", rec, "regulator request BaFin-12")
    with pytest.raises(AccessDenied, match="own request"):
        approvals.approve(app, cora, aid)
    e = last_audit(app, action="approval.approve")
    assert (e.user, e.outcome, e.detail["reason"]) == ("cora", "denied", "nobody approves their own request")
    assert approvals.get_request(app, cora, aid).state == "requested"


def test_double_approval_by_the_same_person_counts_once(deployment, make_app, tmp_path):
    deployment.write_text(deployment.read_text() + "\n[access]\napprovals_required = 2\n")
    app = make_app(deployment)
    for name, role in (("sam", "supervisor"), ("cora", "compliance"), ("dora", "dpo")):
        make_user(app, name, [role])
    rec = ingest(app, tmp_path, "A2")
    aid = approvals.request(app, c(app, "sam"), "recording.play", rec, "coaching session")
    first = approvals.approve(app, c(app, "cora"), aid)
    second = approvals.approve(app, c(app, "cora"), aid)
    assert first.counted and not second.counted
    assert second.approval.state == "requested" and second.approval.votes == ("cora",)
    assert last_audit(app, action="approval.approve").outcome == "duplicate"
    with pytest.raises(ConflictError):
        approvals.execute(app, c(app, "sam"), aid)
    third = approvals.approve(app, c(app, "dora"), aid)
    assert third.approval.state == "approved" and third.approval.votes == ("cora", "dora")
    assert third.approval.approver == "dora"


def test_double_approval_after_approved_counts_once(world):
    app, _, rec = world
    aid = approvals.request(app, c(app, "sam"), "recording.play", rec, "coaching")
    approvals.approve(app, c(app, "cora"), aid)
    again = approvals.approve(app, c(app, "cora"), aid)
    assert not again.counted and again.approval.state == "approved" and len(again.approval.votes) == 1
    with pytest.raises(ConflictError, match="approved"):
        approvals.approve(app, c(app, "dora"), aid)


def test_only_approving_roles_approve(world):
    app, _, rec = world
    aid = approvals.request(app, c(app, "cora"), "recording.export", rec, "regulator")
    for name in ("sam", "adam", "quinn"):  # a supervisor approves playback, not export
        with pytest.raises(AccessDenied, match="no approving role"):
            approvals.approve(app, c(app, name), aid)
    assert approvals.approve(app, c(app, "cole"), aid).approval.state == "approved"
    play = approvals.request(app, c(app, "quinn"), "recording.play", rec, "QA sample")
    assert approvals.approve(app, c(app, "sam"), play).approval.state == "approved"


def test_request_needs_a_role_that_may_request(world):
    app, own, other = world
    with pytest.raises(AccessDenied):
        approvals.request(app, c(app, "adam"), "recording.export", other, "curious")  # advisors never export
    assert last_audit(app, action="approval.request").outcome == "denied"
    # another advisor's call: an advisor may ask (issue 18: a colleague's call opened from the CRM)
    asked = approvals.request(app, c(app, "adam"), "recording.play", other, "customer asks about it")
    assert approvals.get_request(app, c(app, "adam"), asked).state == "requested"
    with pytest.raises(InputError, match="needs no approval"):
        approvals.request(app, c(app, "adam"), "recording.play", own, "my own call")
    with pytest.raises(AccessDenied):
        approvals.request(app, c(app, "sam"), "recording.export", other, "copy")
    with pytest.raises(InputError, match="reason"):
        approvals.request(app, c(app, "sam"), "recording.play", other, "")
    with pytest.raises(NotFound):
        approvals.request(app, c(app, "sam"), "recording.play", "0" * 32, "no such call")


def test_expiry_before_approval_and_before_execution(world):
    app, _, rec = world
    sam = c(app, "sam")
    aid = approvals.request(app, sam, "recording.play", rec, "coaching")
    app.clock.advance(timedelta(hours=24))
    with pytest.raises(ConflictError, match="expired"):
        approvals.approve(app, c(app, "cora"), aid)
    assert approvals.get_request(app, sam, aid).state == "expired"
    e = last_audit(app, action="approval.expire")
    assert e.user == "cora" and e.outcome == "expired"  # whoever touched it
    bid = approvals.request(app, sam, "recording.play", rec, "coaching again")
    approvals.approve(app, c(app, "cora"), bid)
    app.clock.advance(timedelta(hours=23, minutes=59))
    approvals.execute(app, sam, bid)  # one minute left: still runs
    cid = approvals.request(app, sam, "recording.play", rec, "once more")
    approvals.approve(app, c(app, "cora"), cid)
    app.clock.advance(timedelta(hours=24))
    with pytest.raises(ConflictError, match="expired"):
        approvals.execute(app, sam, cid)
    assert [a.state for a in approvals.list_requests(app, sam)] == ["expired", "executed", "expired"]


def test_execute_only_by_the_requester_and_only_once(world):
    app, _, rec = world
    sam = c(app, "sam")
    aid = approvals.request(app, sam, "recording.play", rec, "coaching")
    approvals.approve(app, c(app, "dora"), aid)
    with pytest.raises(AccessDenied, match="only the requester"):
        approvals.execute(app, c(app, "dora"), aid)
    approvals.execute(app, sam, aid)
    with pytest.raises(ConflictError, match="executed"):
        approvals.execute(app, sam, aid)


def test_guard_accepts_only_the_matching_approval(world):
    app, own, other = world
    sam, quinn = c(app, "sam"), c(app, "quinn")
    aid = approvals.request(app, sam, "recording.play", other, "coaching")
    target = _target(other, "A2")
    with pytest.raises(ApprovalRequired):
        authorize(app, attrs.evolve(sam, approval_id=aid), "recording.play", target)  # not approved yet
    approvals.approve(app, c(app, "cora"), aid)
    for ctx, action, tgt in (
        (attrs.evolve(quinn, approval_id=aid), "recording.play", target),  # another requester
        (attrs.evolve(sam, approval_id=aid), "recording.play", _target(own, "A1")),  # another recording
        (attrs.evolve(sam, approval_id="f" * 32), "recording.play", target),  # no such approval
    ):
        with pytest.raises(ApprovalRequired):
            authorize(app, ctx, action, tgt)
    assert approvals.get_request(app, sam, aid).state == "approved"
    ok = authorize(app, attrs.evolve(sam, approval_id=aid), "recording.play", target)
    assert ok.decision is Decision.ALLOW and aid in ok.reason
    assert approvals.get_request(app, sam, aid).state == "executed"
    with pytest.raises(ApprovalRequired):  # used up
        authorize(app, attrs.evolve(sam, approval_id=aid), "recording.play", target)


def test_reject_and_withdraw(world):
    app, _, rec = world
    sam = c(app, "sam")
    aid = approvals.request(app, sam, "recording.play", rec, "coaching")
    with pytest.raises(AccessDenied):
        approvals.reject(app, c(app, "adam"), aid)
    approvals.reject(app, sam, aid, "changed my mind")
    view = approvals.get_request(app, sam, aid)
    assert view.state == "rejected" and view.reviewer == "sam"
    assert last_audit(app, action="approval.reject").detail["withdrawn"] is True
    with pytest.raises(ConflictError):
        approvals.approve(app, c(app, "cora"), aid)


def test_listing_shows_own_approvable_and_all_for_readers(world):
    app, _, rec = world
    make_user(app, "aud", ["auditor"])
    play = approvals.request(app, c(app, "sam"), "recording.play", rec, "coaching")
    export = approvals.request(app, c(app, "cora"), "recording.export", rec, "regulator")
    ids = lambda name: {a.id for a in approvals.list_requests(app, c(app, name))}  # noqa: E731
    assert ids("sam") == {play}  # own; a supervisor approves playback only
    assert ids("adam") == set()
    assert ids("aud") == {play, export}
    assert ids("dora") == {play, export}
    with pytest.raises(NotFound):
        approvals.get_request(app, c(app, "adam"), play)


# --------------------------------------------------------------------------- policy plugins tighten


class WorksCouncil:
    """A works-council rule: supervisors never see recording details; QA playback is denied."""

    @hookimpl
    def cf_access_decision(self, actor, action, target, context):
        if action == "recording.show" and "supervisor" in actor.roles:
            return AccessDecision(decision=Decision.DENY, reason="works agreement §4", by="works_council")
        if action == "recording.play" and "qa_reviewer" in actor.roles:
            return AccessDecision(decision=Decision.DENY, reason="works agreement §5", by="works_council")
        if action == "recording.list" and "auditor" in actor.roles:
            return AccessDecision(decision=Decision.NEEDS_APPROVAL, reason="works agreement §6", by="works_council")
        return None


def test_a_policy_plugin_can_tighten_deny_wins(world):
    app, _, rec = world
    make_user(app, "aud", ["auditor"])
    target = _target(rec, "A2")
    assert authorize(app, c(app, "sam"), "recording.show", target).decision is Decision.ALLOW
    app.pm.register(WorksCouncil(), "works_council")
    try:
        with pytest.raises(AccessDenied):
            authorize(app, c(app, "sam"), "recording.show", target)
        e = last_audit(app, action="recording.show")
        assert e.outcome == "denied" and e.detail["reason"] == "works agreement §4" and e.user == "sam"
        # deny wins over an approval, too
        with pytest.raises(AccessDenied):
            approvals.request(app, c(app, "quinn"), "recording.play", rec, "QA sample")
        # and NEEDS_APPROVAL wins over the default ALLOW
        with pytest.raises(ApprovalRequired):
            authorize(app, c(app, "aud"), "recording.list", AccessTarget(kind="recording"))
        assert authorize(app, c(app, "cora"), "recording.show", target).decision is Decision.ALLOW
    finally:
        app.pm.unregister("works_council")
    assert authorize(app, c(app, "sam"), "recording.show", target).decision is Decision.ALLOW


def test_a_plugins_four_eyes_rule_is_satisfied_by_an_approval(world):
    app, _, rec = world

    class Stricter:
        @hookimpl
        def cf_access_decision(self, actor, action, target, context):
            if action == "hold.set":
                return AccessDecision(decision=Decision.NEEDS_APPROVAL, reason="hold needs two", by="stricter")
            return None

    app.pm.register(Stricter(), "stricter")
    try:
        target = _target(rec, "A2")
        with pytest.raises(ApprovalRequired):
            authorize(app, c(app, "cora"), "hold.set", target)
        aid = approvals.request(app, c(app, "cora"), "hold.set", rec, "litigation")
        approvals.approve(app, c(app, "dora"), aid)
        ok = authorize(app, attrs.evolve(c(app, "cora"), approval_id=aid), "hold.set", target)
        assert ok.decision is Decision.ALLOW
    finally:
        app.pm.unregister("stricter")


# --------------------------------------------------------------------------- actions from plugins


class CrmUnlink:
    """A plugin's own four-eyes action through cf_approval_actions (and its policy rule)."""

    def __init__(self):
        self.ran = []

    @hookimpl
    def cf_approval_actions(self):
        return [ApprovalAction(name="crm.unlink", target_kind="recording", execute=self.execute,
                               description="remove a recording's link from the CRM")]

    @hookimpl
    def cf_access_decision(self, actor, action, target, context):
        if action == "crm.unlink" and "compliance" in actor.roles:
            return AccessDecision(decision=Decision.NEEDS_APPROVAL, reason="CRM changes need two", by="crm")
        return None

    def execute(self, app, ctx, target_id, params):
        authorize(app, ctx, "crm.unlink", AccessTarget(kind="recording", id=target_id))
        self.ran.append((ctx.actor.username, target_id, ctx.approval_id))
        return {"unlinked": target_id}


def test_a_plugin_adds_a_four_eyes_action_through_the_hook(world):
    app, rec, _ = world
    with pytest.raises((AccessDenied, InputError)):  # no policy, no executor: nothing to request
        approvals.request(app, c(app, "cora"), "crm.unlink", rec, "customer left")
    plugin = CrmUnlink()
    app.pm.register(plugin, "crm")
    assert approvals.target_kind(app, "crm.unlink") == "recording"
    aid = approvals.request(app, c(app, "cora"), "crm.unlink", rec, "customer left")
    with pytest.raises(AccessDenied):
        approvals.approve(app, c(app, "sam"), aid)  # a supervisor does not approve plugin actions
    approvals.approve(app, c(app, "dora"), aid)
    assert approvals.execute(app, c(app, "cora"), aid) == {"unlinked": rec}
    assert plugin.ran == [("cora", rec, aid)]


def test_two_registrations_of_one_action_are_an_error_unless_one_is_a_fallback(app):
    from cfcore.errors import PluginError

    class Again:
        @hookimpl
        def cf_approval_actions(self):
            return [ApprovalAction(name="roles.change", execute=lambda *a: {})]

    class Fallback:
        @hookimpl
        def cf_approval_actions(self):
            return [ApprovalAction(name="keys.rotate", execute=lambda *a: {}, fallback=True)]

    app.pm.register(Fallback(), "fallback")
    from cfcore.crypto import rotation

    assert approvals.registered_actions(app)["keys.rotate"].execute == rotation._exec_rotate
    app.pm.register(Again(), "again")
    with pytest.raises(PluginError, match="two plugins register 'roles.change' for cf_approval_actions"):
        approvals.registered_actions(app)
