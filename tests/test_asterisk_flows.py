"""Call flows through the whole chain: simulated Asterisk → AMI → pbx_asterisk plugin → capture
runner → controller → ingest → archive. Every flow ends in the archive with the right mode
segments, and the decoded customer channel is silent before the consent time.

Time is a FrozenClock shared by the simulator and the deployment: the simulator writes exactly
as much audio as the clock moved, so offsets are exact.
"""

from __future__ import annotations

import asyncio

import pytest

from cfcore.capture.controller import CaptureUnavailable
from cfcore.errors import AccessDenied, ConflictError
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
    mixmonitors,
    mode_requests,
    recording,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]


CUSTOMER = "+4930123456"



def assert_customer_silent_before(app, rec_id, consent_offset):
    cus = channel(app, rec_id, "customer")
    if consent_offset is None:
        assert cus is None, "no consent: no customer channel may be stored"
        assert not recording(app, rec_id).two_sided
        return
    assert cus is not None
    assert is_silent(cus, 0, consent_offset), "customer audio before the consent"


async def test_inbound_consent_mid_call(harness, frozen_clock):
    async with harness() as h:
        adv = make_user(h.app, "anna", ["advisor"], advisor_id="A100")
        call = h.sim.inbound_call(CUSTOMER, "PJSIP/100")
        await h.settle()
        cid = leg_id(call)
        row = live_call(h.app, cid)
        assert (row.state, row.mode, row.advisor_id, row.direction) == ("ringing", "advisor_only", "A100", "in")
        assert row.customer_hint == "+49******56"  # never the number in clear
        # MixMonitor already runs while the phone rings, the customer muted, nothing written yet.
        mon = h.sim.monitor_of(call)
        assert mon is not None and mon.mute_write and mon.bridged_only and mon.written == 0
        assert await h.answered(call) == cid
        frozen_clock.advance(12)
        req = await h.trigger(adv, cid, "record_both")
        assert (req.status, req.mode) == ("applied", "both")
        mon = h.sim.monitor_of(call)
        assert mon is not None and mon.mute_write is False
        frozen_clock.advance(8)
        h.sim.hangup(call)
        rec_id = await h.archived(cid)

    app = h.app
    assert_segments(app, rec_id, [(0.0, 12.0, "advisor_only"), (12.0, 20.0, "both")])
    rec = recording(app, rec_id)
    assert rec.two_sided and rec.direction == "in" and rec.advisor_id == "A100" and rec.source == "asterisk"
    assert rec.pbx_call_id == call.linkedid
    both = rec.segments[1]
    assert [(c.offset, c.by_user, c.method) for c in rec.consents] == [(both.start, "anna", "api")]
    # The switch happened at sample 96000 (12.0 s); the window the plugin measured holds it and the
    # two-sided stretch starts at its upper end (fail-safe), here at most one frame later.
    assert h.sim.monitor_of(call).mutes[-1] == ("write", False, 96000)
    assert both.start_lo <= 12.0 <= both.start_hi == both.start <= 12.0 + 0.0201
    assert len(rec.subjects) == 1 and rec.subjects[0].kind == "number"
    adv_pcm, cus_pcm = channel(app, rec_id, "advisor"), channel(app, rec_id, "customer")
    assert len(adv_pcm) == len(cus_pcm) == 20 * 8000 * 2
    assert has_tone(adv_pcm, 0, 20)
    assert_customer_silent_before(app, rec_id, 12.0)
    assert has_tone(cus_pcm, 12.0, 20.0)
    # The consent is audited in the advisor's name, with the PC and IP of the request.
    applied = [e for e in audit_entries(app, "call.record_both", cid) if e.outcome == "ok"]
    assert len(applied) == 1 and (applied[0].user, applied[0].host, applied[0].ip) == ("anna", "advisor-pc", "10.0.0.7")
    # The plugin removed the PBX's files once the archive confirmed them.
    assert not list(h.spool.glob("*.wav"))
    # MixMonitor was started on the advisor channel with separate r() and t() files, muted at once.
    names = [a for a, _ in h.sim.actions]
    i = next(n for n, (a, f) in enumerate(h.sim.actions) if a == "MixMonitor" and f["Channel"] == call.advisor.name)
    assert names[i + 1] == "MixMonitorMute"
    mm = h.sim.actions[i][1]
    # b: MixMonitor writes only while bridged; it was started (and muted) while the phone rang.
    assert mm["Options"].startswith("br(") and "t(" in mm["Options"]
    assert h.sim.actions[i + 1][1] == {"Action": "MixMonitorMute", "ActionID": h.sim.actions[i + 1][1]["ActionID"],
                                       "Channel": call.advisor.name, "Direction": "write", "State": "1"}


