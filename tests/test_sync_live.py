"""Issue 17 with live capture (issue 15): a call captured frame by frame on a site is sealed to the
archive when its spool is finalised, never locked at the site, and handed over like a file call."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select
from sync_helpers import receive, sync

from cfcore.archive import read_channel
from cfcore.capture.runner import CaptureRunner
from cfcore.db.models import DataKey, Recording
from cfcore.db.models_sync import ArchiveWrap
from hookspecs.types import CallEventKind
from tests.test_capture_live import FrameSource, event, feed, wait_archived


def _live_call(app, clock) -> str:
    async def go() -> str:
        src = FrameSource()
        runner = CaptureRunner(app, [src], poll_interval=0.02)
        task = asyncio.create_task(runner.run())
        await src.ready.wait()
        await src.sink.call_event(event(CallEventKind.STARTED, "c1", clock))
        await src.sink.call_event(event(CallEventKind.ANSWERED, "c1", clock))
        await feed(src.sink, "c1", 0.0, 2.0, customer=False)
        await src.sink.call_event(event(CallEventKind.ENDED, "c1", clock))
        rec_id = await wait_archived(app, "c1")
        await runner.stop()
        await asyncio.wait_for(task, 15)
        return str(rec_id)

    return asyncio.run(go())


def test_a_live_call_on_a_site_is_sealed_and_handed_over(world, frozen_clock):
    a = world.site("site-a")
    rid = _live_call(a, frozen_clock)
    with a.catalog.session() as s:
        assert s.get(ArchiveWrap, rid) is not None and s.get(DataKey, rid) is not None
    audio = read_channel(a, rid, "advisor")
    assert len(audio) == 2 * 16000
    sync(a)
    archive = world.archive()
    assert len(receive(archive).imported) == 1
    assert read_channel(archive, rid, "advisor") == audio
    assert sync(a).handed_over[0]["recordings"] == 1
    with a.catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(Recording)) == 0


def test_a_live_call_on_an_advisor_only_site_keeps_no_key(world, frozen_clock):
    cfg = world.site_cfgs["site-b"]
    cfg.write_text(cfg.read_text().replace("[sync]\n", '[sync]\nlocal_key = "none"\n', 1))
    b = world.reopen("site-b")
    rid = _live_call(b, frozen_clock)
    with b.catalog.session() as s:
        assert s.get(ArchiveWrap, rid) is not None and s.get(DataKey, rid) is None
    sync(b)
    archive = world.archive()
    receive(archive)
    assert len(read_channel(archive, rid, "advisor")) == 2 * 16000
