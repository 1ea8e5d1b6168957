"""A process killed mid-ingest leaves nothing visible; the orphans are swept later."""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from archive_helpers import NOW, login_env, make_user, make_wav, media_files
from sqlalchemy import func, select

from cfcore.db.models import DataKey, MediaObject, Recording
from cfcore.ingest import sweep_orphans


def _counts(app):
    with app.catalog.session() as s:
        return tuple(s.scalar(select(func.count()).select_from(t)) for t in (Recording, MediaObject, DataKey))


@pytest.mark.parametrize("point", ["after-store", "before-commit"])
def test_killed_mid_ingest_leaves_nothing_visible(app, deployment, run_cf, tmp_path, frozen_clock, point):
    make_user(app, "admin", ["administrator"])
    make_user(app, "sup", ["supervisor"])
    wav, chans = make_wav(tmp_path / "in.wav", 2.0)
    env = {**login_env("admin"), "CF_NOW": NOW.isoformat(), "CF_TEST_CRASH_AT": point}
    before_audit = [e.seq for e in app.audit.entries()]
    proc = run_cf("ingest", str(wav), "--agent", "A1", "--customer", "K1", "--consent-at", "0", env=env)
    assert proc.returncode == 86, proc.stderr  # died at the crash point
    orphans = media_files(deployment)
    assert orphans, "the crash point comes after the store write"
    assert _counts(app) == (0, 0, 0)
    assert not [e for e in app.audit.entries() if e.action == "recording.archive"]
    listing = run_cf("recordings", "list", "--json", env=login_env("sup"))
    assert listing.returncode == 0 and json.loads(listing.stdout) == []
    assert app.audit.verify().ok
    assert [e.seq for e in app.audit.entries()][: len(before_audit)] == before_audit

    # a normal ingest works afterwards
    ok = run_cf("ingest", str(wav), "--agent", "A1", "--customer", "K1", "--consent-at", "0", "--json",
                env={**login_env("admin"), "CF_NOW": NOW.isoformat()})
    assert ok.returncode == 0, ok.stderr
    rid = json.loads(ok.stdout)["id"]
    assert _counts(app) == (1, 2, 1)

    # sweeping: nothing younger than an hour goes; after that only the orphans go
    assert sweep_orphans(app) == []
    frozen_clock.advance(timedelta(hours=2))
    swept = sweep_orphans(app)
    assert sorted(k.split(":", 1)[1].rsplit("/", 1)[1] for k in swept) == sorted(p.name for p in orphans)
    assert [p.name for p in media_files(deployment)] == sorted([f"{rid}.advisor.cfe", f"{rid}.customer.cfe"])
    from cfcore.archive import read_channel

    assert read_channel(app, rid, "customer") == chans[1]
    assert [e.action for e in app.audit.entries(action="store.sweep")] == ["store.sweep"]
    assert app.audit.verify().ok


def test_sigkill_at_random_moments_never_leaves_half_a_recording(app, deployment, tmp_path):
    """Kill real ingests with SIGKILL at staggered moments: each is whole or absent."""
    make_user(app, "admin", ["administrator"])
    wav, _ = make_wav(tmp_path / "in.wav", 30.0)
    env = {**os.environ, "CF_CONFIG": str(deployment), **login_env("admin"), "CF_NOW": NOW.isoformat()}
    for delay in (0.3, 0.6, 0.9, 1.2):
        p = subprocess.Popen([sys.executable, "-m", "cfcore", "ingest", str(wav), "--agent", "A1", "--customer", "K1",
                              "--consent-at", "1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.communicate()
    with app.catalog.session() as s:
        for rec in s.scalars(select(Recording)):
            assert {m.channel for m in rec.media} == {"advisor", "customer"}
            assert s.get(DataKey, rec.id) is not None
    assert app.audit.verify().ok
