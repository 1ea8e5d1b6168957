"""Dial-in mobile recording through the whole chain: the ARI simulator (HTTP + WebSocket on a
free port) → mobile_ons's Stasis application → capture runner → ingest → archive."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import pytest
from sqlalchemy import select

from cfcore.sim.ari import AriSim
from hookspecs.options import Secret
from hookspecs.types import Actor, RequestContext

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

MOBILE = "+491701234567"
ANN_SHA = hashlib.sha256(b"announcement v3").hexdigest()



@pytest.fixture
def app(deployment, make_app):
    """The deployment trusts the mobile source to witness the customer's DTMF opt-in."""
    deployment.write_text(deployment.read_text() + "\n[capture.sources.mobile]\nconsent_witness = true\n")
    return make_app(deployment)


#: Someone who may see any recording's details (``recording.show``), to read the consent proofs.
COMPLIANCE = RequestContext(actor=Actor(user_id="u-carla", username="carla", roles=frozenset({"compliance"})),
                            host="pc-7", ip="10.0.0.7", function="test.consent_proof")

class Harness:
    def __init__(self, app: Any, tmp_path: Any, **plugin: Any) -> None:
        self.app, self.tmp_path, self.plugin = app, tmp_path, plugin

    async def __aenter__(self) -> Harness:
        from cf_mobile_ons import cf_capture_sources

        from cfcore.capture.runner import CaptureRunner
        from hookspecs.types import PluginContext

        self.sim = AriSim(self.tmp_path / "ari-recordings")
        await self.sim.start()
        config = {**_config(self), **self.plugin}
        ctx = PluginContext(name="mobile_ons", config=config, clock=self.app.clock.now,
                            data_dir=self.tmp_path / "mobile-data")
        (reg,) = cf_capture_sources()  # built from its section as the core does (hookspecs.parse_options)
        self.source = reg.create(self.app.plugin_options(reg, config, "plugins.mobile_ons"), ctx)[0]
        self.source.client.backoff_min = 0.05
        self.runner = CaptureRunner(self.app, [self.source], poll_interval=0.05)
        self.task = asyncio.create_task(self.runner.run())
        await self.wait(lambda: self.source.client.connected.is_set(), "ARI connected")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.stop()
        await asyncio.wait_for(self.task, 20)
        await self.sim.stop()

    async def wait(self, cond: Any, what: str, timeout: float = 10.0) -> None:
        for _ in range(int(timeout / 0.02)):
            if cond():
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}")

    async def settle(self, seconds: float = 0.15) -> None:
        await asyncio.sleep(seconds)

    async def dial_in_to_optin(self, pin: str = "4711", caller: str = MOBILE) -> tuple[str, str]:
        adv = await self.sim.incoming(caller)
        await self.wait(lambda: any(m.endswith("enter-pin") for _, m in self.sim.plays), "PIN prompt")
        await self.sim.dtmf(adv, pin + "#")
        await self.wait(lambda: any(m.endswith("enter-number") for _, m in self.sim.plays), "number prompt")
        await self.sim.dtmf(adv, "030123456#")
        await self.wait(lambda: any(m == "digits:4930123456" for _, m in self.sim.plays),
                        "read-back")
        await self.sim.dtmf(adv, "1")
        await self.wait(lambda: self.sim.customer_channel() is not None
                        and any(m == "sound:callfort/consent-v3" for _, m in self.sim.plays), "announcement")
        cus = self.sim.customer_channel()
        assert cus is not None
        await self.wait(lambda: any(e["type"] == "PlaybackFinished" and "announcement" in e["playback"]["id"]
                                    for e in self.sim.events_sent), "announcement played")
        await self.settle(0.1)
        return adv, cus


def recordings(app: Any) -> list[Any]:
    from cfcore.db.models import Recording

    with app.catalog.session() as s:
        return list(s.scalars(select(Recording)))


