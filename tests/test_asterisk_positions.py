"""Issue 13: mode boundaries are positions in the audio as written, not clock offsets.

Measured on a real Asterisk 22 (FIELD-NOTES 2026-12-02): MixMonitor writes nothing while no RTP
flows in either direction (hold, silence suppression on both phones), so a 28 s call with no
packets from 8 to 16 s gave 20 s files; the consent clicked at 20 s of the call lies at 12 s of
the audio. Timed on the clock, the consent fell past the end of the file, the customer's consented
voice was dropped and the recording was archived advisor-only, with 30 days' retention instead of
MiFID's five years. These tests reproduce that case on the stricter simulator.
"""

from __future__ import annotations

import pytest

from cfcore.defaults.retention_rules import MIFID_CLASS
from tests.asterisk_sim import (
    SLACK,
    assert_segments,
    audit_entries,
    channel,
    has_tone,
    is_silent,
    leg_id,
    live_call,
    make_user,
    mode_requests,
    recording,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]

CUSTOMER = "+4930123456"




async def test_no_rtp_gap_then_consent_keeps_the_consented_audio_as_mifid(harness, frozen_clock):
    """The measured case: 28 s call, no RTP from 8 to 16 s, "record both sides" at 20 s."""
    async with harness() as h:
        anna = make_user(h.app, "anna", ["advisor"], advisor_id="A100")
        call = h.sim.inbound_call(CUSTOMER, "PJSIP/100")
        cid = await h.answered(call)
        frozen_clock.advance(8)
        h.sim.rtp(call, advisor=False, customer=False)  # both phones fall silent (no packets)
        frozen_clock.advance(8)
        h.sim.rtp(call, advisor=True, customer=True)
        frozen_clock.advance(4)
        await h.trigger(anna, cid, "record_both")
        frozen_clock.advance(8)
        h.sim.hangup(call)
        rec_id = await h.archived(cid)
        mon = h.sim.monitor_of(call)
    # The PBX unmuted the customer at sample 96000: 12.0 s into the audio (20 s into the call).
    assert mon.mutes[-1] == ("write", False, 12 * 8000)
    rec = recording(h.app, rec_id)
    assert rec.duration == 20.0  # 28 s call, 8 s without frames
    assert_segments(h.app, rec_id, [(0.0, 12.0, "advisor_only"), (12.0, 20.0, "both")])
    both = rec.segments[1]
    # The window the plugin measured holds the true position; the stretch starts at its upper end.
    assert both.start_lo <= 12.0 <= both.start == both.start_hi <= 12.0 + SLACK
    assert rec.two_sided and rec.channels == 2 and rec.retention_class == MIFID_CLASS
    assert [c.offset for c in rec.consents] == [both.start]
    cus = channel(h.app, rec_id, "customer")
    assert is_silent(cus, 0, 12.0), "customer audio before the consent"
    assert has_tone(cus, both.start, 20.0), "consented customer audio lost"
    assert has_tone(channel(h.app, rec_id, "advisor"), 0, 20.0)
    # No clamp, no drop: nothing to warn about.
    assert audit_entries(h.app, "recording.capture_warning") == []


async def test_pause_after_a_gap_lands_on_the_audio_as_written(harness, frozen_clock):
    """Consent at 4 s, no RTP from 8 to 16 s, pause at 20 s (12 s of audio), resume at 24 s
    (16 s of audio), hang-up at 28 s: the card data between 12 and 16 s of audio is gone from both
    channels, everything else is kept."""
    async with harness() as h:
        anna = make_user(h.app, "anna", ["advisor"], advisor_id="A100")
        call = h.sim.inbound_call(CUSTOMER, "PJSIP/100")
        cid = await h.answered(call)
        frozen_clock.advance(4)
        await h.trigger(anna, cid, "record_both")
        frozen_clock.advance(4)
        h.sim.rtp(call, advisor=False, customer=False)
        frozen_clock.advance(8)
        h.sim.rtp(call, advisor=True, customer=True)
        frozen_clock.advance(4)
        await h.trigger(anna, cid, "pause")
        frozen_clock.advance(4)
        await h.trigger(anna, cid, "resume")
        frozen_clock.advance(4)
        h.sim.hangup(call)
        rec_id = await h.archived(cid)
        mon = h.sim.monitor_of(call)
    assert [(d, st, pos / 8000) for d, st, pos in mon.mutes] == [
        ("write", True, 0.0), ("write", False, 4.0), ("both", True, 12.0), ("both", False, 16.0)]
    assert_segments(h.app, rec_id, [(0.0, 4.0, "advisor_only"), (4.0, 12.0, "both"), (12.0, 16.0, "paused"),
                                    (16.0, 20.0, "both")])
    rec = recording(h.app, rec_id)
    paused, resumed = rec.segments[2], rec.segments[3]
    # A pause keeps less: it starts at the lower end of its window, the resume at the upper end.
    assert paused.start_lo == paused.start <= 12.0 <= paused.start_hi
    assert resumed.start_lo <= 16.0 <= resumed.start == resumed.start_hi
    adv, cus = channel(h.app, rec_id, "advisor"), channel(h.app, rec_id, "customer")
    assert is_silent(adv, paused.start, resumed.start) and is_silent(cus, paused.start, resumed.start)
    assert has_tone(adv, 0, paused.start) and has_tone(adv, resumed.start, 20.0)
    assert is_silent(cus, 0, 4.0) and has_tone(cus, rec.segments[1].start, paused.start)
    assert has_tone(cus, resumed.start, 20.0)
    assert rec.retention_class == MIFID_CLASS and len(rec.consents) == 1  # the resume is no new consent


