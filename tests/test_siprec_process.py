"""SIPREC with the recorder as its own process: ``cf capture run`` with ``[plugins.pbx_siprec]``
records a sipp call end to end (consent by ``cf calls record-both``), and a recorder killed with
SIGKILL mid-call leaves a spool that is archived as ``incomplete`` with every complete segment."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys

import pytest

from cfcore.capture.live import recover
from cfcore.clock import Clock
from tests.asterisk_sim import login_env, make_user
from tests.siprec_helpers import (
    bye,
    channel,
    dominant,
    invite_answered,
    is_silent,
    level,
    multipart,
    pause,
    play,
    recording,
    rfc_metadata,
    sdp_offer,
)
from tests.test_siprec_sipp import Srs, pcaps  # noqa: F401 - the pcaps fixture

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(150)]



async def start_recorder(h: Srs) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CF_CONFIG": str(h.deployment)}
    proc = subprocess.Popen([sys.executable, "-m", "cfcore", "capture", "run"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for _ in range(300):
        try:
            with socket.create_connection(("127.0.0.1", h.sip_port), timeout=0.2):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(proc.stdout.read().decode() if proc.stdout else "recorder died") from None
            await asyncio.sleep(0.05)
    raise AssertionError("the recorder did not start listening")


async def live_call_id(h: Srs, timeout: float = 10.0) -> str:
    from sqlalchemy import select

    from cfcore.db.models_capture import LiveCall

    for _ in range(int(timeout / 0.05)):
        with h.app.catalog.session() as s:
            row = s.scalars(select(LiveCall).where(LiveCall.state == "recording")).first()
            if row is not None:
                return row.call_id
        await asyncio.sleep(0.05)
    raise AssertionError("no call is recording")


async def test_cf_capture_run_records_a_sipp_call_with_cli_consent(tmp_path, deployment, make_app, pcaps,  # noqa: F811
                                                                   run_cf):
    # the recorder process runs on the real clock (sipp's media is real time): so do the app and cf
    h = Srs(tmp_path, deployment, make_app, clock=Clock())
    with open(deployment, "a", encoding="utf-8") as f:
        f.write('\n[capture]\nevent_loop = "uvloop"\n')  # the recorder as the bench runs it
    make_user(h.app, "anna", ["advisor"], advisor_id="A100")
    proc = await start_recorder(h)
    try:
        ctype, body = multipart(sdp_offer(), rfc_metadata())
        run = asyncio.create_task(h.sipp(invite_answered(ctype, body) + [play(pcaps["long"]), pause(14300)] + bye()))
        call_id = await live_call_id(h)
        await asyncio.sleep(2.0)
        r = await asyncio.to_thread(run_cf, "calls", "record-both", call_id, env=login_env("anna"),
                                    real_clock=True)
        assert r.returncode == 0, r.stderr
        await run
        row = await h.archived()
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, out
    rec = recording(h.app, row.recording_id)
    assert rec.state == "archived" and rec.two_sided and rec.consents[0].method == "cli"
    both = next(s for s in rec.segments if s.mode == "both")
    a, c = channel(h.app, row.recording_id, "advisor"), channel(h.app, row.recording_id, "customer")
    assert dominant(a, 0.3, 13.5) == 440 and level(a, 0.3, 13.5) > 4000
    assert 2.0 < both.start < 13.0
    assert is_silent(c, 0, both.start) and dominant(c, both.start + 0.1, 13.5) == 880


async def test_recorder_killed_mid_call_is_finalised_incomplete(tmp_path, deployment, make_app, pcaps):  # noqa: F811
    h = Srs(tmp_path, deployment, make_app, clock=Clock())  # as the recorder process
    proc = await start_recorder(h)
    ctype, body = multipart(sdp_offer(), rfc_metadata())
    run = asyncio.create_task(h.sipp(invite_answered(ctype, body) + [play(pcaps["two"]), pause(6300)] + bye(),
                                     expect_ok=False, timeout=12))
    try:
        await live_call_id(h)
        await asyncio.sleep(3.6)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    assert await run != 0  # sipp's BYE found nobody
    # what the next runner does at start (CaptureRunner.run -> live.recover)
    done = await asyncio.to_thread(recover, h.app, ["siprec"])
    assert len(done) == 1
    rec = recording(h.app, done[0])
    assert rec.state == "incomplete" and not rec.two_sided
    # 1 s segments: the complete seconds before the kill, nothing after it
    assert 2.0 <= rec.duration <= 4.0
    a = channel(h.app, done[0], "advisor")
    assert dominant(a, 0.3, rec.duration - 0.1) == 440 and level(a, 0.3, rec.duration - 0.1) > 4000
    assert [e.action for e in h.app.audit.entries(action="recording.incomplete", target_id=done[0])]


def test_unknown_event_loop_is_one_clear_line(tmp_path, deployment, make_app, run_cf):
    Srs(tmp_path, deployment, make_app)
    with open(deployment, "a", encoding="utf-8") as f:
        f.write('\n[capture]\nevent_loop = "tokio"\n')
    r = run_cf("capture", "run", "--for", "1")
    assert r.returncode != 0
    assert "capture.event_loop 'tokio' is unknown" in r.stderr and len(r.stderr.strip().splitlines()) <= 2