def alerts(app: Any) -> list[dict[str, Any]]:
    from cfcore.db.models import AuditEntry

    with app.catalog.session() as s:
        return [json.loads(e.detail or "{}") for e in s.scalars(select(AuditEntry).where(AuditEntry.action == "capture.alert"))]


def tone_energy(pcm: bytes, freq: int) -> float:
    import array
    import math

    a = array.array("h")
    a.frombytes(pcm[: 8000 * 2])
    n = len(a)
    if not n:
        return 0.0
    re_ = sum(x * math.cos(2 * math.pi * freq * i / 8000) for i, x in enumerate(a))
    im = sum(x * math.sin(2 * math.pi * freq * i / 8000) for i, x in enumerate(a))
    return math.hypot(re_, im) / n


async def test_opt_in_archives_two_channels_with_an_encrypted_consent_proof(app, tmp_path):
    from cfcore.archive import consent_proofs, read_channel

    async with Harness(app, tmp_path) as h:
        adv, cus = await h.dial_in_to_optin()
        await h.sim.dtmf(adv, "1")  # the advisor's "1" is not the customer's consent
        await h.settle(0.2)
        assert not h.sim.bridges and not h.sim.live
        await h.sim.dtmf(cus, "1")
        await h.wait(lambda: len(h.sim.live) == 2, "two recordings")
        assert all(h.sim.channels[cid].bridge for cid in (adv, cus))
        from cfcore.db.models_capture import LiveCall

        with app.catalog.session() as s:
            live = s.scalars(select(LiveCall)).one()
        assert (live.advisor_id, live.state, live.mode, live.source) == ("A100", "recording", "both", "mobile")
        assert live.customer_hint == "+49******56"
        await asyncio.sleep(1.2)
        await h.sim.hangup(cus)
        await h.wait(lambda: len(recordings(app)) == 1 and h.source.archived, "archived")
        rec = recordings(app)[0]
        assert rec.advisor_id == "A100" and rec.two_sided and rec.channels == 2
        assert 1.0 <= rec.duration <= 3.0
        advisor_pcm = read_channel(app, rec.id, "advisor")
        customer_pcm = read_channel(app, rec.id, "customer")
        assert tone_energy(advisor_pcm, 440) > 1000 > tone_energy(advisor_pcm, 660)
        assert tone_energy(customer_pcm, 660) > 1000 > tone_energy(customer_pcm, 440)
        [c] = consent_proofs(app, COMPLIANCE, rec.id)
        # The opt-in the core recorded from the live ANSWERED event backs the customer audio from
        # the start: nothing was refused, and the consent sits at the recording's start.
        from cfcore.db.models import AuditEntry

        with app.catalog.session() as s:
            refused = s.scalars(select(AuditEntry).where(AuditEntry.action == "recording.consent_refused")).all()
            recorded = s.scalars(select(AuditEntry).where(AuditEntry.action == "call.consent")).all()
        assert not refused and len(recorded) == 1 and c["offset"] == 0.0
        p = c["proof"]
        assert c["method"] == "dtmf" and c["by_user"] == "customer"
        assert p["announcement_id"] == "mobile-consent" and p["announcement_version"] == "3"
        assert p["announcement_sha256"] == ANN_SHA and p["digit"] == "1" and p["customer_leg_id"] == cus
        assert p["announcement_started_at"] and p["announcement_finished_at"] and p["digit_at"]
        # The proof is not in the catalog in clear.
        from cfcore.db.models import ConsentRow

        with app.catalog.session() as s:
            enc = s.scalars(select(ConsentRow.proof_enc)).one()
        assert enc and b"mobile-consent" not in enc and cus.encode() not in enc
        # The PBX's copies are deleted after the archive confirmed them.
        await h.wait(lambda: not list((tmp_path / "ari-recordings").glob("*.wav")), "PBX files removed")
        # The customer recording began at the opt-in: no audio of the customer before it.
        starts = [e for e in h.sim.events_sent if e["type"] == "RecordingStarted"]
        digit = [i for i, e in enumerate(h.sim.events_sent) if e["type"] == "ChannelDtmfReceived"
                 and e["channel"]["id"] == cus]
        assert digit and all(h.sim.events_sent.index(e) > digit[0] for e in starts)