async def test_outbound_without_consent_keeps_advisor_only(harness, frozen_clock):
    async with harness() as h:
        call = h.sim.outbound_call("PJSIP/101", "+4940555777")
        await h.settle()
        cid = leg_id(call)
        # The trunk's Newchannel carries no number (Exten=s): it arrives by NewCallerid.
        assert live_call(h.app, cid).direction == "out"
        assert live_call(h.app, cid).customer_hint == "+49******77"
        await h.answered(call)
        frozen_clock.advance(15)
        h.sim.hangup(call, by="advisor")
        rec_id = await h.archived(cid)
    assert_segments(h.app, rec_id, [(0.0, 15.0, "advisor_only")])
    rec = recording(h.app, rec_id)
    assert rec.direction == "out" and rec.advisor_id == "A101" and not rec.consents
    assert len(rec.subjects) == 1 and not rec.two_sided and rec.retention_class == "advisor-only"
    assert_customer_silent_before(h.app, rec_id, None)
    assert has_tone(channel(h.app, rec_id, "advisor"), 0, 15)


async def test_hold_keeps_the_mode_and_is_reported(harness, frozen_clock):
    async with harness() as h:
        adv = make_user(h.app, "anna", ["advisor"], advisor_id="A100")
        call = h.sim.inbound_call(CUSTOMER, "PJSIP/100")
        cid = await h.answered(call)
        frozen_clock.advance(5)
        await h.trigger(adv, cid, "record_both")
        frozen_clock.advance(5)
        h.sim.hold(call)
        await h.wait_state(cid, ("held",))
        frozen_clock.advance(10)
        h.sim.unhold(call)
        await h.wait_state(cid, ("recording",))
        frozen_clock.advance(5)
        h.sim.hangup(call)
        rec_id = await h.archived(cid)
    # On hold nobody sends frames on the advisor's channel: MixMonitor wrote nothing for those
    # 10 s (music on hold is not recorded), so the files hold 15 s of a 25 s call.
    assert_segments(h.app, rec_id, [(0.0, 5.0, "advisor_only"), (5.0, 15.0, "both")])
    cus = channel(h.app, rec_id, "customer")
    assert_customer_silent_before(h.app, rec_id, 5.0)
    assert has_tone(cus, 5.03, 15) and recording(h.app, rec_id).duration == 15.0


async def test_pause_and_resume_for_card_data(harness, frozen_clock):
    async with harness() as h:
        adv = make_user(h.app, "anna", ["advisor"], advisor_id="A100")
        call = h.sim.inbound_call(CUSTOMER, "PJSIP/100")
        cid = await h.answered(call)
        frozen_clock.advance(4)
        await h.trigger(adv, cid, "record_both")
        frozen_clock.advance(6)
        req = await h.trigger(adv, cid, "pause")
        assert req.mode == "paused"
        mon = h.sim.monitor_of(call)
        assert mon.mute_read and mon.mute_write
        frozen_clock.advance(7)
        req = await h.trigger(adv, cid, "resume")
        assert req.mode == "both"  # the mode before the pause
        frozen_clock.advance(3)
        h.sim.hangup(call)
        rec_id = await h.archived(cid)
    assert_segments(h.app, rec_id, [(0.0, 4.0, "advisor_only"), (4.0, 10.0, "both"), (10.0, 17.0, "paused"),
                                          (17.0, 20.0, "both")])
    adv_pcm, cus = channel(h.app, rec_id, "advisor"), channel(h.app, rec_id, "customer")
    assert_customer_silent_before(h.app, rec_id, 4.0)
    assert is_silent(adv_pcm, 10, 17) and is_silent(cus, 10, 17)
    assert has_tone(adv_pcm, 17, 20) and has_tone(cus, 17, 20)
    with pytest.raises(ConflictError):
        await h.trigger(adv, cid, "resume")  # the call has ended


