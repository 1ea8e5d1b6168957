"""A purge killed at any point completes on the next run (``CF_TEST_CRASH_AT``, see docs/retention.md)."""

from __future__ import annotations

import json

import pytest
from retention_helpers import files_of, ingest, login_env, make_user, state, use_two_stores
from sqlalchemy import select

from cfcore.archive import read_channel
from cfcore.db.models import AuditEntry
from cfcore.db.models_retention import PurgeTask
from cfcore.errors import ConflictError
from cfcore.retention import CRASH_POINTS


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_killed_purge_completes_on_next_run(point, deployment, make_app, run_cf, tmp_path, frozen_clock):
    dep = use_two_stores(deployment)
    app = make_app(dep)
    first = ingest(app, tmp_path, "2019-05-01T10:00:00+00:00", customer="K-7")
    frozen_clock.advance(1)  # recording ids sort by archive time: the purge takes `first` first
    second = ingest(app, tmp_path, "2026-08-01T10:00:00+00:00", two_sided=False, customer="K-7")
    keep = ingest(app, tmp_path, "2025-05-01T10:00:00+00:00", customer="K-7")
    assert len(files_of(dep, first)) == 4

    make_user(app, "ops", "administrator")
    crashed = run_cf("retention", "run", "--json", env=login_env("ops", CF_TEST_CRASH_AT=point))
    assert crashed.returncode == 99, crashed.stderr  # killed: os._exit, no cleanup, no disposal entry
    # the purge works through expired recordings in id order: exactly one was in flight
    states = {rec: state(app, rec) for rec in (first, second)}
    if point == "purge-after-shred":
        assert sorted(st["state"] for st in states.values()) == ["archived", "purged"]
    else:
        assert sorted(st["state"] for st in states.values()) == ["archived", "purging"]
        victim = next(rec for rec, st in states.items() if st["state"] == "purging")
        st = states[victim]
        assert st["tombstone"] is None and st["key_wrapped"] is True and st["media_rows"] > 0
        total = 4 if victim == first else 2
        if point == "purge-after-store-delete":  # halfway: one object gone from every store
            assert len(files_of(dep, victim)) == total - 2
        else:
            assert len(files_of(dep, victim)) == total
            # between mark and shred nobody hears it, although its media still exist
            with pytest.raises(ConflictError, match="is being deleted"):
                read_channel(app, victim, "advisor")
    with app.catalog.session() as s:
        assert s.scalars(select(AuditEntry).where(AuditEntry.action == "retention.disposal")).all() == []

    done = run_cf("retention", "run", "--json", env=login_env("ops"), check=True)
    report = json.loads(done.stdout)
    assert report["pending"] == []
    for rec in (first, second):
        assert files_of(dep, rec) == []
        st = state(app, rec)
        assert st["state"] == "purged" and st["key_wrapped"] is False and st["tombstone"]["reason"] == "retention-expired"
    assert state(app, keep)["state"] == "archived" and len(files_of(dep, keep)) == 4

    # the disposal log names both, even the one finished before the crash
    with app.catalog.session() as s:
        entries = s.scalars(select(AuditEntry).where(AuditEntry.action == "retention.disposal")).all()
        tasks = s.scalars(select(PurgeTask)).all()
    assert len(entries) == 1
    assert sorted(json.loads(entries[0].detail)["ids"]) == sorted([first, second])
    assert {t.state for t in tasks} == {"done"} and {t.disposal_seq for t in tasks} == {entries[0].seq}
    assert app.audit.verify().ok

    again = json.loads(run_cf("retention", "run", "--json", env=login_env("ops"), check=True).stdout)
    assert again["purged"] == [] and again["pending"] == []


@pytest.mark.parametrize("point", ["purge-after-mark#3", "purge-after-store-delete#5"])
def test_purge_killed_in_the_middle_of_a_batch_completes_on_next_run(point, deployment, make_app, run_cf, tmp_path,
                                                                     frozen_clock):
    """Batches grow 1, 2, 4, ...: the third mark is the batch of recordings 4-6; the fifth object
    deleted is the first channel of recording 3, the second of its batch (2-3)."""
    app = make_app(deployment)
    recs = []
    for i in range(6):
        recs.append(ingest(app, tmp_path, f"2019-05-0{i + 1}T10:00:00+00:00", customer=f"K-{i}", name=f"r{i}"))
        frozen_clock.advance(1)  # ids sort by archive time: the purge takes them in this order
    keep = ingest(app, tmp_path, "2025-05-01T10:00:00+00:00", customer="K-9", name="keep")
    make_user(app, "ops", "administrator")

    crashed = run_cf("retention", "run", "--json", env=login_env("ops", CF_TEST_CRASH_AT=point))
    assert crashed.returncode == 99, crashed.stderr
    states = [state(app, rec)["state"] for rec in recs]
    if point.startswith("purge-after-mark"):
        assert states == ["purged"] * 3 + ["purging"] * 3  # the whole batch in flight, media untouched
        assert all(len(files_of(deployment, rec)) == 2 for rec in recs[3:])
    else:
        assert states == ["purged", "purging", "purging"] + ["archived"] * 3
        assert [len(files_of(deployment, rec)) for rec in recs[:4]] == [0, 0, 1, 2]
    for rec in recs:
        if state(app, rec)["state"] == "purging":
            st = state(app, rec)
            assert st["tombstone"] is None and st["key_wrapped"] is True and st["media_rows"] > 0

    done = json.loads(run_cf("retention", "run", "--json", env=login_env("ops"), check=True).stdout)
    assert done["pending"] == []
    for rec in recs:
        st = state(app, rec)
        assert st["state"] == "purged" and st["key_wrapped"] is False and st["tombstone"]["reason"] == "retention-expired"
        assert files_of(deployment, rec) == []
    assert state(app, keep)["state"] == "archived" and len(files_of(deployment, keep)) == 2
    with app.catalog.session() as s:
        (entry,) = s.scalars(select(AuditEntry).where(AuditEntry.action == "retention.disposal")).all()
        purges = s.scalars(select(AuditEntry).where(AuditEntry.action == "recording.purge",
                                                    AuditEntry.outcome == "ok")).all()
    assert sorted(json.loads(entry.detail)["ids"]) == sorted(recs)
    assert sorted(e.target_id for e in purges) == sorted(recs)  # one entry each, none twice
    assert app.audit.verify().ok
