"""Across processes, as in production: ``cf capture run`` (or ``cf serve``) runs the plugin
against the simulated PBX in this test process; advisors use ``cf calls ...`` and the REST API
from other processes. Real clocks everywhere here, so audio checks use the recorded boundaries.
``cf demo`` runs as a newcomer would run it."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from cfcore.clock import Clock
from tests.asterisk_sim import (
    PASSWORD,
    AsteriskSim,
    audit_entries,
    channel,
    has_tone,
    is_silent,
    leg_id,
    live_call,
    login_env,
    make_user,
    mode_requests,
    plugin_toml,
    recording,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]



def start_cf(deployment: Path, *args: str, env_extra: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "CF_CONFIG": str(deployment), **(env_extra or {})}
    env.pop("CF_USER", None)
    return subprocess.Popen([sys.executable, "-m", "cfcore", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err


async def until(predicate, timeout: float = 20.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not await asyncio.to_thread(predicate):
        if loop.time() > end:
            raise TimeoutError(what)
        await asyncio.sleep(0.05)


def runner_connected(app) -> bool:
    from cfcore.capture import controller

    return any(s.get("connected") for r in controller.runners(app) for s in r["sources"])


def state_is(app, call_id, *states) -> bool:
    row = live_call(app, call_id)
    return row is not None and row.state in states


def check_archive(app, rec_id) -> None:
    rec = recording(app, rec_id)
    both = [s for s in rec.segments if s.mode == "both"]
    assert rec.two_sided and len(both) == 1 and len(rec.consents) == 1
    consent = rec.consents[0]
    assert consent.by_user == "anna" and consent.offset <= both[0].start
    cus = channel(app, rec_id, "customer")
    assert is_silent(cus, 0, both[0].start), "customer audio before the consent"
    assert has_tone(cus, both[0].start + 0.05, both[0].end - 0.05)
    assert has_tone(channel(app, rec_id, "advisor"), 0.05, rec.duration - 0.05)


async def test_cf_calls_against_cf_capture_run(tmp_path, deployment, make_app, run_cf):
    """Also: the AMI secret is needed only where the capture runs (the advisors' commands run
    without it), and ``cf -v`` shows the plugin's connect and resync lines.

    The simulator and ``cf capture run`` run on the real clock, so do the app and every ``cf``."""
    run_cf = functools.partial(run_cf, real_clock=True)
    spool = tmp_path / "pbx-spool"
    assert "CF_TEST_AMI_SECRET" not in os.environ
    async with AsteriskSim(monitor_root=spool, secret="ami-secret-xyz") as sim:
        with open(deployment, "a") as f:
            f.write(plugin_toml(sim, spool, tmp_path / "ami.secret", md5=True, secret_env="CF_TEST_AMI_SECRET"))
        app = make_app(deployment, clock=Clock())
        make_user(app, "anna", ["advisor"], advisor_id="A100")
        make_user(app, "bert", ["advisor"], advisor_id="A101")
        # Without the secret the capture refuses to start, with one line naming the key ...
        r = await asyncio.to_thread(run_cf, "capture", "run", "--for", "5")
        assert r.returncode == 3 and r.stderr.count("\n") == 1
        assert "plugins.pbx_asterisk.secret: environment variable CF_TEST_AMI_SECRET is not set" in r.stderr
        # ... while the advisors' commands below never need it.
        proc = start_cf(deployment, "-v", "capture", "run", env_extra={"CF_TEST_AMI_SECRET": sim.secret})
        try:
            await until(lambda: runner_connected(app), what="cf capture run connected to the PBX")
            r = await asyncio.to_thread(run_cf, "capture", "status")
            assert r.returncode == 0 and "asterisk: connected" in r.stdout
            call = sim.inbound_call("+4930123456", "PJSIP/100")
            sim.answer(call)
            await sim.wait_recording(call)
            cid = leg_id(call)
            await until(lambda: state_is(app, cid, "recording"), what="call recording")

            r = await asyncio.to_thread(run_cf, "calls", "list", "--json", env=login_env("anna"))
            assert r.returncode == 0, r.stderr
            mine = json.loads(r.stdout)
            assert [(c["call_id"], c["mode"], c["customer"]) for c in mine] == [(cid, "advisor_only", "+49******56")]
            r = await asyncio.to_thread(run_cf, "calls", "list", "--json", env=login_env("bert"))
            assert json.loads(r.stdout) == []  # an advisor sees only their own calls

            r = await asyncio.to_thread(run_cf, "calls", "record-both", cid, env=login_env("bert"))
            assert r.returncode == 5 and "may not call.record_both" in r.stderr
            await asyncio.sleep(0.5)
            r = await asyncio.to_thread(run_cf, "calls", "record-both", cid, env=login_env("anna"))
            assert r.returncode == 0, r.stderr
            assert "recording both sides" in r.stdout and "beide Seiten" in r.stdout
            assert not sim.monitor_of(call).mute_write
            await asyncio.sleep(0.5)
            sim.hangup(call)
            await until(lambda: state_is(app, cid, "archived"), what="archived")

            r = await asyncio.to_thread(run_cf, "recordings", "list", "--json", env=login_env("anna"))
            recs = json.loads(r.stdout)
            assert len(recs) == 1 and recs[0]["two_sided"] and recs[0]["advisor_id"] == "A100"
            check_archive(app, recs[0]["id"])
            # The consent keeps when anna ran the command (before the CLI's start-up and login)
            # and when the PBX confirmed it.
            (rb,) = [r for r in mode_requests(app, cid) if r.action == "record_both" and r.status == "applied"]
            (consent,) = recording(app, recs[0]["id"]).consents
            assert consent.given_at == rb.acted_at < rb.requested_at <= consent.applied_at <= rb.decided_at

            # A second call, then the runner stops: a request nobody applies expires clearly.
            call2 = sim.inbound_call("+4930999888", "PJSIP/100")
            sim.answer(call2)
            await sim.wait_recording(call2)
            cid2 = leg_id(call2)
            await until(lambda: state_is(app, cid2, "recording"), what="second call recording")
        finally:
            err = stop(proc)
        assert "ami-secret-xyz" not in err and "4930123456" not in err
        # cf -v: INFO lines of the plugin (they were swallowed before: logging was set up twice)
        assert "AMI connected to 127.0.0.1" in err and "AMI resync:" in err and " INFO cf_pbx_asterisk" in err
        r = await asyncio.to_thread(run_cf, "calls", "record-both", cid2, "--timeout", "1", env=login_env("anna"))
        assert r.returncode == 10 and "cf capture run" in r.stderr
        denied = [e for e in audit_entries(app, "call.record_both", cid) if e.outcome == "denied"]
        assert [e.user for e in denied] == ["bert"] and denied[0].function == "cli.calls.record-both"


async def test_rest_api_through_cf_serve(tmp_path, deployment, make_app, free_port):
    spool = tmp_path / "pbx-spool"
    async with AsteriskSim(monitor_root=spool) as sim:
        with open(deployment, "a") as f:
            f.write(plugin_toml(sim, spool, tmp_path / "ami.secret"))
        app = make_app(deployment, clock=Clock())
        make_user(app, "anna", ["advisor"], advisor_id="A100")
        make_user(app, "bert", ["advisor"], advisor_id="A101")
        proc = start_cf(deployment, "serve", "--port", str(free_port), "--log-level", "warning")
        base = f"http://127.0.0.1:{free_port}/api"
        try:
            await until(lambda: runner_connected(app), 30, "cf serve's capture job connected")

            def login(user: str) -> dict[str, str]:
                r = httpx.post(f"{base}/auth/login", json={"username": user, "password": PASSWORD}, timeout=10)
                r.raise_for_status()
                return {"Authorization": f"Bearer {r.json()['token']}", "X-Client-Host": f"{user}-pc"}

            anna, bert = await asyncio.to_thread(login, "anna"), await asyncio.to_thread(login, "bert")
            call = sim.outbound_call("PJSIP/100", "+4940555777")
            sim.answer(call)
            await sim.wait_recording(call)
            cid = leg_id(call)
            await until(lambda: state_is(app, cid, "recording"), what="recording")
            r = await asyncio.to_thread(httpx.get, f"{base}/calls", headers=anna, timeout=10)
            assert r.status_code == 200 and [c["call_id"] for c in r.json()] == [cid]
            r = await asyncio.to_thread(httpx.post, f"{base}/calls/{cid}/record-both", headers=bert, timeout=20)
            assert r.status_code == 403
            r = await asyncio.to_thread(httpx.post, f"{base}/calls/nope/record-both", headers=anna, timeout=20)
            # an unknown call is answered like another's (no probing of call ids, issue 11)
            assert r.status_code == 403 and "may not call.record_both" in r.text
            await asyncio.sleep(0.3)
            clicked = datetime.now(UTC) - timedelta(seconds=2)  # the CTI client's queue, say
            r = await asyncio.to_thread(httpx.post, f"{base}/calls/{cid}/record-both", headers=anna,
                                        json={"method": "web", "acted_at": clicked.isoformat()}, timeout=20)
            assert r.status_code == 200 and (r.json()["status"], r.json()["mode"]) == ("applied", "both")
            await asyncio.sleep(0.3)
            sim.hangup(call)
            await until(lambda: state_is(app, cid, "archived"), what="archived")
            rec_id = live_call(app, cid).recording_id
            r = await asyncio.to_thread(httpx.post, f"{base}/calls/{cid}/pause", headers=anna, timeout=20)
            assert r.status_code == 409  # the call has ended
        finally:
            stop(proc)
        check_archive(app, rec_id)
        consent = recording(app, rec_id).consents[0]
        assert consent.method == "web" and abs((consent.given_at - clicked).total_seconds()) < 1e-3
        assert consent.applied_at > clicked + timedelta(seconds=2)
        denied = [e for e in audit_entries(app, "call.record_both", cid) if e.outcome == "denied"]
        assert [(e.user, e.host, e.function) for e in denied] == [("bert", "bert-pc", "api.calls.record_both")]


def test_cf_demo_shows_recordings_arriving(tmp_path):
    """What the README tells a newcomer to run: it finishes by itself and leaves recordings."""
    env = {k: v for k, v in os.environ.items() if k not in ("CF_CONFIG", "CF_USER", "CF_PASSWORD")}
    run = subprocess.run([sys.executable, "-m", "cfcore", "demo", "--pace", "0.5"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "recordings archived" in run.stdout and "refused and audited" in run.stdout
    demo = tmp_path / "demo"
    password = (demo / "demo-password").read_text().strip()
    assert oct((demo / "demo-password").stat().st_mode & 0o777) == "0o600"
    env.update({"CF_CONFIG": str(demo / "callfort.toml"), "CF_USER": "sam", "CF_PASSWORD": password})
    listed = subprocess.run([sys.executable, "-m", "cfcore", "recordings", "list", "--json"], env=env,
                            capture_output=True, text=True, timeout=60)
    recs = json.loads(listed.stdout)
    # four desk-phone legs and the mobile dial-in with opt-in (the declined one records nothing)
    assert len(recs) == 5
    assert sorted(r["advisor_id"] for r in recs) == ["A100", "A101", "A101", "A102", "A103"]
    assert sum(r["two_sided"] for r in recs) == 3
    assert "pressed 1" in run.stdout and "declined" in run.stdout
    assert not list((demo / "pbx-spool").glob("*.wav"))  # picked up and removed
    # A second run reuses the demo deployment.
    again = subprocess.run([sys.executable, "-m", "cfcore", "demo", "--pace", "0.3", "--json"], cwd=tmp_path,
                           env={k: v for k, v in env.items() if k not in ("CF_CONFIG",)},
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert len(json.loads(again.stdout)["recordings"]) == 5
    # A deployment cf demo did not create is refused.
    other = tmp_path / "prod"
    subprocess.run([sys.executable, "-m", "cfcore", "init", str(other)], env=env, check=True, capture_output=True)
    refused = subprocess.run([sys.executable, "-m", "cfcore", "--config", str(other / "callfort.toml"), "demo"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "not a demo deployment" in refused.stderr