async def test_decline_records_nothing_and_raises_an_alert(app, tmp_path):
    async with Harness(app, tmp_path) as h:
        adv, cus = await h.dial_in_to_optin()
        await h.sim.dtmf(cus, "2")
        await h.wait(lambda: adv not in h.sim.channels and cus not in h.sim.channels, "both legs hung up")
        await h.settle(0.3)
        assert not recordings(app) and not h.sim.live and not h.sim.bridges
        assert [a["alert"] for a in alerts(app)] == ["declined"]


async def test_decline_may_continue_unrecorded_by_configuration(app, tmp_path):
    async with Harness(app, tmp_path, unrecorded="continue") as h:
        adv, cus = await h.dial_in_to_optin()
        await h.wait(lambda: True, "")
        await asyncio.sleep(1.3)  # silence: the opt-in times out
        await h.wait(lambda: h.sim.channels[adv].bridge is not None, "bridged unrecorded")
        await h.sim.dtmf(cus, "1")  # too late: no recording
        await h.settle(0.3)
        assert not h.sim.live
        await h.sim.hangup(adv)
        await h.settle(0.3)
        assert not recordings(app) and [a["alert"] for a in alerts(app)] == ["no_optin"]


async def test_customer_hangs_up_during_the_announcement(app, tmp_path):
    async with Harness(app, tmp_path) as h:
        h.sim.playback_seconds = 2.0
        adv = await h.sim.incoming(MOBILE)
        await h.wait(lambda: any(m.endswith("enter-pin") for _, m in h.sim.plays), "PIN prompt")
        await h.sim.dtmf(adv, "4711#")
        await h.wait(lambda: any(m.endswith("enter-number") for _, m in h.sim.plays), "number prompt")
        await h.sim.dtmf(adv, "030123456#")
        await h.wait(lambda: any(m.startswith("digits:") for _, m in h.sim.plays), "read-back")
        await h.sim.dtmf(adv, "1")
        await h.wait(lambda: any(m == "sound:callfort/consent-v3" for _, m in h.sim.plays), "announcement")
        await h.sim.dtmf(h.sim.customer_channel() or "", "1")  # during the announcement: does not count
        await h.sim.hangup(h.sim.customer_channel() or "")
        await h.wait(lambda: adv not in h.sim.channels, "advisor hung up by the application")
        assert not recordings(app) and not h.sim.live


async def test_three_wrong_pins_end_the_call_and_alert(app, tmp_path):
    async with Harness(app, tmp_path) as h:
        adv = await h.sim.incoming(MOBILE)
        await h.wait(lambda: any(m.endswith("enter-pin") for _, m in h.sim.plays), "PIN prompt")
        await h.sim.dtmf(adv, "1234#0000#9999#")
        await h.wait(lambda: adv not in h.sim.channels, "advisor hung up")
        await h.settle(0.2)
        assert [a["alert"] for a in alerts(app)] == ["pin_failed"]
        assert not any(m == "POST" and p == "/channels" for m, p, _ in h.sim.requests)
        # three failures more (a second call) lock the advisor out, even with the right PIN
        adv2 = await h.sim.incoming(MOBILE)
        await h.wait(lambda: sum(m.endswith("enter-pin") for _, m in h.sim.plays) == 2, "PIN prompt")
        await h.sim.dtmf(adv2, "1111#2222#3333#")
        await h.wait(lambda: adv2 not in h.sim.channels, "advisor hung up")
        adv3 = await h.sim.incoming(MOBILE)
        await h.wait(lambda: sum(m.endswith("enter-pin") for _, m in h.sim.plays) == 3, "PIN prompt")
        await h.sim.dtmf(adv3, "4711#")
        await h.wait(lambda: adv3 not in h.sim.channels, "locked out")
        await h.settle(0.2)
        assert [a["alert"] for a in alerts(app)] == ["pin_failed", "pin_failed", "pin_locked"]
        from cfcore.authority import SYSTEM
        from cfcore.db.models_fis import FisAlert
        from cfcore.fis.scan import scan

        await asyncio.to_thread(scan, app, SYSTEM)
        with app.catalog.session() as s:
            rules = [a.rule for a in s.scalars(select(FisAlert))]
        assert rules.count("mobile-dialin-abuse") == 3


