"""Live capture (issue 15, part 1): audio frames into the encrypted spool, modes applied frame by
frame against the consent the controller recorded, the same recording model as file pickup, and a
killed recorder finalised as ``incomplete`` on restart."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cfcore.capture import controller
from cfcore.capture.live import SPOOL_DIR, LiveCapture, recover, stats_of
from cfcore.capture.runner import CaptureRunner
from hookspecs.types import AudioFrame, CallEvent, CallEventKind, ChannelRole, Direction, RecordingMode
from tests.asterisk_sim import make_user
from tests.siprec_helpers import channel, dominant, is_silent, level, recording, tone, ulaw

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]



class FrameSource:
    """A capture source the test drives frame by frame (no PBX: the unit under test is the core)."""

    name = "live-test"
    can_mute = False

    def __init__(self) -> None:
        self.sink = None
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()
        self.modes: list[RecordingMode] = []

    async def run(self, sink):
        self.sink = sink
        self.ready.set()
        await self._stop.wait()

    async def set_mode(self, call_id, mode):
        self.modes.append(mode)
        return True

    async def stop(self):
        self._stop.set()


async def feed(sink, call_id, t0, seconds, *, codec="pcmu", customer=True):
    """20 ms frames: 440 Hz advisor, 880 Hz customer, from ``t0`` for ``seconds``."""
    for i in range(int(round(seconds / 0.02))):
        t = t0 + i * 0.02
        start = int(round(t * 8000))
        adv, cus = tone(440, 0.02, start_sample=start), tone(880, 0.02, start_sample=start)
        if codec == "pcmu":
            adv, cus = ulaw(adv), ulaw(cus)
        await sink.audio_frame(AudioFrame(call_id=call_id, role=ChannelRole.ADVISOR, timestamp=t, payload=adv,
                                          codec=codec))
        if customer:
            await sink.audio_frame(AudioFrame(call_id=call_id, role=ChannelRole.CUSTOMER, timestamp=t, payload=cus,
                                              codec=codec))


def event(kind, call_id, clock, **kw):
    return CallEvent(kind=kind, call_id=call_id, source="live-test", at=clock.now(), advisor_id="A100",
                     customer_number="+4930123456", direction=Direction.INBOUND, pbx_call_id="pbx-" + call_id, **kw)


async def wait_archived(app, call_id, timeout=10.0):
    for _ in range(int(timeout / 0.02)):
        row = await asyncio.to_thread(controller.get_call, app, call_id)
        if row.state == "archived" and row.recording_id:
            return row.recording_id
        await asyncio.sleep(0.02)
    raise AssertionError("not archived")


async def test_consent_switches_customer_on_frame_by_frame(app, frozen_clock):
    adv = make_user(app, "anna", ["advisor"], advisor_id="A100")
    src = FrameSource()
    runner = CaptureRunner(app, [src], poll_interval=0.02)
    task = asyncio.create_task(runner.run())
    await src.ready.wait()
    sink = src.sink
    await sink.call_event(event(CallEventKind.STARTED, "c1", frozen_clock))
    await sink.call_event(event(CallEventKind.ANSWERED, "c1", frozen_clock))
    await feed(sink, "c1", 0.0, 3.0)
    # the frames are encrypted on disk as they arrive: no plaintext in the spool
    spool = next((Path(app.data_dir) / SPOOL_DIR).iterdir())
    assert (spool / "advisor.cfe").stat().st_size > 16000
    assert not (spool / "customer.cfe").exists(), "customer frames before consent must never reach the disk"
    assert oct((spool / "meta.json").stat().st_mode & 0o777) == "0o600"
    assert b"+4930123456" not in (spool / "meta.json").read_bytes()
    frozen_clock.advance(3)
    async def spool_mode(mode):
        # the runner tells the spool right after it wrote the outcome the requester waits for
        for _ in range(500):
            if runner.live.calls[("live-test", "c1")].mode is mode:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"the spool never switched to {mode}")

    req = await asyncio.to_thread(controller.trigger, app, adv, "c1", "record_both", "api", 10.0)
    assert req.status == "applied"
    await spool_mode(RecordingMode.BOTH)
    await feed(sink, "c1", 3.0, 2.0)
    req = await asyncio.to_thread(controller.trigger, app, adv, "c1", "pause", "api", 10.0)
    await spool_mode(RecordingMode.PAUSED)
    await feed(sink, "c1", 5.0, 1.0)  # paused: neither voice is written
    req = await asyncio.to_thread(controller.trigger, app, adv, "c1", "resume", "api", 10.0)
    assert req.mode == "both"
    await spool_mode(RecordingMode.BOTH)
    await feed(sink, "c1", 6.0, 1.0)
    await sink.call_event(event(CallEventKind.ENDED, "c1", frozen_clock,
                                detail={"media_stats": '{"advisor": {"lost": 0}}'}))
    rec_id = await wait_archived(app, "c1")
    await runner.stop()
    await asyncio.wait_for(task, 15)

    rec = recording(app, rec_id)
    assert rec.state == "archived" and rec.two_sided and rec.duration == pytest.approx(7.0, abs=0.001)
    assert [(round(s.start, 2), round(s.end, 2), s.mode) for s in rec.segments] == [
        (0.0, 3.0, "advisor_only"), (3.0, 5.0, "both"), (5.0, 6.0, "paused"), (6.0, 7.0, "both")]
    assert len(rec.consents) == 1 and rec.consents[0].by_user == "anna"
    a, c = channel(app, rec_id, "advisor"), channel(app, rec_id, "customer")
    assert a is not None and c is not None and len(a) == len(c) == 7 * 16000
    assert dominant(a, 0.1, 2.9) == 440 and level(a, 0.1, 2.9) > 5000
    assert is_silent(c, 0, 3.0), "customer before consent"
    assert dominant(c, 3.1, 4.9) == 880 and level(c, 3.1, 4.9) > 5000
    assert is_silent(a, 5.0, 6.0) and is_silent(c, 5.0, 6.0), "paused stretch"
    assert dominant(c, 6.1, 6.9) == 880
    assert stats_of(app, rec_id)["streams"] == {"advisor": {"lost": 0}}
    assert not any((Path(app.data_dir) / SPOOL_DIR).iterdir()), "the spool is removed once archived"


async def test_no_consent_no_customer_channel_and_gaps_counted(app, frozen_clock):
    live = LiveCapture(app)
    live.event(event(CallEventKind.STARTED, "c2", frozen_clock))
    for i in range(50):
        if 20 <= i < 30:
            continue  # 200 ms of lost packets on the advisor stream
        live.frame("live-test", AudioFrame(call_id="c2", role=ChannelRole.ADVISOR, timestamp=i * 0.02,
                                           payload=tone(440, 0.02, start_sample=i * 160)))
        live.frame("live-test", AudioFrame(call_id="c2", role=ChannelRole.CUSTOMER, timestamp=i * 0.02,
                                           payload=tone(880, 0.02, start_sample=i * 160)))
    # a BOTH without a consent in the catalog keeps the customer off
    assert await live.apply_mode("live-test", "c2", RecordingMode.BOTH)
    live.frame("live-test", AudioFrame(call_id="c2", role=ChannelRole.CUSTOMER, timestamp=1.0,
                                       payload=tone(880, 0.02)))
    rec = live.event(event(CallEventKind.ENDED, "c2", frozen_clock))
    assert rec is not None
    from cfcore.capture.live import finalise

    rec_id = await asyncio.to_thread(finalise, app, rec.folder, incomplete=False)
    r = recording(app, rec_id)
    assert not r.two_sided and channel(app, rec_id, "customer") is None
    a = channel(app, rec_id, "advisor")
    assert is_silent(a, 0.4, 0.6) and level(a, 0.0, 0.4) > 5000
    assert stats_of(app, rec_id)["gaps_seconds"] == {"advisor": 0.2}


KILLED = textwrap.dedent('''
    import asyncio, sys, time
    from pathlib import Path
    from cfcore.app import App
    from cfcore.capture.live import LiveCapture
    from hookspecs.types import AudioFrame, CallEvent, CallEventKind, ChannelRole, Direction
    sys.path.insert(0, sys.argv[2])
    from tests.siprec_helpers import tone

    app = App.open(Path(sys.argv[1]))
    live = LiveCapture(app)
    live.event(CallEvent(kind=CallEventKind.STARTED, call_id="k1", source="live-test", at=app.clock.now(),
                         advisor_id="A100", direction=Direction.INBOUND))
    for i in range(1000):
        live.frame("live-test", AudioFrame(call_id="k1", role=ChannelRole.ADVISOR, timestamp=i * 0.02,
                                           payload=tone(440, 0.02, start_sample=i * 160)))
        if i == 174:  # 3.5 s written: tell the test, then keep going until killed
            print("ready", flush=True)
        time.sleep(0.001 if i < 175 else 0.05)
''')


async def kill_recorder_mid_call(deployment, tmp_path) -> subprocess.Popen:
    """A recorder process writing a live call, killed with SIGKILL 3.5 s into it."""
    script = tmp_path / "killed.py"
    script.write_text(KILLED)
    root = str(Path(__file__).resolve().parent.parent)
    proc = subprocess.Popen([sys.executable, str(script), str(deployment), root], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": root})
    try:
        assert proc.stdout is not None
        assert (await asyncio.to_thread(proc.stdout.readline)).strip() == "ready"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    return proc


async def test_killed_recorder_keeps_complete_segments_and_finalises_incomplete(app, deployment, tmp_path):
    proc = await kill_recorder_mid_call(deployment, tmp_path)
    assert proc.returncode == -signal.SIGKILL
    done = await asyncio.to_thread(recover, app, ["live-test"])
    assert len(done) == 1
    rec = recording(app, done[0])
    assert rec.state == "incomplete"
    # 1 s segments: at least the 3 complete seconds, never a partial segment
    assert rec.duration in (3.0, 4.0)
    a = channel(app, done[0], "advisor")
    assert a is not None and dominant(a, 0.1, 2.9) == 440 and level(a, 0.1, 2.9) > 5000
    entries = list(app.audit.entries(action="recording.incomplete", target_id=done[0]))
    assert len(entries) == 1 and "mid-call" in entries[0].detail["reason"]
    assert await asyncio.to_thread(recover, app, ["live-test"]) == []  # once only


async def test_recovery_replaces_the_orphan_of_an_earlier_attempt(app, deployment, tmp_path):
    """A recovery that died after storing the objects and before the catalog commit left them in the
    store; the next recovery must replace them, not fail on "object exists". (Found by typing the
    ``app`` parameters: the orphan check called ``StoreSet.exists``, which does not exist, and the
    AttributeError was swallowed, so the orphan stayed and the store refused the new object.)"""
    import json as _json
    from datetime import datetime as _dt

    from cfcore.archive import object_key

    await kill_recorder_mid_call(deployment, tmp_path)
    (meta_path,) = list((Path(app.data_dir) / SPOOL_DIR).rglob("meta.json"))
    meta = _json.loads(meta_path.read_text())
    orphan = object_key(meta["rec_id"], "advisor", _dt.fromisoformat(meta["started_at"]))
    app.stores.put(orphan, b"half of an earlier attempt")
    done = await asyncio.to_thread(recover, app, ["live-test"])
    assert done == [meta["rec_id"]]
    a = channel(app, done[0], "advisor")
    assert a is not None and dominant(a, 0.1, 2.9) == 440
