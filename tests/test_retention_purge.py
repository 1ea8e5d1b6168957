"""The purge: expired recordings leave every store, their key is destroyed and a tombstone stays;
held and unexpired recordings are untouched; a rerun is idempotent; plugins can veto and listen."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from retention_helpers import files_of, ingest, make_user, state, use_two_stores
from sqlalchemy import func, select

from cfcore.archive import read_channel
from cfcore.db.models import AuditEntry, ConsentRow, ModeSegmentRow, Recording, RecordingSubject, TombstoneSubject
from cfcore.db.models_retention import PurgeTask
from cfcore.retention import run_purge, set_hold
from cfcore.subjects import pseudonym
from hookspecs import hookimpl


@pytest.fixture
def dep(deployment):
    return use_two_stores(deployment)


@pytest.fixture
def rapp(dep, make_app):
    return make_app(dep)


def test_purge_deletes_expired_and_keeps_the_rest(rapp, dep, tmp_path):
    app = rapp
    expired_both = ingest(app, tmp_path, "2020-01-10T10:00:00+00:00", customer="K-1", number="+49 30 111111")
    unexpired_both = ingest(app, tmp_path, "2023-01-10T10:00:00+00:00", customer="K-1")
    expired_adv = ingest(app, tmp_path, "2026-09-01T10:00:00+00:00", two_sided=False, customer="K-2")
    fresh_adv = ingest(app, tmp_path, "2026-11-20T10:00:00+00:00", two_sided=False, customer="K-2")
    held = ingest(app, tmp_path, "2019-03-01T10:00:00+00:00", customer="K-3")
    set_hold(app, make_user(app, "cora", "compliance"), held, "litigation 2026/17")

    # the default rules: MiFID 5 years for two-sided calls, 30 days for advisor-only calls
    with app.catalog.session() as s:
        recs = {r.id: r for r in s.scalars(select(Recording))}
        assert recs[expired_both].retention_rule == "mifid-5y"
        assert recs[expired_both].retention_class == "mifid"
        assert recs[expired_both].retention_until.year == 2025
        assert recs[expired_adv].retention_rule == "advisor-only-30d"
        assert recs[expired_adv].retention_class == "advisor-only"
    before = {r: files_of(dep, r) for r in (expired_both, unexpired_both, expired_adv, fresh_adv, held)}
    assert len(before[expired_both]) == 4  # two channels in two stores
    assert len(before[expired_adv]) == 2

    dry = run_purge(app, dry_run=True)
    assert sorted(p["id"] for p in dry.purged) == sorted([expired_both, expired_adv])
    assert all(files_of(dep, r) for r in before)  # a dry run changes nothing
    assert state(app, expired_both)["state"] == "archived"

    report = run_purge(app)
    assert sorted(p["id"] for p in report.purged) == sorted([expired_both, expired_adv])
    assert report.held == [held]
    assert not report.pending

    for gone in (expired_both, expired_adv):
        assert files_of(dep, gone) == []
        st = state(app, gone)
        assert st["state"] == "purged"
        assert st["key_wrapped"] is False and st["key_destroyed_at"] is not None
        assert st["tombstone"]["reason"] == "retention-expired"
        assert st["media_rows"] == 0 and st["subjects"] == 0
        assert len(st["tombstone"]["hashes"]) == (2 if gone == expired_both else 1)
        with app.catalog.session() as s:
            assert s.scalar(select(func.count()).select_from(ModeSegmentRow).where(ModeSegmentRow.recording_id == gone)) == 0
            assert s.scalar(select(func.count()).select_from(ConsentRow).where(ConsentRow.recording_id == gone)) == 0
            rec = s.get(Recording, gone)
            assert rec.pbx_call_id is None and rec.advisor_id == "-"
    tomb = state(app, expired_both)["tombstone"]
    assert tomb["rule"] == "mifid-5y"
    assert sorted(tomb["pseudonyms"]) == sorted([pseudonym(app, "customer_id", "K-1"),
                                                 pseudonym(app, "number", "+49 30 111111")])
    # no identifier in clear anywhere in the tombstone
    assert "K-1" not in json.dumps(tomb, default=str) and "111111" not in json.dumps(tomb, default=str)
    with app.catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(TombstoneSubject)
                        .where(TombstoneSubject.recording_id == expired_both)) == 2

    for kept in (unexpired_both, fresh_adv, held):
        assert files_of(dep, kept) == before[kept]
        st = state(app, kept)
        assert st["state"] == "archived" and st["key_wrapped"] is True and st["tombstone"] is None
        assert read_channel(app, kept, "advisor")

    # one disposal entry for the run (date, rules, count, ids) plus per-recording entries
    with app.catalog.session() as s:
        disposal = s.scalars(select(AuditEntry).where(AuditEntry.action == "retention.disposal")).all()
        per_rec = s.scalars(select(AuditEntry).where(AuditEntry.action == "recording.purge",
                                                     AuditEntry.outcome == "ok")).all()
    assert len(disposal) == 1
    detail = json.loads(disposal[0].detail)
    assert detail["count"] == 2 and sorted(detail["ids"]) == sorted([expired_both, expired_adv])
    assert detail["rules"] == {"advisor-only-30d": 1, "mifid-5y": 1}
    assert detail["date"] == "2026-11-28"
    assert sorted(e.target_id for e in per_rec) == sorted([expired_both, expired_adv])
    assert all("row_digest" in json.loads(e.detail) for e in per_rec)
    assert app.audit.verify().ok

    # idempotent: a second run finds nothing to do and says so
    again = run_purge(app)
    assert again.purged == [] and again.pending == []
    assert files_of(dep, unexpired_both) == before[unexpired_both]


def test_purge_when_time_passes(rapp, dep, tmp_path, frozen_clock):
    app = rapp
    rec = ingest(app, tmp_path, "2026-11-27T10:00:00+00:00", two_sided=False)
    assert run_purge(app).purged == []
    frozen_clock.advance(timedelta(days=29))
    assert run_purge(app).purged == []
    frozen_clock.advance(timedelta(days=2))
    assert [p["id"] for p in run_purge(app).purged] == [rec]
    assert files_of(dep, rec) == []


class Veto:
    def __init__(self, keep: str) -> None:
        self.keep = keep
        self.purged: list = []

    @hookimpl
    def cf_before_purge(self, recording):
        return "open complaint" if recording.id == self.keep else None

    @hookimpl
    def cf_after_purge(self, tombstone):
        self.purged.append(tombstone)


def test_before_purge_vetoes_and_after_purge_hears(rapp, dep, tmp_path):
    app = rapp
    a = ingest(app, tmp_path, "2026-08-01T10:00:00+00:00", two_sided=False, customer="K-9")
    b = ingest(app, tmp_path, "2026-08-02T10:00:00+00:00", two_sided=False, customer="K-9")
    plugin = Veto(keep=a)
    app.pm.register(plugin, "test-veto")
    report = run_purge(app)
    assert report.vetoed == [{"id": a, "reason": "open complaint"}]
    assert [p["id"] for p in report.purged] == [b]
    assert state(app, a)["state"] == "archived" and len(files_of(dep, a)) == 2
    assert [t.recording_id for t in plugin.purged] == [b]
    tomb = plugin.purged[0]
    assert tomb.reason == "retention-expired" and tomb.subject_pseudonyms == (pseudonym(app, "customer_id", "K-9"),)
    with app.catalog.session() as s:
        task = s.get(PurgeTask, b)
        assert task.state == "done" and task.disposal_seq == report.disposal_seq
        assert s.scalar(select(func.count()).select_from(RecordingSubject).where(RecordingSubject.recording_id == b)) == 0


class Complaint:
    """A plugin added after archive: calls of advisor A7 are kept until the end of 2027."""

    @hookimpl
    def cf_retention_rules(self, recording, settings):
        if recording.advisor_id == "A7":
            from datetime import UTC, datetime

            from hookspecs.types import RetentionRule

            return [RetentionRule(name="complaint", keep_until=datetime(2027, 12, 31, tzinfo=UTC),
                                  legal_basis="GDPR Art. 17(3)(e)")]
        return []


def test_rules_changed_since_archive_and_missing_dates(rapp, dep, tmp_path):
    app = rapp
    kept = ingest(app, tmp_path, "2026-08-01T10:00:00+00:00", two_sided=False, advisor="A7", name="kept")
    undated = ingest(app, tmp_path, "2026-08-02T10:00:00+00:00", two_sided=False, name="undated")
    with app.catalog.session() as s:
        s.get(Recording, undated).retention_until = None  # e.g. archived by an older version
    app.pm.register(Complaint(), "test-complaint")
    report = run_purge(app)
    assert report.assigned == 1 and [p["id"] for p in report.purged] == [undated]
    assert [k["id"] for k in report.kept] == [kept] and report.kept[0]["rule"] == "complaint"
    with app.catalog.session() as s:
        rec = s.get(Recording, kept)
        assert (rec.retention_rule, rec.retention_until.year) == ("complaint", 2027)
        applied = s.scalars(select(AuditEntry).where(AuditEntry.action == "retention.apply")).all()
    assert sorted(e.target_id for e in applied) == sorted([kept, undated])
    assert len(files_of(dep, kept)) == 2 and files_of(dep, undated) == []


def test_serve_job_purges_when_due(rapp, dep, tmp_path, frozen_clock):
    from cfcore.jobs import registered_jobs
    from cfcore.retention import purge_job

    job = registered_jobs(rapp)["retention.purge"]
    assert job.run is purge_job and job.interval_seconds == 900
    app = rapp
    first = ingest(app, tmp_path, "2026-08-01T10:00:00+00:00", two_sided=False, name="first")
    report = job.run(app)  # no disposal entry yet: due at once, runs as the system
    assert [p["id"] for p in report.purged] == [first]
    second = ingest(app, tmp_path, "2026-08-02T10:00:00+00:00", two_sided=False, name="second")
    frozen_clock.advance(timedelta(hours=23))
    assert job.run(app) is None  # purge_interval_seconds (a day) has not passed
    frozen_clock.advance(timedelta(hours=1))
    assert [p["id"] for p in job.run(app).purged] == [second]
    with app.catalog.session() as s:
        users = {e.user for e in s.scalars(select(AuditEntry).where(AuditEntry.action == "retention.disposal"))}
    assert users == {"system"}
