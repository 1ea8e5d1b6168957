"""The simulator follows the real Asterisk 22 traces of FIELD-NOTES (2026-12-02), checked from
the wire with the plugin's own AMI connection: event order and fields of inbound, outbound and
unanswered calls, MixMonitor's responses and events, and files that grow only while frames flow,
through a write buffer."""

from __future__ import annotations

import asyncio
import struct

import pytest
from cf_pbx_asterisk.ami import AmiConnection, AmiError

from cfcore.clock import FrozenClock
from tests.asterisk_sim import AsteriskSim

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

IGNORED = {"FullyBooted", "VarSet", "Newexten", "DialState", "NewConnectedLine", "DeviceStateChange"}



class Wire:
    """A logged-in AMI session that keeps every event it receives."""

    def __init__(self, sim: AsteriskSim) -> None:
        self.sim = sim
        self.events: list = []
        self.conn: AmiConnection | None = None

    async def __aenter__(self) -> Wire:
        self.conn = await AmiConnection.open("127.0.0.1", self.sim.port, on_event=self.events.append)
        await self.conn.login(self.sim.username, self.sim.secret)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.conn is not None
        await self.conn.close()

    async def drain(self) -> None:
        assert self.conn is not None
        await self.conn.send("Ping")  # answered after every event sent before it

    def take(self) -> list:
        out = [e for e in self.events if e.event not in IGNORED]
        self.events.clear()
        return out


def names(events) -> list[tuple[str, str]]:
    return [(e.event, (e.get("Channel") or "").split("-")[0]) for e in events]


@pytest.fixture
def clock(frozen_clock):
    return frozen_clock


async def test_inbound_answered_hangup_order_and_fields(tmp_path, clock: FrozenClock):
    async with AsteriskSim(monitor_root=tmp_path, clock=clock) as sim, Wire(sim) as w:
        call = sim.inbound_call("+4930123456", "PJSIP/100")
        sim.answer(call)
        await w.drain()
        events = w.take()
        assert names(events)[-3:] == [("BridgeCreate", ""), ("BridgeEnter", "PJSIP/100"), ("BridgeEnter", "PJSIP/trunk")]
        enter = events[-1]
        assert enter.keys()[:3] == ["Event", "Privilege", "BridgeUniqueid"]  # Bridge* before the channel
        adv_new = next(e for e in events if e.event == "Newchannel" and e["Channel"].startswith("PJSIP/100"))
        assert adv_new["Context"] == "from-advisor" and adv_new["Exten"] == ""
        assert adv_new["Linkedid"] == call.customer.uniqueid
        sim.hangup(call)
        await w.drain()
        assert names(w.take()) == [
            ("HangupRequest", "PJSIP/trunk"), ("BridgeLeave", "PJSIP/trunk"), ("BridgeLeave", "PJSIP/100"),
            ("BridgeDestroy", ""), ("SoftHangupRequest", "PJSIP/trunk"), ("Hangup", "PJSIP/trunk"),
            ("Hangup", "PJSIP/100")]


async def test_hangup_keeps_the_last_state_and_unanswered_calls_have_cause_127(tmp_path, clock):
    async with AsteriskSim(monitor_root=tmp_path, clock=clock) as sim, Wire(sim) as w:
        call = sim.inbound_call("+4930123456", "PJSIP/100")
        await w.drain()
        w.take()
        sim.hangup(call)
        await w.drain()
        events = w.take()
        assert names(events) == [("HangupRequest", "PJSIP/trunk"), ("DialEnd", "PJSIP/trunk"),
                                 ("SoftHangupRequest", "PJSIP/100"), ("Hangup", "PJSIP/100"),
                                 ("Hangup", "PJSIP/trunk")]
        assert events[0]["Cause"] == "127" and events[1]["DialStatus"] == "CANCEL"
        hangups = [e for e in events if e.event == "Hangup"]
        assert [(e["Cause"], "TechCause" in e, e["ChannelState"]) for e in hangups] == [
            ("127", True, "5"), ("127", True, "4")]  # the last state, not 0 Down
        answered = sim.inbound_call("+4930123456", "PJSIP/100")
        sim.answer(answered)
        sim.hangup(answered)
        await w.drain()
        assert {e["ChannelState"] for e in w.take() if e.event == "Hangup"} == {"6"}


