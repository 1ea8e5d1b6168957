"""Issue 17: two sites hand their recordings to one archive over SFTP (in-process asyncssh server).

Each test builds three deployments (two SQLite sites, the archive on the test catalog: SQLite or
PostgreSQL) and a real SSH server in front of the archive's inbox.
"""

from __future__ import annotations

import hashlib

import pytest
from archive_helpers import media_files
from sqlalchemy import func, select
from sync_helpers import receive, record, sync

from cfcore.archive import read_channel, row_digest
from cfcore.audit import GENESIS
from cfcore.authority import SYSTEM
from cfcore.db.models import DataKey, Recording
from cfcore.db.models_sync import ArchiveWrap, SiteAuditEntry, SyncStub
from cfcore.errors import ConflictError, NotFound
from cfcore.sync.site_audit import verify_site_chain


def _count(app, model):
    with app.catalog.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_two_sites_hand_over_to_one_archive_and_keep_only_stubs(world, tmp_path):
    a, b = world.site("site-a"), world.site("site-b")
    ids_a = record(a, tmp_path, 3)
    ids_b = record(b, tmp_path, 2)
    audio = {rid: read_channel(a, rid, "customer") for rid in ids_a}  # the site can play back before hand-over
    assert _count(a, ArchiveWrap) == 3

    ra, rb = sync(a), sync(b)
    assert (ra.state, ra.recordings, ra.objects_sent) == ("sent", 3, 6)
    assert (rb.state, rb.recordings, rb.objects_sent) == ("sent", 2, 4)
    assert media_files(world.site_cfgs["site-a"]), "nothing is deleted before the receipt"

    archive = world.archive()
    got = receive(archive)
    assert sorted(i["site"] for i in got.imported) == ["site-a", "site-b"]
    assert not got.rejected and not got.failed

    # the archive holds the recordings under their ids, playable with its own key ring
    for rid in ids_a:
        assert read_channel(archive, rid, "customer") == audio[rid]
    with archive.catalog.session() as s:
        recs = {r.id: r for r in s.scalars(select(Recording))}
    assert set(recs) == set(ids_a) | set(ids_b)
    assert {recs[i].site for i in ids_b} == {"site-b"}
    assert all(r.retention_until is not None for r in recs.values()), "the archive's retention rules decide"
    assert archive.audit.verify().ok

    # the sites collect the receipts: media and keys gone, stubs left
    ha, hb = sync(a), sync(b)
    assert ha.handed_over and ha.handed_over[0]["recordings"] == 3
    assert hb.handed_over and hb.handed_over[0]["recordings"] == 2
    assert media_files(world.site_cfgs["site-a"]) == []
    for app, ids in ((a, ids_a), (b, ids_b)):
        assert _count(app, Recording) == 0 and _count(app, DataKey) == 0 and _count(app, ArchiveWrap) == 0
        with app.catalog.session() as s:
            stubs = {st.recording_id: st for st in s.scalars(select(SyncStub))}
        assert set(stubs) == set(ids)
        assert all(st.archive == "central" and len(st.receipt_sha256) == 64 for st in stubs.values())
        with pytest.raises(NotFound):
            read_channel(app, ids[0], "advisor")
        assert app.audit.verify().ok


def test_site_audit_trail_stays_verifiable_inside_the_archive(world, tmp_path):
    a = world.site("site-a")
    record(a, tmp_path, 1)
    sync(a)
    archive = world.archive()
    receive(archive)
    sync(a)  # hand-over: new site entries (sync.handover) travel with the next batch
    record(a, tmp_path, 1)
    sync(a)
    receive(archive)
    key = archive.config.section("sync.sites.site-a")["signing_key"]
    res = verify_site_chain(archive, "site-a", key)
    site_head = a.audit.verify()
    assert res.ok, res.problem
    with archive.catalog.session() as s:
        rows = list(s.scalars(select(SiteAuditEntry).where(SiteAuditEntry.site == "site-a").order_by(SiteAuditEntry.seq)))
    assert rows[0].prev_hash == GENESIS and rows[0].seq == 1
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    from cfcore.db.models import AuditEntry

    with a.catalog.session() as s:
        site_rows = {e.seq: (e.hash, e.prev_hash, e.detail, e.action) for e in s.scalars(select(AuditEntry))}
    assert all(site_rows[r.seq] == (r.hash, r.prev_hash, r.detail, r.action) for r in rows), "imported as written"
    assert "sync.handover" in {r.action for r in rows}
    assert site_head.checked >= len(rows)

    # a changed imported entry is found
    with archive.catalog.session() as s:
        row = s.scalars(select(SiteAuditEntry).where(SiteAuditEntry.site == "site-a", SiteAuditEntry.seq == 2)).one()
        row.user = "mallory"
    res = verify_site_chain(archive, "site-a", key)
    assert not res.ok and res.problem.startswith("entries 2..") and "changed" in res.problem
    with archive.catalog.session() as s:
        row = s.scalars(select(SiteAuditEntry).where(SiteAuditEntry.site == "site-a", SiteAuditEntry.seq == 2)).one()
        s.delete(row)
    res = verify_site_chain(archive, "site-a", key)
    assert not res.ok and "entry 2 is missing" in res.problem


