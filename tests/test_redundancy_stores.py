"""Redundant copies across stores: a local store and two S3 buckets (moto over real HTTP).

An ingest is confirmed only with ``required_copies`` copies, reads fall back to a healthy copy and
report the broken one, ``cf store check`` / ``cf store repair`` find and re-create copies.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError
from cf_store_s3.store import ceil_seconds
from s3_helpers import S3_ENV, FaultProxy, s3_toml
from sqlalchemy import func, select

from cfcore.archive import WavView, read_channel, row_digest
from cfcore.authority import SYSTEM
from cfcore.db.models import AuditEntry, MediaObject, Recording
from cfcore.errors import ConfigError, StoreError
from cfcore.ingest import ingest_wav
from cfcore.storage import check_copies, repair_copies
from cfcore.wav import write_wav
from hookspecs import hookimpl


def configure(deployment: Path, stores: list[str], required: int, sections: str) -> None:
    text = deployment.read_text()
    old = 'stores = ["primary"]\nrequired_copies = 1'
    assert old in text
    text = text.replace(old, f"stores = {json.dumps(stores)}\nrequired_copies = {required}")
    deployment.write_text(text + "\n" + sections)


def ingest(app, tmp_path: Path) -> tuple[str, list[bytes]]:
    """A two-sided call with consent from the start: MiFID retention, both channels kept."""
    import os

    chans = [os.urandom(16000), os.urandom(16000)]  # 1 s of PCM16 per channel
    wav = tmp_path / f"call-{len(list(tmp_path.glob('call-*')))}.wav"
    write_wav(wav, chans, 8000)
    rid = ingest_wav(app, wav, advisor_id="A1", customer_ids=["K1"], consent_at=0.0)
    return rid, chans


def recording(app, rid: str) -> Recording:
    from sqlalchemy.orm import selectinload

    with app.catalog.session() as s:
        return s.scalars(select(Recording).where(Recording.id == rid).options(selectinload(Recording.media))).one()


def digest(app, rid: str) -> str:
    with app.catalog.session() as s:
        return row_digest(s.get(Recording, rid))


def keys_of(app, rid: str) -> dict[str, str]:
    return {m.channel: m.key for m in recording(app, rid).media}


def audit(app, action: str) -> list:
    return list(app.audit.entries(action=action))


def local_file(deployment: Path, key: str) -> Path:
    return deployment.parent / "media" / key


def flip_byte(data: bytes, at: int = 100) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


class Listener:
    """A plugin that listens on ``cf_store_copy_broken`` (as the FIS or a pager would)."""

    def __init__(self) -> None:
        self.events: list = []

    @hookimpl
    def cf_store_copy_broken(self, event):
        self.events.append(event)


@pytest.fixture
def three(deployment, moto_s3, s3_env):
    """local ``primary`` + S3 ``cloud_a`` + S3 ``cloud_b``, every copy required."""
    a, b = moto_s3.make_bucket(), moto_s3.make_bucket()
    configure(deployment, ["primary", "cloud_a", "cloud_b"], 3,
              s3_toml("cloud_a", moto_s3.endpoint, a) + s3_toml("cloud_b", moto_s3.endpoint, b))
    return SimpleNamespace(buckets={"cloud_a": a, "cloud_b": b}, s3=moto_s3, raw=moto_s3.client())


def test_ingest_confirms_every_copy_locked_until_retention_end(three, deployment, make_app, tmp_path):
    # moto enforces Object Lock on its own, real clock: the call is archived at the real time, so
    # the five-year lock is still running there on any date
    from datetime import UTC, datetime

    from cfcore.clock import FrozenClock

    app = make_app(deployment, clock=FrozenClock(datetime.now(UTC).replace(microsecond=0)))
    rid, chans = ingest(app, tmp_path)
    rec = recording(app, rid)
    assert rec.retention_until is not None  # MiFID: five years after the call
    assert sorted((m.channel, m.store) for m in rec.media) == sorted(
        (c, s) for c in ("advisor", "customer") for s in ("primary", "cloud_a", "cloud_b"))
    for key in {m.key for m in rec.media}:
        for store, bucket in three.buckets.items():
            head = three.raw.head_object(Bucket=bucket, Key=key)
            assert head["ObjectLockMode"] == "COMPLIANCE"
            assert head["ObjectLockRetainUntilDate"] == ceil_seconds(rec.retention_until)
            assert app.stores.stores[store].stat(key).retain_until == ceil_seconds(rec.retention_until)
            with pytest.raises(ClientError) as err:  # the S3 server itself refuses
                three.raw.delete_object(Bucket=bucket, Key=key, VersionId=head["VersionId"])
            assert err.value.response["Error"]["Code"] == "AccessDenied"
    assert read_channel(app, rid, "advisor") == chans[0]
    assert check_copies(app, SYSTEM).ok
    assert audit(app, "store.lock") == []


def test_read_falls_back_to_a_healthy_copy_and_reports_the_broken_ones(three, deployment, make_app, tmp_path):
    app = make_app(deployment)
    listener = Listener()
    app.pm.register(listener, "test-listener")
    rid, chans = ingest(app, tmp_path)
    key = keys_of(app, rid)["advisor"]
    path = local_file(deployment, key)
    path.write_bytes(flip_byte(path.read_bytes()))                         # primary: one byte flipped
    three.raw.delete_object(Bucket=three.buckets["cloud_a"], Key=key)      # cloud_a: object deleted

    assert read_channel(app, rid, "advisor") == chans[0]                   # served by cloud_b

    entries = audit(app, "store.copy_broken")
    found = {(e.detail["store"], e.detail["problem"]) for e in entries}
    assert found == {("primary", "damaged"), ("cloud_a", "missing")}
    for e in entries:
        assert e.target_kind == "store" and e.target_id == e.detail["store"] and e.outcome == "error"
        assert e.detail["key"] == key and e.detail["recording_id"] == rid and e.detail["healthy"] == ["cloud_b"]
    assert {(ev.store, ev.problem, ev.audit_seq) for ev in listener.events} == {
        (e.detail["store"], e.detail["problem"], e.seq) for e in entries}
    # reading again (and streaming by ranges) works and does not flood the audit trail
    assert read_channel(app, rid, "advisor") == chans[0]
    view = WavView(app, rid)
    assert len(view.read(0, view.size)) == view.size
    assert len(audit(app, "store.copy_broken")) == 2


def test_cf_store_check_and_repair_restore_broken_copies(three, deployment, make_app, tmp_path, run_cf,
                                                         frozen_clock):
    # the repairs rely on the copies' Object Lock, which moto keeps on its real clock: the test's
    # clock (the app's and, through CF_NOW, the cf subprocess's) is set to the real time
    from datetime import UTC, datetime

    frozen_clock.set(datetime.now(UTC).replace(microsecond=0))
    app = make_app(deployment)
    rid, chans = ingest(app, tmp_path)
    keys = keys_of(app, rid)
    rec = recording(app, rid)
    sha = {m.key: m.sha256 for m in rec.media}
    # primary: a flipped byte; cloud_a: a new version with a flipped byte put over the locked one;
    # cloud_b: the object deleted (a delete marker over the locked version)
    path = local_file(deployment, keys["customer"])
    path.write_bytes(flip_byte(path.read_bytes()))
    good = three.raw.get_object(Bucket=three.buckets["cloud_a"], Key=keys["advisor"])["Body"].read()
    three.raw.put_object(Bucket=three.buckets["cloud_a"], Key=keys["advisor"], Body=flip_byte(good))
    three.raw.delete_object(Bucket=three.buckets["cloud_b"], Key=keys["customer"])

    from archive_helpers import login_env, make_user

    admin = make_user(app, "admin", ["administrator"])
    env = {**S3_ENV, **login_env("admin")}
    out = run_cf("store", "check", "--json", env=env)
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    assert {(p["store"], p["key"], p["status"]) for p in report["problems"]} == {
        ("primary", keys["customer"], "damaged"), ("cloud_a", keys["advisor"], "damaged"),
        ("cloud_b", keys["customer"], "missing")}
    assert report["objects"] == 2 and report["copies"] == 6

    out = run_cf("store", "repair", "--json", env=env)
    assert out.returncode == 0, out.stderr
    repaired = json.loads(out.stdout)["repaired"]
    assert {(r["store"], r["key"], r["problem"]) for r in repaired} == {
        ("primary", keys["customer"], "damaged"), ("cloud_a", keys["advisor"], "damaged"),
        ("cloud_b", keys["customer"], "missing")}
    # the local file is re-created from a healthy copy; in S3 the locked original reappears
    assert {r["store"]: r["how"] for r in repaired} == {"primary": "recreated", "cloud_a": "restored",
                                                         "cloud_b": "restored"}

    for key in keys.values():
        copies = {name: store.get(key) for name, store in app.stores.stores.items()}
        assert len(set(copies.values())) == 1  # byte-identical everywhere
        assert hashlib.sha256(copies["primary"]).hexdigest() == sha[key]
        for store in ("cloud_a", "cloud_b"):  # repairs keep the object's retain-until
            assert app.stores.stores[store].stat(key).retain_until == ceil_seconds(rec.retention_until)
    assert run_cf("store", "check", env=env).returncode == 0
    assert read_channel(app, rid, "customer") == chans[1]
    (entry,) = audit(app, "store.repair")
    assert entry.target_kind == "recording" and entry.target_id == rid and entry.user == admin.actor.username
    assert entry.detail["row_digest"] == digest(app, rid)
    assert app.audit.verify().ok
    checks = audit(app, "store.check")
    assert [c.outcome for c in checks] == ["problems", "ok"]


def test_store_down_at_ingest_then_repair_adds_the_copy(deployment, make_app, moto_s3, s3_env, fault_proxy, tmp_path):
    a, b = moto_s3.make_bucket(), moto_s3.make_bucket()
    configure(deployment, ["primary", "cloud_a", "cloud_b"], 2,
              s3_toml("cloud_a", moto_s3.endpoint, a) + s3_toml("cloud_b", fault_proxy.endpoint, b))
    fault_proxy.add("refuse", times=100_000)  # cloud_b is down
    app = make_app(deployment)
    rid, chans = ingest(app, tmp_path)
    rec = recording(app, rid)
    assert {m.store for m in rec.media} == {"primary", "cloud_a"}
    assert [e.outcome for e in audit(app, "store.lock")] == ["error"]  # cloud_b could not be locked
    fault_proxy.clear()  # cloud_b is back

    report = check_copies(app, SYSTEM)
    assert {(p.store, p.status, p.catalogued) for p in report.problems} == {("cloud_b", "missing", False)}
    assert audit(app, "store.copy_broken") == []  # never written there: not broken, not yet replicated

    result = repair_copies(app, SYSTEM)
    assert result.ok and {(r["store"], r["how"]) for r in result.repaired} == {("cloud_b", "recreated")}
    rec = recording(app, rid)
    assert sorted(m.store for m in rec.media) == sorted(["primary", "cloud_a", "cloud_b"] * 2)
    for m in rec.media:
        if m.store == "cloud_b":
            head = moto_s3.client().head_object(Bucket=b, Key=m.key)
            assert head["ObjectLockRetainUntilDate"] == ceil_seconds(rec.retention_until)
            assert hashlib.sha256(app.stores.stores["cloud_b"].get(m.key)).hexdigest() == m.sha256
    assert check_copies(app, SYSTEM).ok
    (entry,) = audit(app, "store.repair")
    assert entry.detail["row_digest"] == digest(app, rid)
    from cfcore.fis.scrub import scrub_catalog_rows

    assert scrub_catalog_rows(app)[1] == []  # the FIS accepts the new catalog rows


def test_required_copies_not_met_fails_cleanly(deployment, make_app, moto_s3, s3_env, free_port, tmp_path):
    a = moto_s3.make_bucket()
    down = f"http://127.0.0.1:{free_port}"  # nothing listens there
    configure(deployment, ["primary", "cloud_a", "cloud_b"], 3,
              s3_toml("cloud_a", moto_s3.endpoint, a) + s3_toml("cloud_b", down, "cf-unreachable"))
    app = make_app(deployment)
    with pytest.raises(StoreError, match="required copies"):
        ingest(app, tmp_path)
    with app.catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(Recording)) == 0
        assert s.scalar(select(func.count()).select_from(MediaObject)) == 0
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "recording.archive")) == 0
    assert list(app.stores.stores["primary"].keys()) == []
    page = moto_s3.client().list_object_versions(Bucket=a)
    assert page.get("Versions", []) == [] and page.get("DeleteMarkers", []) == []
    assert moto_s3.pending_uploads(a) == []


def test_lock_extends_everywhere_and_never_shortens(three, deployment, make_app, tmp_path):
    from datetime import timedelta

    app = make_app(deployment)
    rid, _ = ingest(app, tmp_path)
    rec = recording(app, rid)
    key = keys_of(app, rid)["advisor"]
    later = ceil_seconds(rec.retention_until) + timedelta(days=730)
    app.stores.lock(key, later, True)
    for store, bucket in three.buckets.items():
        head = three.raw.head_object(Bucket=bucket, Key=key)
        assert head["ObjectLockRetainUntilDate"] == later and head["ObjectLockLegalHoldStatus"] == "ON"
    with pytest.raises(StoreError, match="only be extended"):
        app.stores.lock(key, rec.retention_until, None)
    assert app.stores.stores["cloud_a"].stat(key).retain_until == later


def test_bucket_without_object_lock_refused_at_open(deployment, make_app, moto_s3, s3_env):
    plain = moto_s3.make_bucket(lock=False)
    configure(deployment, ["primary", "cloud"], 1, s3_toml("cloud", moto_s3.endpoint, plain))
    app = make_app(deployment)
    with pytest.raises(ConfigError, match=r"\[stores.cloud\].*versioning is not enabled"):
        app.stores  # noqa: B018


def test_fault_proxy_refuse_is_a_down_store(moto_s3):
    """The helper itself: ``refuse`` drops connections, ``clear`` brings the server back."""
    proxy = FaultProxy(moto_s3.port).start()
    try:
        proxy.add("refuse", times=10)
        c = moto_s3.client(endpoint=proxy.endpoint, connect_timeout=1, read_timeout=1)
        with pytest.raises(Exception):
            c.list_buckets()
        proxy.clear()
        assert "Buckets" in c.list_buckets()
    finally:
        proxy.stop()


def test_store_commands_need_the_store_repair_permission(deployment, make_app, run_cf):
    from archive_helpers import login_env, make_user

    app = make_app(deployment)
    make_user(app, "audrey", ["auditor"])
    make_user(app, "root", ["administrator"])
    for cmd in ("check", "repair"):
        out = run_cf("store", cmd, env=login_env("audrey"))
        assert out.returncode == 5 and "may not store.repair" in out.stderr
    out = run_cf("store", "check", "--json", env=login_env("root"))
    assert out.returncode == 0 and json.loads(out.stdout)["ok"] is True
    denied = [e for e in audit(app, "store.repair") if e.outcome == "denied"]
    assert [e.user for e in denied] == ["audrey", "audrey"]


def test_fis_scrub_reports_a_down_store_once_and_checks_the_others(deployment, make_app, moto_s3, s3_env,
                                                                    fault_proxy, tmp_path):
    from cfcore.fis.scrub import scrub_objects, scrub_orphans

    a = moto_s3.make_bucket()
    configure(deployment, ["primary", "cloud"], 2, s3_toml("cloud", fault_proxy.endpoint, a))
    app = make_app(deployment)
    ids = [ingest(app, tmp_path)[0] for _ in range(2)]
    local_file(deployment, keys_of(app, ids[0])["advisor"]).write_bytes(b"tampered")
    fault_proxy.add("refuse", times=100_000)  # the cloud store goes down
    summary, findings = scrub_objects(app)
    rules = sorted(f.rule for f in findings)
    assert rules == ["scrub.object-changed", "scrub.store-unavailable"]  # one per down store, not per object
    assert summary["stores_down"] == ["cloud"] and summary["checked"] == 5  # 4 local + the first cloud try
    _, orphan_findings = scrub_orphans(app)
    assert [f.rule for f in orphan_findings] == ["scrub.store-unavailable"]


def test_streaming_by_ranges_falls_back_from_a_damaged_first_copy(three, deployment, make_app, tmp_path):
    import os

    from cfcore.wav import interleave

    app = make_app(deployment)
    chans = [os.urandom(160000), os.urandom(160000)]  # 10 s per channel: three 64 KiB segments each
    write_wav(tmp_path / "long.wav", chans, 8000)
    rid = ingest_wav(app, tmp_path / "long.wav", advisor_id="A1", customer_ids=["K1"], consent_at=0.0)
    key = keys_of(app, rid)["advisor"]
    path = local_file(deployment, key)
    path.write_bytes(flip_byte(path.read_bytes(), at=len(path.read_bytes()) - 50))  # primary: last segment
    view = WavView(app, rid)                                   # the header still reads fine from primary
    expected = view.header + interleave(chans)
    middle = view.read(1000, 5000)                             # a range in an intact segment of primary
    assert middle == expected[1000:5000]
    assert audit(app, "store.copy_broken") == []
    tail = view.read(view.size - 4000, view.size)              # the damaged segment: served by cloud_a
    assert tail == expected[-4000:]
    (entry,) = audit(app, "store.copy_broken")
    assert (entry.detail["store"], entry.detail["problem"], entry.detail["healthy"]) == ("primary", "damaged",
                                                                                       ["cloud_a"])
    assert view.read(0, view.size) == expected                 # and the rest of the stream keeps to cloud_a