async def test_blind_transfer_gives_one_recording_per_advisor_leg(harness, frozen_clock):
    async with harness() as h:
        anna = make_user(h.app, "anna", ["advisor"], advisor_id="A100")
        make_user(h.app, "bert", ["advisor"], advisor_id="A101")
        call = h.sim.inbound_call(CUSTOMER, "PJSIP/100")
        first = await h.answered(call)
        frozen_clock.advance(6)
        await h.trigger(anna, first, "record_both")
        frozen_clock.advance(4)
        second_call = h.sim.blind_transfer(call, "PJSIP/101")
        await h.settle()
        frozen_clock.advance(2)  # ringing at the second advisor
        second = await h.answered(second_call)
        assert second != first
        frozen_clock.advance(9)
        # Anna's consent does not carry over: the new leg starts advisor-only, and only Bert may
        # switch it.
        with pytest.raises(AccessDenied):
            await h.trigger(anna, second, "record_both")
        h.sim.hangup(second_call)
        rec1, rec2 = await h.archived(first), await h.archived(second)
    assert rec1 != rec2
    r1, r2 = recording(h.app, rec1), recording(h.app, rec2)
    assert (r1.advisor_id, r2.advisor_id) == ("A100", "A101")
    assert r1.pbx_call_id == r2.pbx_call_id == call.linkedid
    assert_segments(h.app, rec1, [(0.0, 6.0, "advisor_only"), (6.0, 10.0, "both")])
    assert_segments(h.app, rec2, [(0.0, 9.0, "advisor_only")])
    assert_customer_silent_before(h.app, rec1, 6.0)
    assert_customer_silent_before(h.app, rec2, None)
    assert live_call(h.app, first).transferred_to == "101"


async def test_hangup_before_answer_records_nothing(harness, frozen_clock):
    """Measured on Asterisk 22: the caller gives up while the phone rings (cause 127, TechCause).
    MixMonitor was armed while ringing but, bridged never, wrote nothing; its empty files are
    removed and no recording is made."""
    async with harness() as h:
        call = h.sim.inbound_call(CUSTOMER, "PJSIP/102")
        await h.settle()
        cid = leg_id(call)
        mon = h.sim.monitor_of(call)
        assert mon is not None and mon.mute_write  # armed and muted before anything can flow
        frozen_clock.advance(7)
        h.sim.hangup(call)
        row = await h.wait_state(cid, ("ended",))
        assert row.answered_at is None and row.recording_id is None
        assert "cause 127" in row.end_reason
        assert mon.written == 0
        await h.sim.wait_for(lambda: not list(h.spool.glob("*.wav")), what="the empty files removed")
        await h.sim.wait_for(lambda: not h.source._pickups, what="the clean-up finished")
        assert h.source.journal.legs() == []
        from cfcore.db.models import Recording

        with h.app.catalog.session() as s:
            assert s.query(Recording).count() == 0


async def test_hangup_while_consent_is_pending(harness, frozen_clock):
    """The customer hangs up after the advisor asked but before the runner reached the PBX."""
    async with harness() as h:
        adv = make_user(h.app, "anna", ["advisor"], advisor_id="A100")
        call = h.sim.inbound_call(CUSTOMER, "PJSIP/100")
        cid = await h.answered(call)
        frozen_clock.advance(10)
        await h.stop_runner()  # nobody applies requests for a moment
        from cfcore.capture import controller

        req = await asyncio.to_thread(controller.request_mode, h.app, adv, cid, "record_both", "web")
        assert req.status == "pending"
        h.sim.hangup(call)
        await h.start_runner()  # reconnects, finds the call gone, finishes the leg
        rec_id = await h.archived(cid)
        assert [r.status for r in mode_requests(h.app, cid)] == ["failed"]
    assert_segments(h.app, rec_id, [(0.0, 10.0, "advisor_only")])
    assert not recording(h.app, rec_id).consents
    assert_customer_silent_before(h.app, rec_id, None)