async def test_consent_without_surviving_customer_audio_stays_mifid_with_a_warning(harness, frozen_clock):
    """The customer hangs up the moment the PBX applied the consent: no consented audio made it
    into the files. The recording is still two-sided (MiFID) and the loss is an audited warning
    and an FIS finding, never a silent reclassification."""
    from tests.fis_helpers import alerts_of, scan_rules

    async with harness() as h:
        anna = make_user(h.app, "anna", ["advisor"], advisor_id="A100")
        call = h.sim.inbound_call(CUSTOMER, "PJSIP/100")
        cid = await h.answered(call)
        frozen_clock.advance(10)
        await h.trigger(anna, cid, "record_both")
        h.sim.hangup(call)  # at once: nothing written after the unmute
        rec_id = await h.archived(cid)
    rec = recording(h.app, rec_id)
    assert rec.two_sided and rec.retention_class == MIFID_CLASS and rec.channels == 1
    assert [c.by_user for c in rec.consents] == ["anna"]
    warnings = audit_entries(h.app, "recording.capture_warning", rec_id)
    assert len(warnings) == 1 and warnings[0].outcome == "warning"
    assert "no customer audio kept" in warnings[0].detail["warnings"][0]
    scan_rules(h.app)
    found = alerts_of(h.app, "capture-loss")
    assert len(found) == 1 and rec_id in found[0].summary


async def test_consent_times_are_the_click_and_the_pbx_confirmation(harness, frozen_clock):
    """The consent keeps when the advisor acted (not when the request row was written, which
    trails a CLI's start-up by seconds) and when the PBX applied it."""
    from datetime import timedelta

    from cfcore.capture import controller

    async with harness() as h:
        anna = make_user(h.app, "anna", ["advisor"], advisor_id="A100")
        call = h.sim.inbound_call(CUSTOMER, "PJSIP/100")
        cid = await h.answered(call)
        frozen_clock.advance(10)
        clicked = frozen_clock.now() - timedelta(seconds=3.2)
        await h.trigger(anna, cid, "record_both")  # no click time given: the request's time
        frozen_clock.advance(1)
        await h.trigger(anna, cid, "pause")
        frozen_clock.advance(1)
        import asyncio

        req = await asyncio.to_thread(controller.trigger, h.app, anna, cid, "record_both", "cti", 10.0,
                                      frozen_clock.now() - timedelta(seconds=3.2))
        assert req.status == "applied"
        frozen_clock.advance(2)
        # A client cannot date its click arbitrarily far back (or forward).
        await h.trigger(anna, cid, "pause")
        req = await asyncio.to_thread(controller.trigger, h.app, anna, cid, "resume", "cti", 10.0,
                                      frozen_clock.now() - timedelta(days=1))
        frozen_clock.advance(1)
        h.sim.hangup(call)
        rec_id = await h.archived(cid)
        reqs = mode_requests(h.app, cid)
    first, second = recording(h.app, rec_id).consents
    assert first.given_at == clicked + timedelta(seconds=3.2) and first.applied_at == first.given_at
    assert second.given_at == clicked + timedelta(seconds=2) and second.method == "cti"
    assert second.applied_at == clicked + timedelta(seconds=5.2)
    resume = [r for r in reqs if r.action == "resume"][0]
    assert resume.requested_at - resume.acted_at == controller.MAX_ACTED_BEFORE
    assert live_call(h.app, cid).state == "archived" and leg_id(call) == cid