async def test_ari_reconnect_reconciles_a_call_that_ended_meanwhile(app, tmp_path):
    async with Harness(app, tmp_path) as h:
        adv, cus = await h.dial_in_to_optin()
        await h.sim.dtmf(cus, "1")
        await h.wait(lambda: len(h.sim.live) == 2, "recording")
        await asyncio.sleep(0.5)
        h.sim.refuse_ws = True
        await h.sim.drop_websockets()
        await h.wait(lambda: not h.source.client.connected.is_set(), "disconnected")
        await h.sim.hangup(adv)  # the advisor's mobile drops while ARI is down: the events are lost
        assert h.source.sessions
        h.sim.refuse_ws = False
        await h.wait(lambda: h.source.client.connected.is_set(), "reconnected")
        await h.wait(lambda: len(recordings(app)) == 1 and not h.source.sessions, "archived after reconciling")
        assert recordings(app)[0].two_sided


async def test_recording_failure_alerts(app, tmp_path):
    async with Harness(app, tmp_path) as h:
        h.sim.fail_recording = True
        adv, cus = await h.dial_in_to_optin()
        await h.sim.dtmf(cus, "1")
        await h.wait(lambda: adv not in h.sim.channels and cus not in h.sim.channels, "call ended")
        await h.settle(0.3)
        assert "recording_failed" in [a["alert"] for a in alerts(app)]


async def test_caller_supplied_data_never_reaches_ari_unchecked(app, tmp_path):
    async with Harness(app, tmp_path) as h:
        evil = "+49170';Set(X=1)\r\nAction: Originate"
        adv = await h.sim.incoming(evil)
        await h.wait(lambda: any(m.endswith("enter-advisor") for _, m in h.sim.plays), "advisor prompt")
        await h.sim.dtmf(adv, "100#4711#")
        await h.settle(0.3)
        sent = " ".join(f"{p} {q}" for _, p, q in h.sim.requests)
        assert "Set(" not in sent and "Originate" not in sent and "0';" not in sent
        assert not any(p == "/channels" and m == "POST" for m, p, _ in h.sim.requests)
        # a blocked premium number keyed by a real advisor is never dialled
        adv2 = await h.sim.incoming(MOBILE)
        await h.wait(lambda: sum(m.endswith("enter-pin") for _, m in h.sim.plays) >= 2, "PIN prompt")
        await h.sim.dtmf(adv2, "4711#")
        await h.wait(lambda: any(m.endswith("enter-number") for _, m in h.sim.plays), "number prompt")
        await h.sim.dtmf(adv2, "0900123456#")
        await h.settle(0.3)
        assert not any(p == "/channels" and m == "POST" for m, p, _ in h.sim.requests)
        assert "number_refused" in [a["alert"] for a in alerts(app)]


async def test_advisor_mobile_drops_mid_recording(app, tmp_path):
    async with Harness(app, tmp_path) as h:
        adv, cus = await h.dial_in_to_optin()
        await h.sim.dtmf(cus, "1")
        await h.wait(lambda: len(h.sim.live) == 2, "recording")
        await asyncio.sleep(1.0)
        await h.sim.hangup(adv)  # the mobile network drops the advisor
        await h.wait(lambda: cus not in h.sim.channels, "customer leg ended by the application")
        await h.wait(lambda: len(recordings(app)) == 1 and not h.source.sessions, "archived")
        rec = recordings(app)[0]
        assert rec.two_sided and rec.channels == 2 and rec.duration >= 0.9