async def test_hangup_while_the_pbx_applies_the_consent(harness, frozen_clock):
    """The customer hangs up at the very moment the unmute reaches Asterisk."""
    async with harness() as h:
        adv = make_user(h.app, "anna", ["advisor"], advisor_id="A100")
        call = h.sim.inbound_call(CUSTOMER, "PJSIP/100")
        cid = await h.answered(call)
        frozen_clock.advance(10)

        def hang_up_on_unmute(action, fields):
            if action.lower() == "mixmonitormute" and fields.get("state") == "0":
                h.sim.hangup(call)

        h.sim.before_action = hang_up_on_unmute
        with pytest.raises(ConflictError, match="failed"):
            await h.trigger(adv, cid, "record_both")
        rec_id = await h.archived(cid)
    assert [r.status for r in mode_requests(h.app, cid)] == ["failed"]
    assert_segments(h.app, rec_id, [(0.0, 10.0, "advisor_only")])
    assert not recording(h.app, rec_id).consents
    assert_customer_silent_before(h.app, rec_id, None)
    failed = [e for e in audit_entries(h.app, "call.record_both", cid) if e.outcome == "failed"]
    assert len(failed) == 1 and failed[0].user == "anna"


async def test_record_both_by_another_user_is_refused_and_audited(harness, frozen_clock):
    async with harness() as h:
        anna = make_user(h.app, "anna", ["advisor"], advisor_id="A100")
        bert = make_user(h.app, "bert", ["advisor"], advisor_id="A101")
        boss = make_user(h.app, "sue", ["supervisor"])
        admin = make_user(h.app, "root", ["administrator"])
        call = h.sim.inbound_call(CUSTOMER, "PJSIP/100")
        cid = await h.answered(call)
        frozen_clock.advance(5)
        for who in (bert, boss, admin):
            with pytest.raises(AccessDenied):
                await h.trigger(who, cid, "record_both")
        assert h.sim.monitor_of(call).mute_write  # still muted
        frozen_clock.advance(5)
        await h.trigger(anna, cid, "record_both")
        frozen_clock.advance(5)
        h.sim.hangup(call)
        rec_id = await h.archived(cid)
    denied = [e for e in audit_entries(h.app, "call.record_both", cid) if e.outcome == "denied"]
    assert sorted(e.user for e in denied) == ["bert", "root", "sue"]
    assert all(e.host == "advisor-pc" and e.ip == "10.0.0.7" for e in denied)
    assert_segments(h.app, rec_id, [(0.0, 10.0, "advisor_only"), (10.0, 15.0, "both")])
    assert [c.by_user for c in recording(h.app, rec_id).consents] == ["anna"]
    assert_customer_silent_before(h.app, rec_id, 10.0)


async def test_core_drops_customer_audio_when_the_pbx_does_not_mute(harness, frozen_clock):
    """A PBX that ignores MixMonitorMute writes the customer's voice all along: the archive must
    still hold nothing of it outside BOTH."""
    async with harness(sim_kwargs={"honour_mute": False}) as h:
        adv = make_user(h.app, "anna", ["advisor"], advisor_id="A100")
        call = h.sim.inbound_call(CUSTOMER, "PJSIP/100")
        cid = await h.answered(call)
        frozen_clock.advance(9)
        await h.trigger(adv, cid, "record_both")
        frozen_clock.advance(6)
        await h.trigger(adv, cid, "pause")
        frozen_clock.advance(3)
        h.sim.hangup(call)
        rec_id = await h.archived(cid)
        # (the PBX's customer file held the tone from the start; it was removed after archiving)
    cus = channel(h.app, rec_id, "customer")
    assert_customer_silent_before(h.app, rec_id, 9.0)
    assert has_tone(cus, 9, 15) and is_silent(cus, 15, 18)