def test_import_audits_each_recording_with_its_row_digest(world, tmp_path):
    a = world.site("site-a")
    [rid] = record(a, tmp_path, 1)
    sync(a)
    archive = world.archive()
    receive(archive)
    entries = list(archive.audit.entries(action="recording.import", target_id=rid))
    assert len(entries) == 1
    with archive.catalog.session() as s:
        from cfcore.archive import get_recording

        assert entries[0].detail["row_digest"] == row_digest(get_recording(s, rid))
    from cfcore.fis.scan import scan

    # the archive's scrub (objects, keys, row digests) finds the imported recording in order
    assert [a["summary"] for a in scan(archive, SYSTEM).new_alerts] == []


def test_advisor_only_site_keeps_no_key_of_its_own(world, tmp_path):
    cfg = world.site_cfgs["site-b"]
    cfg.write_text(cfg.read_text().replace('[sync]\n', '[sync]\nlocal_key = "none"\n', 1))
    b = world.reopen("site-b")
    [rid] = record(b, tmp_path, 1)
    assert _count(b, DataKey) == 0 and _count(b, ArchiveWrap) == 1
    with pytest.raises(ConflictError, match="keeps no key"):
        read_channel(b, rid, "advisor")
    from cfcore.fis.scan import scan

    assert [a["summary"] for a in scan(b, SYSTEM).new_alerts] == [], "no false 'has no data key' from the scrub"
    sync(b)
    archive = world.archive()
    receive(archive)
    plain = read_channel(archive, rid, "advisor")
    with archive.catalog.session() as s:
        from cfcore.archive import get_recording

        rec = get_recording(s, rid)
        assert hashlib.sha256(plain).hexdigest() == next(m.plain_sha256 for m in rec.media if m.channel == "advisor")


def test_a_second_receive_and_a_second_sync_change_nothing(world, tmp_path):
    a = world.site("site-a")
    record(a, tmp_path, 2)
    sync(a)
    archive = world.archive()
    first = receive(archive)
    again = receive(archive)
    assert len(first.imported) == 1 and again.imported == [] and again.repeated == []
    sync(a)
    nothing = sync(a)
    assert nothing.batch is not None  # the hand-over entries travel in a batch of audit entries only
    assert nothing.recordings == 0
    receive(archive)
    with archive.catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(Recording)) == 2


def _metrics(app):
    from prometheus_client.parser import text_string_to_metric_families

    from cfcore.metrics import render

    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(render(app).decode()) for s in fam.samples}


def test_hand_over_figures_in_metrics_of_site_and_archive(world, tmp_path):
    """Issue 17's metric: what moved, per site, scraped from ``/metrics``' text."""
    a = world.site("site-a")
    record(a, tmp_path, 2)
    m = _metrics(a)
    assert m[("callfort_sync_waiting_recordings", ())] == 2
    assert m[("callfort_sync_handed_over_recordings_total", ())] == 0
    assert m[("callfort_sync_last_handover_timestamp_seconds", ())] == 0
    sync(a)
    assert _metrics(a)[("callfort_sync_batches", (("state", "sent"),))] == 1
    archive = world.archive()
    receive(archive)
    m = _metrics(archive)
    assert m[("callfort_sync_imported_recordings_total", (("site", "site-a"),))] == 2
    assert m[("callfort_sync_imported_bytes_total", (("site", "site-a"),))] > 8000
    assert m[("callfort_sync_last_import_timestamp_seconds", (("site", "site-a"),))] > 0
    assert not any(name.startswith("callfort_sync_waiting") for name, _ in m)  # a site's figure
    sync(a)
    m = _metrics(a)
    assert m[("callfort_sync_waiting_recordings", ())] == 0 and m[("callfort_sync_handed_over_recordings_total", ())] == 2
    assert m[("callfort_sync_batches", (("state", "done"),))] == 1
    assert m[("callfort_sync_last_handover_timestamp_seconds", ())] > 0