async def test_customer_not_reached_lets_the_advisor_key_again(app, tmp_path):
    async with Harness(app, tmp_path) as h:
        h.sim.callee["+4930123456"] = "busy"
        adv = await h.sim.incoming(MOBILE)
        await h.wait(lambda: any(m.endswith("enter-pin") for _, m in h.sim.plays), "PIN prompt")
        await h.sim.dtmf(adv, "4711#")
        await h.wait(lambda: any(m.endswith("enter-number") for _, m in h.sim.plays), "number prompt")
        await h.sim.dtmf(adv, "030123456#")
        await h.wait(lambda: any(m.startswith("digits:") for _, m in h.sim.plays), "read-back")
        await h.sim.dtmf(adv, "1")
        await h.wait(lambda: any(m.endswith("not-reached") for _, m in h.sim.plays), "not reached")
        await h.wait(lambda: sum(m.endswith("enter-number") for _, m in h.sim.plays) == 2, "asked again")
        assert adv in h.sim.channels and not recordings(app)
        originate = [q for m, p, q in h.sim.requests if m == "POST" and p == "/channels"]
        assert [q["endpoint"] for q in originate] == ["PJSIP/+4930123456@carrier"]
        assert originate[0]["app"] == "callfort-mobile" and originate[0]["appArgs"].startswith("customer,")


async def test_callfort_restart_mid_recording_still_archives_the_call(app, tmp_path):
    from cfcore.archive import consent_proofs
    from cfcore.capture.runner import CaptureRunner

    async with Harness(app, tmp_path) as h:
        adv, cus = await h.dial_in_to_optin()
        await h.sim.dtmf(cus, "1")
        await h.wait(lambda: len([r for r in h.sim.live.values() if r.state == "recording"]) == 2, "recording")
        await asyncio.sleep(0.5)
        # CallFort stops (the calls and recordings go on in Asterisk) and starts again
        await h.runner.stop()
        await asyncio.wait_for(h.task, 20)
        journal = list((tmp_path / "mobile-data" / "sessions").glob("*.json"))
        assert len(journal) == 1 and oct(journal[0].stat().st_mode & 0o777) == "0o600"
        from cf_mobile_ons import cf_capture_sources

        from hookspecs.types import PluginContext

        ctx = PluginContext(name="mobile_ons", config=_config(h), clock=app.clock.now,
                            data_dir=tmp_path / "mobile-data")
        (reg,) = cf_capture_sources()
        h.source = reg.create(app.plugin_options(reg, _config(h), "plugins.mobile_ons"), ctx)[0]
        h.runner = CaptureRunner(app, [h.source], poll_interval=0.05)
        h.task = asyncio.create_task(h.runner.run())
        await h.wait(lambda: h.source.client.connected.is_set() and h.source.sessions, "restarted with the session")
        await asyncio.sleep(0.5)
        await h.sim.hangup(cus)
        await h.wait(lambda: len(recordings(app)) == 1 and not h.source.sessions, "archived after the restart")
        rec = recordings(app)[0]
        assert rec.two_sided and rec.duration >= 0.9
        [c] = consent_proofs(app, COMPLIANCE, rec.id)
        assert c["proof"]["customer_leg_id"] == cus and c["proof"]["digit"] == "1"
        assert not list((tmp_path / "mobile-data" / "sessions").glob("*.json"))


def _config(h: Harness) -> dict[str, Any]:
    from cf_mobile_ons.pins import hash_pin

    return {"ari_url": h.sim.url, "ari_username": h.sim.username, "ari_password": Secret(h.sim.password),
            "dial_endpoint": "PJSIP/{number}@carrier", "caller_id": "+4930999000",
            "announcement": {"id": "mobile-consent", "version": "3", "media": "sound:callfort/consent-v3",
                             "sha256": ANN_SHA},
            "advisors": {"A100": {"mobile": MOBILE, "pin_hash": hash_pin("4711")}},
            "input_timeout": 5, "optin_timeout": 1.0, "finish_timeout": 3}
