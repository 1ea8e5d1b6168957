"""Four-eyes flows of retention: extend, shorten, legal hold release, Art. 17 erasure — through
the approvals module and through the CLI."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from retention_helpers import files_of, four_eyes, ingest, login_env, make_user, state
from sqlalchemy import select

from cfcore.access import approvals
from cfcore.archive import row_digest
from cfcore.db.models import AuditEntry, Recording
from cfcore.db.models_retention import LegalHold, RetentionOverride
from cfcore.errors import AccessDenied, ApprovalRequired, ConflictError, InputError
from cfcore.retention import change_retention, erase_recording, release_hold, run_purge, set_hold


@pytest.fixture
def team(app):
    return {"app": app, "carla": make_user(app, "carla", "compliance"), "dora": make_user(app, "dora", "dpo"),
            "adam": make_user(app, "adam", "advisor", advisor_id="A100"),
            "root": make_user(app, "root", "administrator")}


def _rec(app, rec_id):
    with app.catalog.session() as s:
        rec = s.get(Recording, rec_id)
        return rec.retention_until, rec.retention_rule, rec.legal_hold


def _last(app, action):
    with app.catalog.session() as s:
        e = s.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq.desc())).first()
        return e, json.loads(e.detail) if e else None


def _digest(app, rec_id):
    from cfcore.archive import get_recording

    with app.catalog.session() as s:
        return row_digest(get_recording(s, rec_id))


def test_extend_and_shorten_are_four_eyes(team, tmp_path):
    app, carla, dora = team["app"], team["carla"], team["dora"]
    rec = ingest(app, tmp_path, "2024-03-01T10:00:00+00:00", customer="K-1")
    assert _rec(app, rec)[:2] == (datetime(2029, 3, 1, 10, 0, 2, tzinfo=UTC), "mifid-5y")
    seven = datetime(2031, 3, 1, 10, 0, 2, tzinfo=UTC)
    with pytest.raises(ApprovalRequired):  # nobody extends alone
        change_retention(app, carla, rec, "extend", seven, "BaFin request")
    with pytest.raises(InputError, match="at most 7 years"):
        change_retention(app, None, rec, "extend", seven + timedelta(days=1), "too long")

    result = four_eyes(app, carla, dora, "retention.extend", rec, {"until": seven.isoformat(), "reason": "BaFin 2026/9"})
    assert result["new_until"] == seven and result["rule"] == "extended"
    assert _rec(app, rec)[:2] == (seven, "extended")
    entry, detail = _last(app, "retention.extend")
    assert entry.user == "carla" and entry.approval_id and detail["row_digest"] == _digest(app, rec)

    # shortening never goes below the MiFID duty; back to 5 years is allowed
    with pytest.raises(ConflictError, match="legal duty"):
        change_retention(app, None, rec, "shorten", datetime(2028, 1, 1, tzinfo=UTC), "no")
    five = datetime(2029, 3, 1, 10, 0, 2, tzinfo=UTC)
    four_eyes(app, dora, carla, "retention.shorten", rec, {"until": five.isoformat(), "reason": "request ended"})
    assert _rec(app, rec)[:2] == (five, "mifid-5y")
    entry, detail = _last(app, "retention.shorten")
    assert entry.user == "dora" and detail["row_digest"] == _digest(app, rec)
    with app.catalog.session() as s:
        assert s.get(RetentionOverride, rec).kind == "shorten"

    # an advisor-only recording has no statutory floor: its 30 days can be shortened
    adv = ingest(app, tmp_path, "2026-11-20T10:00:00+00:00", two_sided=False, customer="K-1", name="adv")
    four_eyes(app, carla, dora, "retention.shorten", adv, {"until": "2026-11-27", "reason": "QA done"})
    assert _rec(app, adv)[:2] == (datetime(2026, 11, 27, tzinfo=UTC), "shortened")
    assert [p["id"] for p in run_purge(app).purged] == [adv]
    with pytest.raises(AccessDenied):
        approvals.request(app, team["adam"], "retention.extend", rec, "mine", {"until": seven.isoformat()})


def test_hold_set_directly_release_four_eyes(team, tmp_path):
    app, carla, dora = team["app"], team["carla"], team["dora"]
    rec = ingest(app, tmp_path, "2026-09-01T10:00:00+00:00", two_sided=False, customer="K-2")  # expired
    for who in ("adam", "root"):
        with pytest.raises(AccessDenied):
            set_hold(app, team[who], rec, "not my job")
    set_hold(app, carla, rec, "complaint 2026/44")
    entry, detail = _last(app, "hold.set")
    assert entry.user == "carla" and detail["row_digest"] == _digest(app, rec)
    with pytest.raises(ConflictError, match="already"):
        set_hold(app, dora, rec, "twice")
    assert run_purge(app).held == [rec] and state(app, rec)["state"] == "archived"

    with pytest.raises(ApprovalRequired):
        release_hold(app, carla, rec, "settled")
    approval_id = approvals.request(app, carla, "hold.release", rec, "complaint settled", {"reason": "settled"})
    with pytest.raises(AccessDenied):
        approvals.approve(app, carla, approval_id)  # never one's own request
    approvals.approve(app, dora, approval_id)
    approvals.execute(app, carla, approval_id)
    assert _rec(app, rec)[2] is False
    with app.catalog.session() as s:
        hold = s.scalars(select(LegalHold).where(LegalHold.recording_id == rec)).one()
        assert hold.released_by == "carla" and hold.release_approval_id == approval_id
    entry, detail = _last(app, "hold.release")
    assert entry.approval_id == approval_id and detail["row_digest"] == _digest(app, rec)
    assert [p["id"] for p in run_purge(app).purged] == [rec]


def test_art17_erasure(team, deployment, tmp_path):
    app, carla, dora = team["app"], team["carla"], team["dora"]
    adv = ingest(app, tmp_path, "2026-11-25T10:00:00+00:00", two_sided=False, customer="K-3", name="adv")
    mifid = ingest(app, tmp_path, "2026-11-25T11:00:00+00:00", customer="K-3", name="mifid")
    held = ingest(app, tmp_path, "2026-11-25T12:00:00+00:00", two_sided=False, customer="K-3", name="held")
    set_hold(app, carla, held, "litigation")
    with pytest.raises(ApprovalRequired):
        erase_recording(app, dora, adv, "request")

    result = four_eyes(app, dora, carla, "recording.erase", adv, {"reason": "Art. 17 request 2026-11-27"})
    assert result["state"] == "purged"
    st = state(app, adv)
    assert st["state"] == "purged" and st["key_wrapped"] is False and st["tombstone"]["reason"] == "art17-erasure"
    assert files_of(deployment, adv) == []
    entry, detail = _last(app, "recording.erase")
    assert entry.outcome == "ok" and entry.user == "dora" and detail["approval_id"] == entry.approval_id

    # refused under a MiFID duty or a legal hold: before anyone approves, and at execution
    with pytest.raises(ConflictError, match="MiFID II"):
        erase_recording(app, None, mifid, "request")
    with pytest.raises(ConflictError, match="legal hold"):
        erase_recording(app, None, held, "request")
    approval_id = approvals.request(app, dora, "recording.erase", mifid, "request 2", {"reason": "request 2"})
    approvals.approve(app, carla, approval_id)
    with pytest.raises(ConflictError, match="Art. 17"):
        approvals.execute(app, dora, approval_id)
    assert state(app, mifid)["state"] == "archived" and len(files_of(deployment, mifid)) == 2
    assert state(app, held)["state"] == "archived"
    # each refusal is an audited attempt on a protected recording (the FIS watches for them)
    with app.catalog.session() as s:
        refused = s.scalars(select(AuditEntry).where(AuditEntry.action == "recording.erase",
                                                     AuditEntry.outcome == "refused")).all()
    assert sorted(e.target_id for e in refused) == sorted([mifid, held, mifid])
    assert refused[-1].user == "dora" and "Art. 17" in json.loads(refused[-1].detail)["reason"]


def _approval_id(stdout: str) -> str:
    return re.search(r"approval ([0-9a-f]{32})", stdout).group(1)


def test_cli_four_eyes_flows(team, run_cf, deployment, tmp_path):
    app = team["app"]
    held = ingest(app, tmp_path, "2026-08-01T10:00:00+00:00", two_sided=False, customer="K-4", name="held")
    adv = ingest(app, tmp_path, "2026-11-25T10:00:00+00:00", two_sided=False, customer="K-4", name="adv")
    mifid = ingest(app, tmp_path, "2024-02-01T10:00:00+00:00", customer="K-4", name="mifid")
    carla, dora = login_env("carla"), login_env("dora")

    run_cf("hold", "set", held, "--reason", "complaint", env=carla, check=True)
    listed = json.loads(run_cf("hold", "list", "--json", env=dora, check=True).stdout)
    assert [h["recording_id"] for h in listed] == [held]
    req = run_cf("hold", "release", held, "--reason", "settled", env=carla, check=True)
    aid = _approval_id(req.stdout)
    run_cf("approve", aid, env=dora, check=True)
    run_cf("execute", aid, env=carla, check=True)
    assert _rec(app, held)[2] is False

    refused = run_cf("retention", "erase", mifid, "--reason", "request", env=dora)
    assert refused.returncode == 9 and "MiFID II" in refused.stderr and "Art. 17(3)(b)" in refused.stderr
    entry, detail = _last(app, "recording.erase")
    assert (entry.outcome, entry.user, entry.target_id, entry.function) == ("refused", "dora", mifid,
                                                                           "cli:recording.erase")
    req = run_cf("retention", "erase", adv, "--reason", "request 2026-11-28", env=dora, check=True)
    aid = _approval_id(req.stdout)
    run_cf("approve", aid, env=carla, check=True)
    run_cf("execute", aid, env=dora, check=True)
    assert state(app, adv)["tombstone"]["reason"] == "art17-erasure"

    req = run_cf("retention", "extend", mifid, "--years", "7", "--reason", "BaFin", "--json", env=carla, check=True)
    aid = json.loads(req.stdout)["approval_id"]
    run_cf("approve", aid, env=dora, check=True)
    run_cf("execute", aid, env=carla, check=True)
    shown = json.loads(run_cf("retention", "show", mifid, "--json", env=carla, check=True).stdout)
    assert shown["retention_rule"] == "extended" and shown["retention_until"].startswith("2031-02-01")
    too_long = run_cf("retention", "extend", mifid, "--years", "8", "--reason", "x", env=carla)
    assert too_long.returncode == 2 and "at most 7 years" in too_long.stderr

    denied = run_cf("retention", "run", "--progress", env=login_env("adam"))
    assert denied.returncode == 5 and "purging expired recordings" not in denied.stderr
    ran = run_cf("retention", "run", "--json", "--progress", env=login_env("root"), check=True)
    report = json.loads(ran.stdout)
    assert [p["id"] for p in report["purged"]] == [held]
    assert "purging expired recordings" in ran.stderr  # the bar goes to stderr, never into the JSON