async def test_ami_connection_lost_mid_call_and_restored(harness, frozen_clock):
    """The AMI link drops during a call and stays down for a while; no call is lost: the one that
    went on is recorded to its end (consent after the outage works), the one that ended during
    the outage is finished and archived, and a call that started during the outage is picked up."""
    async with harness() as h:
        anna = make_user(h.app, "anna", ["advisor"], advisor_id="A100")
        call_a = h.sim.inbound_call(CUSTOMER, "PJSIP/100")
        a = await h.answered(call_a)
        call_b = h.sim.outbound_call("PJSIP/101", "+4940555777")
        b = await h.answered(call_b)
        frozen_clock.advance(5)
        connects = h.source.client.connects
        h.sim.refusing = True
        h.sim.drop_connections()
        await h.sim.wait_for(lambda: not h.source.client.connected.is_set(), what="the plugin notices the drop")
        with pytest.raises(CaptureUnavailable, match="not reachable"):
            await h.trigger(anna, a, "record_both")  # cannot be applied now: said clearly
        assert [r.status for r in mode_requests(h.app, a)] == ["unavailable"]
        frozen_clock.advance(5)
        h.sim.hangup(call_b)  # ends while nobody listens
        call_c = h.sim.inbound_call("+4989111222", "PJSIP/102")
        h.sim.answer(call_c)  # starts while nobody listens
        frozen_clock.advance(3)
        h.sim.refusing = False
        await h.sim.wait_for(lambda: h.source.client.connects > connects and h.source.resyncs >= 2,
                             what="reconnect and resync")
        await h.settle()
        c = leg_id(call_c)
        await h.sim.wait_recording(call_c)
        rec_b = await h.archived(b)
        frozen_clock.advance(2)
        await h.trigger(anna, a, "record_both")
        frozen_clock.advance(4)
        h.sim.hangup(call_a)
        h.sim.hangup(call_c)
        rec_a, rec_c = await h.archived(a), await h.archived(c)
    # call A: one recording across the outage; Asterisk kept MixMonitor running meanwhile.
    assert_segments(h.app, rec_a, [(0.0, 15.0, "advisor_only"), (15.0, 19.0, "both")])
    assert_customer_silent_before(h.app, rec_a, 15.0)
    assert len(channel(h.app, rec_a, "advisor")) == 19 * 8000 * 2
    # call B ended during the outage: its files are complete (10 s), its segments clamped to them.
    assert_segments(h.app, rec_b, [(0.0, 10.0, "advisor_only")])
    assert_customer_silent_before(h.app, rec_b, None)
    # call C was found at the resync and recorded from then on.
    assert_segments(h.app, rec_c, [(0.0, 6.0, "advisor_only")])
    assert_customer_silent_before(h.app, rec_c, None)


async def test_runner_restart_mid_call_keeps_the_leg(harness, frozen_clock):
    """The capture runner (the process) stops mid-call and starts again: the leg and its mode
    come back from the plugin's journal and the call is recorded once, to its end."""
    async with harness() as h:
        anna = make_user(h.app, "anna", ["advisor"], advisor_id="A100")
        call = h.sim.inbound_call(CUSTOMER, "PJSIP/100")
        cid = await h.answered(call)
        frozen_clock.advance(3)
        await h.trigger(anna, cid, "record_both")
        frozen_clock.advance(4)
        await h.stop_runner()
        frozen_clock.advance(6)
        await h.start_runner()
        await h.settle()
        frozen_clock.advance(2)
        await h.trigger(anna, cid, "pause")
        frozen_clock.advance(1)
        h.sim.hangup(call)
        rec_id = await h.archived(cid)
        started = mixmonitors(h.sim)
    assert len(started) == 1
    assert_segments(h.app, rec_id, [(0.0, 3.0, "advisor_only"), (3.0, 15.0, "both"), (15.0, 16.0, "paused")])
    assert_customer_silent_before(h.app, rec_id, 3.0)
    from cfcore.db.models import Recording

    with h.app.catalog.session() as s:
        assert s.query(Recording).count() == 1


async def test_one_runner_per_source_and_leftovers_are_reaped(harness, frozen_clock):
    """A second runner for the same PBX is refused (two MixMonitors per call would race for the
    files); a runner that starts after a crash fails the requests the dead one was applying."""
    from cfcore.capture import controller
    from cfcore.capture.runner import CaptureError, CaptureRunner
    from cfcore.db.models_capture import ModeRequest

    async with harness() as h:
        anna = make_user(h.app, "anna", ["advisor"], advisor_id="A100")
        second = CaptureRunner(h.app, list(h.runner.sources.values()))
        with pytest.raises(CaptureError, match="already run by runner"):
            await second.run()
        call = h.sim.inbound_call(CUSTOMER, "PJSIP/100")
        cid = await h.answered(call)
        await h.stop_runner()
        req = await asyncio.to_thread(controller.request_mode, h.app, anna, cid, "pause", "cli")
        with h.app.catalog.session() as s:  # a runner claimed it and died
            s.get(ModeRequest, req.id).status = "applying"
        await h.start_runner()
        assert [(r.status, r.message) for r in mode_requests(h.app, cid)] == [
            ("failed", "the capture runner stopped while applying the request")]
        frozen_clock.advance(3)
        h.sim.hangup(call)
        rec_id = await h.archived(cid)
    assert_segments(h.app, rec_id, [(0.0, 3.0, "advisor_only")])