def test_two_sided_segments_past_the_files_are_a_warning_not_a_reclassification(app, tmp_path):
    """A source reports a two-sided stretch that the files do not (fully) hold: ingest keeps what
    there is, classifies by the consent, and audits what was cut or dropped."""
    import wave
    from datetime import UTC, datetime

    from cfcore.ingest import ingest_call
    from hookspecs.types import (
        ChannelFile,
        ChannelRole,
        Consent,
        Direction,
        FinishedCall,
        ModeSegment,
        RecordingMode,
    )
    from tests.fis_helpers import alerts_of, scan_rules

    def wav(path, seconds):
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(b"\x10\x20" * int(seconds * 8000))
        return path

    start = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    segs = (ModeSegment(start=0.0, end=1.0, mode=RecordingMode.ADVISOR_ONLY),
            ModeSegment(start=1.0, end=2.5, mode=RecordingMode.BOTH, start_bounds=(0.9, 1.0)),
            ModeSegment(start=2.5, end=3.0, mode=RecordingMode.PAUSED),
            ModeSegment(start=3.0, end=4.0, mode=RecordingMode.BOTH))
    call = FinishedCall(call_id="c1", source="asterisk", advisor_id="A100", started_at=start,
                        direction=Direction.INBOUND, segments=segs, pbx_call_id="p1",
                        files=(ChannelFile(role=ChannelRole.ADVISOR, path=wav(tmp_path / "a.wav", 2.0)),
                               ChannelFile(role=ChannelRole.CUSTOMER, path=wav(tmp_path / "c.wav", 2.0))),
                        consents=(Consent(given_at=start, offset=1.0, by_user="anna", method="cli", applied_at=start),))
    rec_id = ingest_call(app, call)
    rec = recording(app, rec_id)
    assert rec.two_sided and rec.retention_class == MIFID_CLASS and rec.duration == 2.0
    assert [(s.start, s.end, s.mode, s.start_lo, s.start_hi) for s in rec.segments] == [
        (0.0, 1.0, "advisor_only", None, None), (1.0, 2.0, "both", 0.9, 1.0)]
    assert rec.consents[0].applied_at == start
    (entry,) = audit_entries(app, "recording.capture_warning", rec_id)
    assert [w.split(":")[0] for w in entry.detail["warnings"]] == [
        "two-sided segment 1.000-2.500 s cut", "two-sided segment 3.000-4.000 s dropped"]
    scan_rules(app)
    assert len(alerts_of(app, "capture-loss")) == 1


def test_window_without_a_size_falls_back_to_the_clock_and_a_pause_reaches_back(tmp_path):
    """No size could be read (SFTP down): the upper end comes from the clock (a file never holds
    more audio than time passed), the lower end is the previous boundary. A pause whose window
    starts before the last boundary wins over what it overlaps."""
    from datetime import UTC, datetime, timedelta

    from cf_pbx_asterisk.config import AsteriskSettings
    from cf_pbx_asterisk.source import AsteriskSource, Leg

    from hookspecs.options import Secret
    from hookspecs.types import Direction, RecordingMode

    t0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    settings = AsteriskSettings.from_mapping({"host": "pbx", "username": "u", "secret": Secret("s"),
                                              "recordings_dir": str(tmp_path), "write_buffer": 4096})
    src = AsteriskSource(settings, clock=lambda: t0, data_dir=tmp_path / "data")
    leg = Leg(call_id="c", advisor_id="A1", adv_uniqueid="1.1", adv_channel="PJSIP/100-1", pbx_call_id="1.0",
              direction=Direction.INBOUND, customer_number=None, customer_uniqueid=None, reported_at=t0,
              rec_started_at=t0, monitor_at=t0 - timedelta(seconds=2), mode_since=3.0)
    assert src._window(leg, None, None, t0 + timedelta(seconds=10)) == (3.0, 12.02)
    # With sizes: [before, after + buffer + one frame], capped by the clock.
    assert src._window(leg, 5.0, 5.1, t0 + timedelta(seconds=10)) == (5.0, round(5.1 + (4096 + 320) / 16000, 6))
    assert src._window(leg, 5.0, 5.1, t0 - timedelta(seconds=1.95)) == (5.0, 5.0)  # cap below: never < lo
    leg.switch(RecordingMode.BOTH, 6.0, (5.8, 6.0))
    leg.switch(RecordingMode.PAUSED, 5.9, (5.9, 6.1))  # a pause in the same window: it wins
    leg.close()
    assert leg.segments == [(3.0, 5.9, "advisor_only", None), (5.9, None, "paused", (5.9, 6.1))]
