"""Issue 17: the jobs ``cf serve`` runs (the site's nightly window, the archive's inbox poll), the
bandwidth limit and the role settings."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sync_helpers import record

from cfcore.authority import SYSTEM
from cfcore.db.models import Recording
from cfcore.db.models_sync import SyncImport
from cfcore.errors import ConfigError
from cfcore.jobs import JobRunner, registered_jobs
from cfcore.sync.jobs import archive_job, in_window, site_job
from cfcore.sync.send import _Throttle
from cfcore.sync.settings import role, site_settings


def test_the_nightly_window_decides_when_a_site_sends(world, tmp_path, frozen_clock):
    a = world.site("site-a")
    record(a, tmp_path, 1)
    frozen_clock.set(datetime(2026, 11, 28, 12, 0, tzinfo=UTC))  # 13:00 in Berlin: outside 01:00-05:00
    asyncio.run(site_job(a))
    assert list(a.audit.entries(action="sync.prepare")) == []
    frozen_clock.set(datetime(2026, 11, 28, 1, 30, tzinfo=UTC))  # 02:30 in Berlin
    archive = world.archive()

    async def both() -> None:
        # the archive's job runs beside the site's, as on two servers; the site waits for the receipt
        async def archive_soon() -> None:
            # the archive's job polls its inbox (every minute in cf serve; here until the batch came)
            for _ in range(150):
                await asyncio.to_thread(archive_job, archive)
                with archive.catalog.session() as s:
                    if s.scalar(select(func.count()).select_from(SyncImport)):
                        return
                await asyncio.sleep(0.1)

        await asyncio.gather(site_job(a), archive_soon())

    cfg = world.site_cfgs["site-a"]
    cfg.write_text(cfg.read_text().replace("[sync]\n", "[sync]\nreceipt_wait_seconds = 20\n", 1))
    a = world.reopen("site-a")
    asyncio.run(both())
    with a.catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(Recording)) == 0, "handed over within the window"
    with archive.catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(Recording)) == 1


def test_cf_serve_registers_the_sync_jobs_and_runs_them(world, tmp_path):
    a = world.site("site-a")
    jobs = registered_jobs(a)
    assert {"sync.send", "sync.receive"} <= set(jobs)
    record(a, tmp_path, 1)
    from cfcore.sync.send import run_sync

    asyncio.run(run_sync(a, SYSTEM))
    archive = world.archive()

    async def serve_once() -> None:
        runner = JobRunner(archive, {"sync.receive": jobs["sync.receive"]})
        await runner.start()
        for _ in range(100):
            if runner.status["sync.receive"].runs:
                break
            await asyncio.sleep(0.1)
        await runner.stop()
        assert runner.status["sync.receive"].runs == 1 and runner.status["sync.receive"].failures == 0

    asyncio.run(serve_once())
    with archive.catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(Recording)) == 1


def test_window_across_midnight():
    from datetime import time

    w = (time(22, 0), time(4, 0))
    assert in_window(datetime(2026, 11, 28, 22, 30, tzinfo=UTC), w, "UTC")
    assert in_window(datetime(2026, 11, 28, 3, 59, tzinfo=UTC), w, "UTC")
    assert not in_window(datetime(2026, 11, 28, 4, 0, tzinfo=UTC), w, "UTC")


def test_bandwidth_limit_paces_the_upload(monkeypatch):
    """The throttle asks to sleep as long as the bytes take at the configured rate (measured in
    bench/bench_sync.py; here the pacing itself, on a fake monotonic clock)."""
    import cfcore.sync.send as send

    now = [100.0]
    slept: list[float] = []
    monkeypatch.setattr(send.time, "monotonic", lambda: now[0])

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(send.asyncio, "sleep", fake_sleep)
    t = _Throttle(1000)  # bytes per second
    for _ in range(10):
        asyncio.run(t(250))
    assert sum(slept) == pytest.approx(2.5)
    free = _Throttle(0)
    asyncio.run(free(10**9))
    assert sum(slept) == pytest.approx(2.5)


def test_roles_and_settings_are_checked(world):
    a = world.site("site-a")
    assert role(a.config) == "site" and role(world.archive().config) == "archive"
    assert site_settings(a.config).bandwidth_bytes_per_s == 0
    cfg = world.site_cfgs["site-a"]
    cfg.write_text(cfg.read_text().replace('role = "site"', 'role = "branch"'))
    with pytest.raises(ConfigError, match="choose one of: standalone, site, archive"):
        world.reopen("site-a")
    with pytest.raises(ConfigError, match="needs a deployment with role 'site'"):
        site_settings(world.archive().config)


def test_the_ssh_target_options_are_typed(world):
    """[sync.targets.<name>] is built with the registration's options class (hookspecs.parse_options):
    a misspelled key, a wrong type or a host key that is no SSH key stops with one line naming it."""
    from cfcore.sync.send import open_target

    a = world.site("site-a")
    target = open_target(a, site_settings(a.config))
    assert target.port == world.server.port and target.timeout == 10.0
    cfg = world.site_cfgs["site-a"]
    good = cfg.read_text()
    for bad, message in (("connect_timeout = 10", "sync.targets.archive.conect_timeout is not an option "
                                                  r"\(choose one of: client_key, connect_timeout"),
                         (f"port = {world.server.port}", "sync.targets.archive.port must be int, got str"),
                         ("host_key = ", "host_key is not an SSH public key")):
        replacement = {"connect_timeout = 10": "conect_timeout = 10",
                       f"port = {world.server.port}": 'port = "twenty-two"',
                       "host_key = ": 'host_key = "not a key" #'}[bad]
        cfg.write_text(good.replace(bad, replacement, 1))
        a = world.reopen("site-a")
        with pytest.raises(ConfigError, match=message):
            open_target(a, site_settings(a.config))