async def test_attended_transfer(harness, frozen_clock):
    """Anna consults bert (an internal call: not recorded), then hands the customer over: her leg
    ends with her consent, bert's leg starts advisor-only."""
    async with harness() as h:
        anna = make_user(h.app, "anna", ["advisor"], advisor_id="A100")
        bert = make_user(h.app, "bert", ["advisor"], advisor_id="A101")
        call = h.sim.inbound_call(CUSTOMER, "PJSIP/100")
        first = await h.answered(call)
        frozen_clock.advance(5)
        await h.trigger(anna, first, "record_both")
        frozen_clock.advance(5)
        consult = h.sim.start_consult(call, "PJSIP/101")
        await h.wait_state(first, ("held",))
        frozen_clock.advance(2)
        h.sim.answer(consult)
        await h.settle()
        frozen_clock.advance(6)  # anna and bert talk; the customer waits on hold
        new = h.sim.complete_attended_transfer(call, consult)
        await h.sim.wait_recording(new)
        second = leg_id(new)
        await h.wait_state(second, ("recording",))
        frozen_clock.advance(3)
        await h.trigger(bert, second, "record_both")
        frozen_clock.advance(4)
        h.sim.hangup(new)
        rec1, rec2 = await h.archived(first), await h.archived(second)
        assert len(mixmonitors(h.sim)) == 2  # the consult call is not recorded
    assert live_call(h.app, first).transferred_to == "A101"
    assert_segments(h.app, rec1, [(0.0, 5.0, "advisor_only"), (5.0, 10.0, "both")])
    assert_segments(h.app, rec2, [(0.0, 3.0, "advisor_only"), (3.0, 7.0, "both")])
    cus1 = channel(h.app, rec1, "customer")
    assert_customer_silent_before(h.app, rec1, 5.0)
    # on hold while anna consulted: no frames, nothing written (the file ends at 10 s)
    assert has_tone(cus1, 5.03, 10) and recording(h.app, rec1).duration == 10.0
    assert_customer_silent_before(h.app, rec2, 3.0)
    assert has_tone(channel(h.app, rec2, "customer"), 3, 7)
    r1, r2 = recording(h.app, rec1), recording(h.app, rec2)
    assert r1.pbx_call_id == r2.pbx_call_id == call.linkedid and r2.direction == "in"


async def test_runner_restart_while_ringing_keeps_the_armed_monitor(harness, frozen_clock):
    """The process stops while the phone rings (MixMonitor armed and muted) and the call is
    answered meanwhile: the restarted runner finds the leg in its journal and the channel bridged,
    records it without a second MixMonitor, and dates the recording from the audio already
    written. A second call that rang and ended during the outage leaves nothing behind."""
    async with harness() as h:
        anna = make_user(h.app, "anna", ["advisor"], advisor_id="A100")
        call = h.sim.inbound_call(CUSTOMER, "PJSIP/100")
        missed = h.sim.inbound_call("+4989111222", "PJSIP/101")
        await h.settle()
        cid = leg_id(call)
        answered_at = frozen_clock.now()
        await h.stop_runner()
        h.sim.answer(call)  # while no CallFort process runs: the monitor was armed, the mute is on
        frozen_clock.advance(3)
        h.sim.hangup(missed)
        await h.start_runner()
        await h.wait_state(cid, ("recording",))
        frozen_clock.advance(2)
        await h.trigger(anna, cid, "record_both")
        frozen_clock.advance(4)
        h.sim.hangup(call)
        rec_id = await h.archived(cid)
        await h.sim.wait_for(lambda: not h.source._pickups, what="the missed call's files removed")
        assert len(mixmonitors(h.sim)) == 2  # one per call, none again after the restart
        assert sorted(p.name for p in h.spool.iterdir()) == []
    rec = recording(h.app, rec_id)
    # (estimated from the size the PBX had flushed: at most its write buffer late)
    assert rec.duration == 9.0 and 0 <= (rec.started_at - answered_at).total_seconds() <= SLACK
    assert_segments(h.app, rec_id, [(0.0, 5.0, "advisor_only"), (5.0, 9.0, "both")])
    assert_customer_silent_before(h.app, rec_id, 5.0)
    assert live_call(h.app, leg_id(missed)).state == "ended"
