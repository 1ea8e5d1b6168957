"""Issue 17, interruptions: a cut connection, a killed site or archive process, a full disk at the
archive, a changed host key, damaged or forged data. Each ends in a resumed transfer without loss
or duplicates, or in a clear refusal that the FIS reports."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from archive_helpers import login_env, make_user, media_files
from sqlalchemy import func, select
from sync_helpers import CutProxy, cf, receive, record, rewrite_target, stored_objects, sync

from cfcore.archive import read_channel
from cfcore.authority import SYSTEM
from cfcore.db.models import MediaObject, Recording
from cfcore.db.models_sync import SyncBatch, SyncImport, SyncStub
from cfcore.errors import IntegrityError
from cfcore.fis.scan import scan
from cfcore.sync.send import SyncError, SyncRefusedError, resume_offset


def _recordings(app) -> int:
    with app.catalog.session() as s:
        return s.scalar(select(func.count()).select_from(Recording))


def _batch(app):
    with app.catalog.session() as s:
        return s.scalars(select(SyncBatch).order_by(SyncBatch.created_at.desc())).first()


def _alerts(app) -> list[tuple[str, str, str]]:
    report = scan(app, SYSTEM, scrub=False)
    return [(a["rule"], a["severity"], a["summary"]) for a in report.new_alerts]


def _assert_archive_holds(world, site_app, ids, audio) -> None:
    archive = world.archive()
    with archive.catalog.session() as s:
        assert sorted(s.scalars(select(Recording.id))) == sorted(ids)
        media = s.scalar(select(func.count()).select_from(MediaObject))
    assert media == 2 * len(ids), "no duplicate media rows"
    for rid in ids:
        assert read_channel(archive, rid, "customer") == audio[rid]
    assert archive.audit.verify().ok


def test_resume_offset_restarts_at_the_chunk_that_may_have_holes():
    assert resume_offset(None, 1000, 100) == 0
    assert resume_offset(0, 1000, 100) == 0
    assert resume_offset(250, 1000, 100) == 200
    assert resume_offset(300, 1000, 100) == 200  # the last block of chunk 2 may have landed before others
    assert resume_offset(1001, 1000, 100) == 0  # bigger than the object: start again


def test_cut_connection_mid_transfer_resumes_without_loss_or_duplicates(world, tmp_path):
    a = world.site("site-a")
    cfg = world.site_cfgs["site-a"]
    # one object at a time, so that the cut finds complete objects to skip and one to resume
    cfg.write_text(cfg.read_text().replace("[sync]\n", "[sync]\nchunk_size = 32768\nparallel_objects = 1\n", 1))
    a = world.reopen("site-a")
    ids = record(a, tmp_path, 3, seconds=20.0)
    audio = {rid: read_channel(a, rid, "customer") for rid in ids}
    proxy = CutProxy(world.server.port).start()
    try:
        rewrite_target(world, "site-a", port=proxy.port)
        a = world.site("site-a")
        proxy.cut_after = 850_000
        with pytest.raises(SyncError, match="interrupted"):
            sync(a)
        assert proxy.cuts == 1
        batch = _batch(a)
        assert batch.state == "sending"
        part = world.inbox / "site-a" / f"{batch.id}.part" / "objects"
        assert any(p.name.endswith(".cfe.part") for p in part.iterdir()), "cut in the middle of an object"
        assert [e.outcome for e in a.audit.entries(action="sync.send")] == ["error"]

        proxy.cut_after = None
        again = sync(a)
        assert again.state == "sent" and again.batch == batch.id
        assert again.bytes_resumed > 0 and again.bytes_sent < batch.bytes_total, "resumed, not restarted"
        assert again.objects_skipped >= 1
    finally:
        proxy.close()
    got = receive(world.archive())
    assert len(got.imported) == 1 and not got.rejected
    _assert_archive_holds(world, a, ids, audio)
    rewrite_target(world, "site-a")
    done = sync(world.site("site-a"))
    assert done.handed_over[0]["recordings"] == 3 and media_files(cfg) == []


@pytest.mark.parametrize("point", ["sync-mid-object", "sync-before-rename", "sync-after-rename"])
def test_killed_site_process_resumes_the_same_batch(world, tmp_path, point):
    a = world.site("site-a")
    cfg = world.site_cfgs["site-a"]
    make_user(a, "admin", ["administrator"])
    cfg.write_text(cfg.read_text().replace("[sync]\n", "[sync]\nchunk_size = 32768\n", 1))
    ids = record(a, tmp_path, 2, seconds=10.0)
    audio = {rid: read_channel(a, rid, "customer") for rid in ids}
    proc = cf(cfg, "sync", "--no-progress", env={**login_env("admin"), "CF_TEST_CRASH_AT": point})
    assert proc.returncode == 86, proc.stderr
    batch = _batch(a)
    assert batch.state == "sending"
    ok = cf(cfg, "sync", "--json", "--no-progress", env=login_env("admin"))
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert out["batch"] == batch.id and out["state"] == "sent"
    if point == "sync-mid-object":
        assert out["bytes_resumed"] > 0, "the half-uploaded object was resumed"
    got = receive(world.archive())
    assert [i["recordings"] for i in got.imported] == [2]
    _assert_archive_holds(world, a, ids, audio)


@pytest.mark.parametrize("point", ["receive-after-store", "receive-before-receipt"])
def test_killed_archive_process_imports_exactly_once(world, tmp_path, point):
    a = world.site("site-a")
    ids = record(a, tmp_path, 2)
    audio = {rid: read_channel(a, rid, "customer") for rid in ids}
    sync(a)
    archive = world.archive()
    make_user(archive, "admin", ["administrator"])
    proc = cf(world.archive_cfg, "sync", "receive", env={**login_env("admin"), "CF_TEST_CRASH_AT": point})
    assert proc.returncode == 86, proc.stderr
    assert not (world.inbox / "site-a" / "receipts").exists() or not list((world.inbox / "site-a" / "receipts").iterdir())
    ok = cf(world.archive_cfg, "sync", "receive", "--json", env=login_env("admin"))
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert len(out["imported"]) + len(out["repeated"]) == 1
    with archive.catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(SyncImport)) == 1
    _assert_archive_holds(world, a, ids, audio)
    assert len(stored_objects(archive)) == 4
    assert sync(a).handed_over[0]["recordings"] == 2


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)


def test_full_disk_at_the_archive_keeps_the_batch_until_there_is_room(world, tmp_path):
    """The archive's media store lives on a 64 KiB tmpfs: the import fails, is audited and alerted,
    the batch stays in the inbox; with room again the next run imports it."""
    store = world.archive_cfg.parent / "media"
    _mount_tmpfs(store, "64k")
    try:
        a = world.site("site-a")
        ids = record(a, tmp_path, 2, seconds=5.0)
        audio = {rid: read_channel(a, rid, "customer") for rid in ids}
        sync(a)
        archive = world.archive()
        got = receive(archive)
        assert got.imported == [] and len(got.failed) == 1 and not got.rejected
        assert [e.outcome for e in archive.audit.entries(action="sync.import")] == ["error"]
        assert any(r == "sync-problem" and "failed" in s for r, _, s in _alerts(archive))
        assert _recordings(archive) == 0 and stored_objects(archive) == []
        assert sync(a).state == "sent", "no receipt: the site keeps everything"
        assert len(media_files(world.site_cfgs["site-a"])) == 4
        subprocess.run(["mount", "-o", "remount,size=8m", str(store)], check=True)
        got = receive(archive)
        assert len(got.imported) == 1
        _assert_archive_holds(world, a, ids, audio)
    finally:
        subprocess.run(["umount", "-l", str(store)], check=False)


def test_full_inbox_disk_interrupts_the_upload_and_it_resumes(world, tmp_path):
    _mount_tmpfs(world.inbox, "96k")
    try:
        a = world.site("site-a")
        ids = record(a, tmp_path, 2, seconds=5.0)
        audio = {rid: read_channel(a, rid, "customer") for rid in ids}
        with pytest.raises(SyncError):
            sync(a)
        err = [e for e in a.audit.entries(action="sync.send")][-1]
        assert err.outcome == "error" and ("full" in err.detail["error"] or "space" in err.detail["error"].lower())
        subprocess.run(["mount", "-o", "remount,size=8m", str(world.inbox)], check=True)
        assert sync(a).state == "sent"
        receive(world.archive())
        _assert_archive_holds(world, a, ids, audio)
    finally:
        subprocess.run(["umount", "-l", str(world.inbox)], check=False)


def test_changed_host_key_is_refused_and_alerted(world, tmp_path):
    import asyncssh

    a = world.site("site-a")
    record(a, tmp_path, 1)
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    rewrite_target(world, "site-a", host_key=other)
    a = world.site("site-a")
    with pytest.raises(SyncRefusedError, match="host key"):
        sync(a)
    assert [e.outcome for e in a.audit.entries(action="sync.refused")] == ["refused"]
    alerts = _alerts(a)
    assert any(r == "sync-problem" and sev == "critical" and "host key" in s for r, sev, s in alerts), alerts
    assert not (world.inbox / "site-a").exists(), "not one byte went to an unverified host"
    rewrite_target(world, "site-a")
    assert sync(world.site("site-a")).state == "sent"


def test_unknown_client_key_is_refused(world, tmp_path):
    import asyncssh

    a = world.site("site-a")
    record(a, tmp_path, 1)
    key = asyncssh.generate_private_key("ssh-ed25519")
    key.write_private_key(str(world.client_keys["site-a"]))
    with pytest.raises(SyncRefusedError, match="client key"):
        sync(a)


def test_damaged_object_is_rejected_and_sent_again_in_a_new_batch(world, tmp_path):
    a = world.site("site-a")
    ids = record(a, tmp_path, 2)
    audio = {rid: read_channel(a, rid, "customer") for rid in ids}
    first = sync(a)
    obj = next((world.inbox / "site-a" / first.batch / "objects").glob("*.customer.cfe"))
    raw = bytearray(obj.read_bytes())
    raw[-20] ^= 1  # a flipped bit inside the last GCM segment: same size
    obj.write_bytes(bytes(raw))
    archive = world.archive()
    got = receive(archive)
    assert len(got.rejected) == 1 and _recordings(archive) == 0
    assert any(r == "sync-problem" and "rejected" in s for r, _, s in _alerts(archive))
    r = sync(a)
    assert r.rejected and r.rejected[0]["batch"] == first.batch
    assert _recordings(a) == 2 and len(media_files(world.site_cfgs["site-a"])) == 4, "nothing deleted"
    second = sync(a)
    assert second.batch != first.batch and second.recordings == 2
    receive(archive)
    _assert_archive_holds(world, a, ids, audio)
    assert sync(a).handed_over


def test_forged_receipt_deletes_nothing(world, tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from cfcore.sync import manifest as mf

    a = world.site("site-a")
    [rid] = record(a, tmp_path, 1)
    sent = sync(a)
    with a.catalog.session() as s:
        b = s.get(SyncBatch, sent.batch)
        sha = b.manifest_sha256
    with a.catalog.session() as s:
        shas = sorted(m.sha256 for m in s.scalars(select(MediaObject)))
    body = mf.canonical_json({"format": 1, "status": "accepted", "site": "site-a", "batch": sent.batch,
                              "manifest_sha256": sha, "archive": "central", "recordings": {rid: shas}}).decode()
    sig = Ed25519PrivateKey.generate().sign((mf.RECEIPT_CONTEXT + body).encode()).hex()
    path = world.inbox / "site-a" / "receipts" / f"{sent.batch}.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(mf.canonical_json({"body": body, "signature": sig}))
    with pytest.raises(IntegrityError, match="signature"):
        sync(a)
    assert _recordings(a) == 1 and len(media_files(world.site_cfgs["site-a"])) == 2
    with a.catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(SyncStub)) == 0
    assert any(r == "sync-problem" and sev == "critical" for r, sev, _ in _alerts(a))


def test_site_not_synced_for_n_nights_raises_an_alert(world, tmp_path, frozen_clock):
    from datetime import timedelta

    from cfcore.sync.overdue import check_overdue

    a = world.site("site-a")
    record(a, tmp_path, 1)
    sync(a)
    archive = world.archive()
    receive(archive)  # site-a imported now; site-b never
    archive.audit.record(SYSTEM, "test.start", "thing", None)
    assert check_overdue(archive) == []
    frozen_clock.advance(timedelta(days=3))
    over = check_overdue(archive)
    assert sorted(o["site"] for o in over) == ["site-a", "site-b"]
    assert len(check_overdue(archive)) == 2
    assert len(list(archive.audit.entries(action="sync.overdue"))) == 2, "once per site and day"
    alerts = _alerts(archive)
    assert sorted(s.split("'")[1] for r, _, s in alerts if r == "sync-problem" and "nights" in s) == ["site-a", "site-b"]


def test_links_in_the_inbox_are_refused_not_followed(world, tmp_path):
    """A site can create links over SFTP; the archive never follows one (to another site's batch
    or to a file of the archive's own)."""
    a, b = world.site("site-a"), world.site("site-b")
    record(a, tmp_path, 1)
    [rid_b] = record(b, tmp_path, 1)
    sent_a, sent_b = sync(a), sync(b)
    # site-a's batch: an object replaced by a link to site-b's object
    obj = next((world.inbox / "site-a" / sent_a.batch / "objects").glob("*.advisor.cfe"))
    obj.unlink()
    obj.symlink_to(next((world.inbox / "site-b" / sent_b.batch / "objects").glob("*.advisor.cfe")))
    # and a batch name under site-a that links to site-b's whole batch
    fake = "f" * 32
    (world.inbox / "site-a" / fake).symlink_to(world.inbox / "site-b" / sent_b.batch)
    archive = world.archive()
    got = receive(archive)
    problems = sorted(r["problem"] for r in got.rejected if r["site"] == "site-a")
    assert any("symbolic link" in p for p in problems) and len(problems) == 2
    assert [i["site"] for i in got.imported] == ["site-b"]
    assert not (world.inbox / "site-a" / fake).exists()
    with archive.catalog.session() as s:
        assert list(s.scalars(select(Recording.id))) == [rid_b]