async def test_outbound_number_by_newcallerid_and_trunk_enters_first(tmp_path, clock):
    async with AsteriskSim(monitor_root=tmp_path, clock=clock) as sim, Wire(sim) as w:
        call = sim.outbound_call("PJSIP/101", "+4940555777")
        sim.answer(call)
        await w.drain()
        events = w.take()
        trunk_new = next(e for e in events if e.event == "Newchannel" and e["Channel"].startswith("PJSIP/trunk"))
        assert (trunk_new["CallerIDNum"], trunk_new["Exten"]) == ("<unknown>", "s")
        order = names(events)
        i_cid = order.index(("NewCallerid", "PJSIP/trunk"))
        i_ring = order.index(("Newstate", "PJSIP/trunk"))
        i_dial = order.index(("DialBegin", "PJSIP/101"))
        assert i_cid < i_ring < i_dial  # DialBegin follows the trunk's Newstate 5 (Ringing)
        assert events[i_cid]["CallerIDNum"] == "+4940555777" and events[i_ring]["ChannelState"] == "5"
        assert order[-2:] == [("BridgeEnter", "PJSIP/trunk"), ("BridgeEnter", "PJSIP/101")]


async def test_mixmonitor_responses_stop_events_and_files(tmp_path, clock):
    async with AsteriskSim(monitor_root=tmp_path, clock=clock, write_buffer=4096) as sim, Wire(sim) as w:
        assert w.conn is not None
        call = sim.inbound_call("+4930123456", "PJSIP/100")
        adv = call.advisor.name
        resp = await w.conn.send("MixMonitor", {"Channel": adv, "Options": f"br({tmp_path}/a.wav)t({tmp_path}/c.wav)"})
        assert "MixMonitorID" not in resp  # measured: the response carries no id
        await w.conn.send("MixMonitorMute", {"Channel": adv, "Direction": "write", "State": "1"})
        mon = sim.monitor_of(call)
        clock.advance(3)
        sim.tick()
        assert mon.written == 0  # ringing, not bridged: "b" writes nothing
        sim.answer(call)
        clock.advance(2)
        sim.tick()
        assert mon.written == 16000
        # The size a reader sees lags what MixMonitor wrote by less than the write buffer.
        visible = (tmp_path / "a.wav").stat().st_size
        assert visible % 4096 == 0 and 0 <= 44 + 2 * mon.written - visible < 4096
        sim.rtp(call, advisor=False, customer=False)  # nobody sends: no frames, no growth
        clock.advance(8)
        sim.tick()
        assert mon.written == 16000
        sim.rtp(call, customer=True)  # one direction flows: both files grow, the other silent
        clock.advance(1)
        sim.tick()
        assert mon.written == 24000
        sim.hold(call)
        clock.advance(5)
        sim.unhold(call)
        assert mon.written == 24000
        sim.hangup(call)
        await w.drain()
        assert "MixMonitorStop" not in [e.event for e in w.take()]  # none at hangup
        data = (tmp_path / "a.wav").read_bytes()
        assert struct.unpack_from("<I", data, 40)[0] == len(data) - 44 == 2 * 24000  # header sizes at close
        with pytest.raises(AmiError, match="No such channel"):
            await w.conn.send("StopMixMonitor", {"Channel": adv})  # the channel is gone: refused
        # An explicit StopMixMonitor on a live channel raises MixMonitorStop.
        other = sim.inbound_call("+4930999888", "PJSIP/101")
        sim.answer(other)
        await w.conn.send("MixMonitor", {"Channel": other.advisor.name,
                                         "Options": f"r({tmp_path}/b.wav)t({tmp_path}/d.wav)"})
        await w.conn.send("StopMixMonitor", {"Channel": other.advisor.name})
        await w.drain()
        assert "MixMonitorStop" in [e.event for e in w.take()]
        await asyncio.sleep(0)


async def test_write_permissions_are_enforced(tmp_path, clock):
    async with AsteriskSim(monitor_root=tmp_path, clock=clock, write_perms=("call",)) as sim, Wire(sim) as w:
        assert w.conn is not None
        for action in ("MixMonitor", "CoreShowChannels"):
            with pytest.raises(AmiError, match="Permission denied"):
                await w.conn.send(action, {"Channel": "PJSIP/100-00000001"})
        with pytest.raises(AmiError, match="No such channel"):  # call suffices for the mute
            await w.conn.send("MixMonitorMute", {"Channel": "PJSIP/100-00000001", "Direction": "write", "State": "1"})
