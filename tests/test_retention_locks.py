"""Stores that lock objects (S3 Object Lock on a moto server): the purge waits for a lock, a
refused delete leaves the recording pending and retried, nothing is tombstoned while media still
exists; an erasure crypto-shreds at once; extensions extend the lock.

moto keeps Object Lock on its own, real clock: where a lock's end matters, the app's frozen clock
is set to the real time and the calls are dated from it, so the tests pass on any date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from retention_helpers import files_of, four_eyes, ingest, make_user, media_keys, state
from s3_helpers import s3_toml

from cfcore.archive import read_channel
from cfcore.clock import FrozenClock
from cfcore.errors import ConflictError
from cfcore.retention import run_purge


def _with_cloud(deployment, moto_s3, s3_bucket, extra=""):
    text = deployment.read_text().replace('stores = ["primary"]\nrequired_copies = 1',
                                          'stores = ["primary", "cloud"]\nrequired_copies = 2')
    deployment.write_text(text + "\n" + s3_toml("cloud", moto_s3.endpoint, s3_bucket) + extra)
    return deployment


def real_now() -> datetime:
    """moto's clock (the real one), to the second."""
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def s3app(deployment, make_app, moto_s3, s3_bucket, s3_env):
    """The app on the real time (moto checks Object Lock against the real clock)."""
    return make_app(_with_cloud(deployment, moto_s3, s3_bucket), clock=FrozenClock(real_now()))


def test_store_hold_defers_purge_and_pending_erasure_is_retried(deployment, make_app, moto_s3, s3_bucket,
                                                                s3_env, tmp_path):
    # advisor-only recordings are due at the end of the call here, so ingest sets no Object Lock
    # retention; the bucket's owner puts S3 legal holds instead, which CallFort cannot lift
    app = make_app(_with_cloud(deployment, moto_s3, s3_bucket, "\n[retention]\nadvisor_only_days = 0\n"))
    expired = ingest(app, tmp_path, "2026-08-01T10:00:00+00:00", two_sided=False, customer="K-5")
    erased = ingest(app, tmp_path, "2026-11-20T10:00:00+00:00", two_sided=False, customer="K-5")
    (key,) = media_keys(app, expired)
    (ekey,) = media_keys(app, erased)
    cloud = app.stores.stores["cloud"]
    assert cloud.stat(key).retain_until is None and files_of(deployment, expired)
    cloud.lock_until(key, None, legal_hold=True)
    cloud.lock_until(ekey, None, legal_hold=True)

    # the erasure meets the store's hold: key destroyed at once, media deletion pending
    dpo, compliance = make_user(app, "dora", "dpo"), make_user(app, "carla", "compliance")
    result = four_eyes(app, dpo, compliance, "recording.erase", erased, {"reason": "request 2026-11"})
    assert result["state"] == "purging" and "locked" in result["pending"]
    st = state(app, erased)
    assert st["state"] == "purging" and st["tombstone"] is None and st["key_wrapped"] is False
    assert moto_s3.versions(s3_bucket, ekey)  # the held copy is still there: no tombstone yet
    assert files_of(deployment, erased) == []  # the local copy went already

    report = run_purge(app)
    assert report.purged == [] and [x["id"] for x in report.locked] == [expired]
    assert "legal hold" in report.locked[0]["locks"][0]
    assert [p["id"] for p in report.pending] == [erased]  # retried, still refused
    assert state(app, expired)["state"] == "archived"
    assert read_channel(app, expired, "advisor")  # untouched and readable while the store holds it
    assert state(app, erased)["tombstone"] is None

    cloud.lock_until(key, None, legal_hold=False)
    cloud.lock_until(ekey, None, legal_hold=False)
    done = run_purge(app)
    assert sorted(p["id"] for p in done.purged) == sorted([expired, erased]) and done.pending == []
    for rec, reason in ((expired, "retention-expired"), (erased, "art17-erasure")):
        st = state(app, rec)
        assert st["state"] == "purged" and st["key_wrapped"] is False and st["tombstone"]["reason"] == reason
        assert files_of(deployment, rec) == []
    assert moto_s3.versions(s3_bucket, key) == [] and moto_s3.versions(s3_bucket, ekey) == []


def test_erasure_under_object_lock_shreds_at_once(s3app, deployment, moto_s3, s3_bucket, tmp_path):
    app = s3app
    started = app.clock.now() - timedelta(days=8)
    rec = ingest(app, tmp_path, started.isoformat(), two_sided=False, customer="K-8")
    (key,) = media_keys(app, rec)
    # ingest locked the cloud copy until the end of the retention (COMPLIANCE mode): 30 days after
    # the end of the 2-second call, 22 days ahead on moto's clock
    assert app.stores.stores["cloud"].stat(key).retain_until == started + timedelta(days=30, seconds=2)
    dpo, compliance = make_user(app, "dora", "dpo"), make_user(app, "carla", "compliance")
    result = four_eyes(app, dpo, compliance, "recording.erase", rec, {"reason": "request 2026-12"})
    assert result["state"] == "purging"
    st = state(app, rec)
    assert st["key_wrapped"] is False and st["key_destroyed_at"] is not None and st["tombstone"] is None
    with pytest.raises(ConflictError, match="destroyed"):
        read_channel(app, rec, "advisor")
    assert moto_s3.versions(s3_bucket, key)  # ciphertext without a key, until the lock ends
    assert [p["id"] for p in run_purge(app).pending] == [rec]


def test_extension_extends_the_store_lock(s3app, tmp_path):
    app = s3app
    started = app.clock.now().replace(hour=10, minute=0, second=0) - timedelta(days=2 * 365)
    rec = ingest(app, tmp_path, started.isoformat(), customer="K-6")
    until = (started + timedelta(days=6 * 365)).replace(hour=0)  # at most 7 years after the call
    dpo, compliance = make_user(app, "dora", "dpo"), make_user(app, "carla", "compliance")
    result = four_eyes(app, dpo, compliance, "retention.extend", rec,
                       {"until": until.isoformat(), "reason": "BaFin request 2026/4"})
    assert result["new_until"] == until and result["lock_problems"] == []
    for key in media_keys(app, rec):
        assert app.stores.stores["cloud"].stat(key).retain_until == until
