"""Every default FIS rule: a case that triggers it and one that does not.

Real producers are used where they exist (the access guard, logins, four-eyes approvals, key
rotation, retention changes, the purge); playback has no producer yet, so those entries are
written with ``app.audit.record`` and crafted contexts, as a web player would write them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fis_helpers import alerts_of, ingest, make_user, scan_rules, weekday_clock
from sqlalchemy import text

from cfcore.access import approvals
from cfcore.access.guard import authorize
from cfcore.authority import SYSTEM
from cfcore.errors import AccessDenied, AuthenticationFailed
from hookspecs.types import AccessTarget, Actor, RequestContext


@pytest.fixture
def frozen_clock():
    return weekday_clock()


def ctx_of(user: str, ip: str = "10.0.0.7") -> RequestContext:
    return RequestContext(actor=Actor(user_id=f"u-{user}", username=user, roles=frozenset()), host="pc-1",
                          ip=ip, function="web.player")


def record(app, user, action, target_id=None, outcome="ok", detail=None, target_kind="recording", ip="10.0.0.7"):
    return app.audit.record(ctx_of(user, ip), action, target_kind, target_id, outcome, detail)


def rules_hit(app, rule):
    return [a for a in alerts_of(app, rule)]


# --------------------------------------------------------------------------- mass access


def test_mass_access_triggers_once_per_burst_even_across_scans(app, frozen_clock):
    seqs = []
    for i in range(25):
        seqs.append(record(app, "carol", "recording.play" if i % 2 else "recording.export", f"{i:032x}"))
        frozen_clock.advance(60)
        if i == 11:
            scan_rules(app)  # the burst is split over two scans: the look-back joins it
    scan_rules(app)
    (alert,) = rules_hit(app, "mass-access")
    assert alert.severity == "high" and "carol" in alert.summary
    assert set(alert.evidence) == {f"audit:{s}" for s in seqs}
    for i in range(5):  # the burst goes on: still one alert
        record(app, "carol", "recording.play", f"{100 + i:032x}")
        frozen_clock.advance(60)
    scan_rules(app)
    assert len(rules_hit(app, "mass-access")) == 1


def test_mass_access_quiet_below_threshold_or_spread_out(app, frozen_clock):
    for i in range(24):  # one fewer than the threshold within the hour
        record(app, "carol", "recording.play", f"{i:032x}")
        frozen_clock.advance(60)
    frozen_clock.advance(3600)
    for i in range(30):  # many, but 3 minutes apart: at most 20 in any hour
        record(app, "dan", "recording.play", f"{i:032x}")
        frozen_clock.advance(180)
    for user in ("u1", "u2", "u3"):  # many users, each few
        for i in range(10):
            record(app, user, "recording.play", f"{i:032x}")
    scan_rules(app)
    assert rules_hit(app, "mass-access") == []


def test_mass_access_threshold_is_configurable(deployment, make_app):
    with deployment.open("a") as f:
        f.write('\n[fis.rules.mass-access]\nthreshold = 3\nwindow_seconds = 60\nseverity = "critical"\n')
    app = make_app(deployment)
    for i in range(3):
        record(app, "carol", "recording.export", f"{i:032x}")
    scan_rules(app)
    (alert,) = rules_hit(app, "mass-access")
    assert alert.severity == "critical"


# --------------------------------------------------------------------------- off hours


def test_off_hours_access_triggers_at_night_and_on_weekends(app, frozen_clock, tmp_path):
    from cfcore.retention import retention_status

    rec = ingest(app, tmp_path)
    comp = make_user(app, "cora", "compliance")
    frozen_clock.set(datetime(2026, 11, 25, 22, 30, tzinfo=UTC))  # 23:30 in Berlin
    retention_status(app, comp, rec)  # a real read: audits recording.show
    frozen_clock.set(datetime(2026, 11, 28, 10, 0, tzinfo=UTC))  # a Saturday
    retention_status(app, comp, rec)
    scan_rules(app)
    alerts = rules_hit(app, "off-hours")
    assert len(alerts) == 2
    assert all("cora" in a.summary and a.severity == "warning" for a in alerts)
    assert {"2026-11-25", "2026-11-28"} == {a.summary.split(" on ")[1][:10] for a in alerts}


def test_off_hours_quiet_in_working_hours_and_for_the_system(app, frozen_clock, tmp_path):
    from cfcore.retention import retention_status

    comp = make_user(app, "cora", "compliance")
    rec = ingest(app, tmp_path)
    retention_status(app, comp, rec)  # Wednesday 11:00 in Berlin
    frozen_clock.set(datetime(2026, 11, 25, 23, 0, tzinfo=UTC))
    ingest(app, tmp_path)  # the capture system archives at night: not a person reading data
    record(app, "cora", "user.password", "cora", target_kind="user")  # not an access to personal data
    scan_rules(app)
    assert rules_hit(app, "off-hours") == []


def test_off_hours_working_hours_are_configurable(deployment, make_app, frozen_clock):
    with deployment.open("a") as f:
        f.write('\n[fis.rules.off-hours]\ntimezone = "UTC"\nstart = "06:00"\nend = "23:45"\n'
                'workdays = [1, 2, 3, 4, 5, 6, 7]\n')
    app = make_app(deployment)
    frozen_clock.set(datetime(2026, 11, 28, 22, 30, tzinfo=UTC))  # Saturday night, within these hours
    record(app, "cora", "recording.show", "0" * 32)
    frozen_clock.set(datetime(2026, 11, 28, 23, 50, tzinfo=UTC))
    record(app, "cora", "recording.show", "1" * 32)
    scan_rules(app)
    (alert,) = rules_hit(app, "off-hours")
    assert alert.evidence[0].startswith("audit:") and len(alert.evidence) == 1


# --------------------------------------------------------------------------- denied / failed logins


def _denied(app, ctx, n, frozen_clock=None, step=0):
    for i in range(n):
        with pytest.raises(AccessDenied):
            authorize(app, ctx, "recording.export", AccessTarget(kind="recording", id=f"{i:032x}"))
        if frozen_clock is not None:
            frozen_clock.advance(step)


def test_denied_burst_triggers(app):
    eve = make_user(app, "eve", "advisor", advisor_id="A7")
    _denied(app, eve, 5)
    scan_rules(app)
    (alert,) = rules_hit(app, "denied-burst")
    assert "eve" in alert.summary and len(alert.evidence) == 5


def test_denied_burst_quiet_for_few_or_slow_denials(app, frozen_clock):
    eve = make_user(app, "eve", "advisor", advisor_id="A7")
    _denied(app, eve, 4)
    frozen_clock.advance(3600)
    _denied(app, eve, 5, frozen_clock, step=180)  # 5 denials in 12 minutes: at most 4 in 10
    scan_rules(app)
    assert rules_hit(app, "denied-burst") == []


def _login(app, user, password):
    from cfcore.access.throttle import LoginThrottle, ThrottleSettings
    from cfcore.access.users import authenticate_password

    # The rule counts the failures the login throttle lets through; the throttle itself (which would
    # delay the 4th guess here) is tested in test_login_flood.py, so give this app a lenient one.
    if "_cf_login_throttle" not in app.__dict__:
        app.__dict__["_cf_login_throttle"] = LoginThrottle(
            ThrottleSettings(free_per_account_ip=100, free_per_ip=100, free_per_account=100))

    return authenticate_password(app, user, password, host="pc-9", ip="192.0.2.9", function="cli")


def test_login_failures_trigger_for_an_account_and_an_address(app):
    make_user(app, "frank", "supervisor")
    for _ in range(5):
        with pytest.raises(AuthenticationFailed):
            _login(app, "frank", "wrong password!")
    scan_rules(app)
    (alert,) = rules_hit(app, "login-failures")
    assert "account 'frank'" in alert.summary
    for name in ("a1", "b2", "c3", "d4", "e5"):  # a password spray over unknown names from one PC
        with pytest.raises(AuthenticationFailed):
            _login(app, name, "guess")
    scan_rules(app)
    summaries = [a.summary for a in rules_hit(app, "login-failures")]
    assert len(summaries) == 2 and any("account 'unknown'" in s or "192.0.2.9" in s for s in summaries)


def test_login_failures_quiet_below_threshold(app):
    make_user(app, "frank", "supervisor")
    for _ in range(4):
        with pytest.raises(AuthenticationFailed):
            _login(app, "frank", "wrong password!")
    from fis_helpers import PASSWORD

    _login(app, "frank", PASSWORD)
    scan_rules(app)
    assert rules_hit(app, "login-failures") == []


# --------------------------------------------------------------------------- held / unexpired recordings


def test_protected_change_triggers_on_refused_delete_and_store_lock(app, tmp_path):
    from cfcore.archive import get_recording, recording_target

    rec = ingest(app, tmp_path, advisor="A7")
    eve = make_user(app, "eve", "advisor", advisor_id="A7")
    with app.catalog.session() as s:
        target = recording_target(get_recording(s, rec))
    with pytest.raises(AccessDenied):
        authorize(app, eve, "recording.delete", target)  # the guard refuses and audits
    # what the purge audits when a store's object lock refuses the delete
    app.audit.record(SYSTEM, "recording.purge", "recording", rec, "pending",
                     {"error": "locked: PermissionError: object is locked until 2031-11-25"})
    scan_rules(app)
    alerts = rules_hit(app, "protected-change")
    assert len(alerts) == 2
    assert all(f"recording:{rec}" in a.evidence and a.severity == "high" for a in alerts)
    assert any("eve" in a.summary and "recording.delete" in a.summary for a in alerts)
    assert any("retention lock" in a.summary for a in alerts)


def test_protected_change_triggers_on_erasure_of_a_recording_under_mifid_duty(app, tmp_path):
    from cfcore.errors import ConflictError
    from cfcore.retention import erase_recording

    rec = ingest(app, tmp_path, two_sided=True)  # two-sided advisory call: kept 5 years (MiFID II)
    dora = make_user(app, "dora", "dpo")
    with pytest.raises(ConflictError, match="Art. 17"):
        erase_recording(app, dora, rec, "customer asked")
    scan_rules(app)
    (alert,) = rules_hit(app, "protected-change")
    assert f"recording:{rec}" in alert.evidence and "dora" in alert.summary


def test_protected_change_quiet_for_a_regular_purge(app, frozen_clock, tmp_path):
    from cfcore.retention import run_purge

    rec = ingest(app, tmp_path, two_sided=False)  # advisor-only: kept 30 days
    frozen_clock.advance(timedelta(days=40))
    report = run_purge(app)
    assert [p["id"] for p in report.purged] == [rec]
    scan_rules(app)
    assert rules_hit(app, "protected-change") == []


# --------------------------------------------------------------------------- four-eyes


def test_self_approval_attempt_triggers(app):
    from cfcore.access.users import request_role_change

    admin = make_user(app, "root", "administrator")
    ivan = make_user(app, "ivan", "dpo")
    make_user(app, "jo")
    approval = request_role_change(app, admin, "jo", add=["auditor"], reason="audit season")
    with pytest.raises(AccessDenied):
        approvals.approve(app, admin, approval)  # the requester approving their own request
    other = request_role_change(app, admin, "ivan", add=["auditor"], reason="second role")
    with pytest.raises(AccessDenied):
        approvals.approve(app, ivan, other)  # approving a change of one's own roles
    scan_rules(app)
    alerts = rules_hit(app, "self-approval")
    assert len(alerts) == 2
    assert {a.summary.split("'")[1] for a in alerts} == {"root", "ivan"}
    assert all(a.severity == "high" for a in alerts)


def test_self_approval_quiet_for_a_proper_second_person(app):
    from cfcore.access.users import request_role_change

    admin = make_user(app, "root", "administrator")
    dpo = make_user(app, "ivan", "dpo")
    make_user(app, "jo")
    approval = request_role_change(app, admin, "jo", add=["auditor"], reason="audit season")
    approvals.approve(app, dpo, approval)
    scan_rules(app)
    assert rules_hit(app, "self-approval") == []


# --------------------------------------------------------------------------- retention


def _four_eyes(app, requester, approver, action, target, params):
    approval = approvals.request(app, requester, action, target, "test request", params)
    approvals.approve(app, approver, approval)
    return approvals.execute(app, requester, approval)


def test_retention_shortened_triggers(app, tmp_path):
    rec = ingest(app, tmp_path, two_sided=False)  # advisor-only: 30 days, no statutory duty
    comp = make_user(app, "cora", "compliance")
    dpo = make_user(app, "ivan", "dpo")
    result = _four_eyes(app, comp, dpo, "retention.shorten", rec, {"until": "2026-12-01", "reason": "QA done"})
    assert result["new_until"] < result["old_until"]
    scan_rules(app)
    (alert,) = rules_hit(app, "retention-shortened")
    assert f"recording:{rec}" in alert.evidence and "cora" in alert.summary


def test_retention_shortened_quiet_for_extension(app, tmp_path):
    rec = ingest(app, tmp_path, two_sided=False)
    comp = make_user(app, "cora", "compliance")
    dpo = make_user(app, "ivan", "dpo")
    _four_eyes(app, comp, dpo, "retention.extend", rec, {"until": "2027-06-01", "reason": "complaint"})
    scan_rules(app)
    assert rules_hit(app, "retention-shortened") == []


def test_retention_apply_to_an_earlier_date_counts_as_shortening(app):
    app.audit.record(SYSTEM, "retention.apply", "recording", "a" * 32, "ok",
                     {"old_until": "2031-11-25 10:00:00+00:00", "until": "2027-01-01 00:00:00+00:00"})
    app.audit.record(SYSTEM, "retention.apply", "recording", "b" * 32, "ok",
                     {"old_until": "2027-01-01 00:00:00+00:00", "until": "2031-11-25 10:00:00+00:00"})
    scan_rules(app)
    (alert,) = rules_hit(app, "retention-shortened")
    assert f"recording:{'a' * 32}" in alert.evidence


# --------------------------------------------------------------------------- keys and roles


def test_key_and_role_changes_trigger(app):
    from cfcore.access.users import request_role_change
    from cfcore.crypto.rotation import rotate_keys

    rotate_keys(app, SYSTEM)
    admin = make_user(app, "root", "administrator")
    dpo = make_user(app, "ivan", "dpo")
    make_user(app, "jo")
    approval = request_role_change(app, admin, "jo", add=["auditor"], reason="audit season")
    approvals.approve(app, dpo, approval)
    approvals.execute(app, admin, approval)
    scan_rules(app)
    alerts = rules_hit(app, "key-role-change")
    assert sorted(a.summary.split(" ")[0] for a in alerts) == ["keys.rotate", "roles.change"]


def test_key_and_role_changes_quiet_for_other_user_management(app):
    from cfcore.access.users import set_password

    make_user(app, "root", "administrator")
    jo = make_user(app, "jo")
    set_password(app, jo, "jo", "another long passphrase 42")  # nobody sets another user's password
    scan_rules(app)
    assert rules_hit(app, "key-role-change") == []


# --------------------------------------------------------------------------- the trail itself


def test_audit_gap_triggers_when_entries_vanish(app):
    for i in range(3):
        record(app, "kim", "user.list", target_kind="user")
    scan_rules(app)
    first_new = record(app, "kim", "user.list", target_kind="user")
    record(app, "kim", "user.list", target_kind="user")
    middle = record(app, "kim", "user.list", target_kind="user")
    record(app, "kim", "user.list", target_kind="user")
    with app.catalog.session() as s:  # one at the scan boundary, one in the middle
        s.execute(text("DELETE FROM audit_log WHERE seq IN (:a, :b)"), {"a": first_new, "b": middle})
    scan_rules(app)
    alerts = rules_hit(app, "audit-gaps")
    assert len(alerts) == 2 and all(a.severity == "critical" for a in alerts)
    assert {a.summary for a in alerts} == {f"audit entries {first_new} are missing from the trail",
                                            f"audit entries {middle} are missing from the trail"}


def test_audit_time_going_backwards_triggers(app, frozen_clock):
    record(app, "kim", "user.list", target_kind="user")
    frozen_clock.advance(-600)
    back = record(app, "kim", "user.list", target_kind="user")
    # The trail itself never dates an entry before its predecessor (a clock set back is ignored);
    # only someone writing the table directly can, and the rule must see that.
    with app.catalog.session() as s:
        s.execute(text("UPDATE audit_log SET at = :at WHERE seq = :seq"),
                  {"at": frozen_clock.now().replace(tzinfo=None), "seq": back})
    scan_rules(app)
    (alert,) = rules_hit(app, "audit-gaps")
    assert alert.severity == "high" and f"audit:{back}" in alert.evidence


def test_audit_trail_quiet_when_whole_and_in_order(app, frozen_clock):
    for _ in range(5):
        record(app, "kim", "user.list", target_kind="user")
        frozen_clock.advance(-1)  # clock jitter within the tolerance
    scan_rules(app)
    for _ in range(3):
        record(app, "kim", "user.list", target_kind="user")
        frozen_clock.advance(3600)
    scan_rules(app)
    assert rules_hit(app, "audit-gaps") == []


# --------------------------------------------------------------------------- broken copies


def test_broken_copy_triggers_when_a_store_copy_is_damaged(app, tmp_path):
    from sqlalchemy import select

    from cfcore.db.models import MediaObject
    from cfcore.storage import report_broken_copy

    rec = ingest(app, tmp_path)
    # the producer that reads and store checks call when a copy is damaged
    with app.catalog.session() as s:
        row = s.scalars(select(MediaObject).where(MediaObject.recording_id == rec)).first()
    event = report_broken_copy(app, row.store, row.key, "damaged", [])
    scan_rules(app)
    (alert,) = rules_hit(app, "broken-copy")
    assert alert.severity == "high" and "damaged" in alert.summary
    assert f"audit:{event.audit_seq}" in alert.evidence and f"object:{row.key}" in alert.evidence


def test_broken_copy_quiet_when_stores_are_healthy(app, tmp_path):
    ingest(app, tmp_path)
    record(app, "carol", "store.check", "primary", target_kind="store")
    scan_rules(app)
    assert rules_hit(app, "broken-copy") == []
