"""The Asterisk capture source: tracks calls from AMI events and steers MixMonitor.

One recording per advisor leg. A leg starts when an advisor's channel (mapped by endpoint in
the config) dials or is dialled by a customer, and its recording starts when that channel is up
and bridged with the customer: ``MixMonitor`` on the advisor's channel with ``r(<adv>)t(<cus>)``
(advisor's voice, customer's voice, separate and aligned files), immediately followed by
``MixMonitorMute Direction=write State=1`` so the customer's file holds silence until consent.
``set_mode`` switches the mute flags; the leg keeps the mode segments on the clock it is given.
The leg ends when the advisor's channel leaves the bridge (transfer) or hangs up; then the files
are picked up, handed to the core's sink and removed on the PBX once the archive confirmed them.
A transfer to another advisor starts a new leg with its own recording, again advisor-only.

After every (re)connect the source asks Asterisk for the current channels (``CoreShowChannels``)
so that a call that ended while the connection was down is finished, and a call that goes on is
kept, with its mode (MixMonitor kept running in Asterisk meanwhile).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from hookspecs.types import (
    CallEvent,
    CallEventKind,
    CaptureSink,
    ChannelFile,
    ChannelRole,
    Direction,
    FinishedCall,
    ModeSegment,
    RecordingMode,
)

from .ami import AmiClient, AmiError, AmiMessage, AmiNotConnected, mask_number
from .config import AsteriskSettings
from .journal import Journal
from .pickup import Pickup, copy_for_repair, make_pickup, wait_ready, wav_duration

log = logging.getLogger(__name__)

UP = 6  # ChannelState of an answered channel
_SAFE = re.compile(r"[^A-Za-z0-9.]")
_NO_NUMBER = {"", "<unknown>", "unknown", "anonymous", "<anonymous>"}

#: (mute advisor = read, mute customer = write) per mode
_FLAGS = {
    RecordingMode.ADVISOR_ONLY: (False, True),
    RecordingMode.BOTH: (False, False),
    RecordingMode.PAUSED: (True, True),
}


@attrs.define
class Chan:
    uniqueid: str
    name: str
    linkedid: str
    state: int = 0
    caller_num: str = ""
    connected_num: str = ""
    exten: str = ""
    bridge: str | None = None
    advisor_id: str | None = None
    held: bool = False


@attrs.define
class Leg:
    call_id: str
    advisor_id: str
    adv_uniqueid: str
    adv_channel: str
    pbx_call_id: str
    direction: Direction
    customer_number: str | None
    customer_uniqueid: str | None
    reported_at: datetime
    state: str = "ringing"  # ringing | recording | finished | archived
    rec_started_at: datetime | None = None
    ended_at: datetime | None = None
    mode: RecordingMode = RecordingMode.ADVISOR_ONLY
    mode_since: float = 0.0
    segments: list[tuple[float, float, str]] = attrs.Factory(list)
    files: tuple[str, str] | None = None
    recording_id: str | None = None
    lock: asyncio.Lock = attrs.Factory(asyncio.Lock)

    def to_record(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id, "advisor_id": self.advisor_id, "adv_uniqueid": self.adv_uniqueid,
            "adv_channel": self.adv_channel, "pbx_call_id": self.pbx_call_id,
            "direction": self.direction.value, "customer_number": self.customer_number,
            "customer_uniqueid": self.customer_uniqueid, "reported_at": self.reported_at.isoformat(),
            "state": self.state,
            "rec_started_at": self.rec_started_at.isoformat() if self.rec_started_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "mode": self.mode.value, "mode_since": self.mode_since,
            "segments": [list(s) for s in self.segments], "files": list(self.files) if self.files else None,
            "recording_id": self.recording_id,
        }

    @classmethod
    def from_record(cls, r: dict[str, Any]) -> Leg:
        def dt(v: str | None) -> datetime | None:
            return datetime.fromisoformat(v) if v else None

        return cls(
            call_id=r["call_id"], advisor_id=r["advisor_id"], adv_uniqueid=r["adv_uniqueid"],
            adv_channel=r["adv_channel"], pbx_call_id=r["pbx_call_id"], direction=Direction(r["direction"]),
            customer_number=r.get("customer_number"), customer_uniqueid=r.get("customer_uniqueid"),
            reported_at=datetime.fromisoformat(r["reported_at"]), state=r["state"],
            rec_started_at=dt(r.get("rec_started_at")), ended_at=dt(r.get("ended_at")),
            mode=RecordingMode(r["mode"]), mode_since=float(r.get("mode_since", 0.0)),
            segments=[tuple(s) for s in r.get("segments", [])],  # type: ignore[misc]
            files=tuple(r["files"]) if r.get("files") else None,  # type: ignore[arg-type]
            recording_id=r.get("recording_id"),
        )

    def offset(self, at: datetime) -> float:
        assert self.rec_started_at is not None
        return max((at - self.rec_started_at).total_seconds(), self.mode_since, 0.0)

    def switch(self, mode: RecordingMode, at_offset: float) -> None:
        if at_offset > self.mode_since:
            self.segments.append((self.mode_since, at_offset, self.mode.value))
            self.mode_since = at_offset
        self.mode = mode  # a zero-length stretch of the old mode leaves no segment

    def close(self, at_offset: float) -> None:
        if at_offset > self.mode_since or not self.segments:
            self.segments.append((self.mode_since, max(at_offset, self.mode_since), self.mode.value))
        self.mode_since = at_offset


class AsteriskSource:
    """A ``hookspecs.CaptureSource`` for one Asterisk server."""

    can_mute = True

    def __init__(self, settings: AsteriskSettings, *, clock: Callable[[], datetime], data_dir: Path,
                 pickup: Pickup | None = None) -> None:
        self.settings = settings
        self.name = settings.name
        self.clock = clock
        self.journal = Journal(Path(data_dir))
        self.pickup = pickup or make_pickup(settings)
        self.client = AmiClient(
            host=settings.host, port=settings.port, username=settings.username, secret=settings.secret,
            md5=settings.md5, ssl_context=settings.ssl_context(), server_hostname=settings.tls_server_name,
            connect_timeout=settings.action_timeout, action_timeout=settings.action_timeout,
            ping_interval=settings.ping_interval, max_message=settings.max_message,
            backoff_min=settings.reconnect_min, backoff_max=settings.reconnect_max, on_event=self._enqueue)
        self.channels: dict[str, Chan] = {}
        self.bridges: dict[str, set[str]] = {}
        self.legs: dict[str, Leg] = {}  # active legs (ringing, recording)
        self._leg_of_chan: dict[str, str] = {}
        #: advisor channels whose recording CallFort stopped (mode STOP): not restarted
        self._stopped_chans: set[str] = set()
        #: legs that ended lately, by advisor channel: a transfer event may follow the leg's end
        self._recent: collections.OrderedDict[str, Leg] = collections.OrderedDict()
        self._queue: asyncio.Queue[AmiMessage | str] = asyncio.Queue()
        self._sink: CaptureSink | None = None
        self._stop = asyncio.Event()
        self._pickups: dict[str, asyncio.Task[None]] = {}
        self._pickup_sem = asyncio.Semaphore(2)
        self.resyncs = 0
        self.handed_over = 0
        #: set each time the event queue is drained (tests and the demo wait on it)
        self.idle = asyncio.Event()

    def __repr__(self) -> str:
        return f"AsteriskSource({self.name!r}, {self.client!r})"

    async def _save(self, leg: Leg) -> None:
        """Journal the leg durably, off the event loop (fsync takes milliseconds)."""
        await asyncio.to_thread(self.journal.save_leg, leg.to_record())

    # ------------------------------------------------------------------ CaptureSource
    async def run(self, sink: CaptureSink) -> None:
        self._sink = sink
        self._stop.clear()
        self._restore()
        tasks = [asyncio.create_task(self.client.run(), name=f"{self.name}-ami"),
                 asyncio.create_task(self._process(), name=f"{self.name}-events")]
        try:
            await self._stop.wait()
        finally:
            await self.client.stop()
            for t in tasks + list(self._pickups.values()):
                t.cancel()
            for t in tasks + list(self._pickups.values()):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            self._pickups.clear()
            await self.pickup.close()

    async def stop(self) -> None:
        self._stop.set()

    async def set_mode(self, call_id: str, mode: RecordingMode) -> bool:
        leg = self.legs.get(call_id)
        if leg is None or leg.state != "recording":
            return False
        async with leg.lock:
            if leg.state != "recording":
                return False
            if mode is RecordingMode.STOP:
                self._stopped_chans.add(leg.adv_uniqueid)
                await self._finish_leg_locked(leg, "stopped by CallFort")
                return True
            if mode is leg.mode:
                return True
            before = self.clock()
            await self._apply_flags(leg, _FLAGS[leg.mode], _FLAGS[mode])
            after = self.clock()
            if leg.state != "recording":
                return False
            # A mode that keeps more starts when Asterisk confirmed it, one that keeps less when
            # we asked: the few milliseconds in between are never counted as consented audio.
            at = after if mode is RecordingMode.BOTH else before
            leg.switch(mode, leg.offset(at))
            await self._save(leg)
            log.info("leg %s: mode %s", call_id, mode.value)
            return True

    # ------------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        return {
            "name": self.name, "connected": self.client.connected.is_set(), "last_error": self.client.last_error,
            "connects": self.client.connects, "auth_failures": self.client.auth_failures,
            "active_legs": sorted(self.legs), "pending_pickups": sorted(self._pickups),
            "handed_over": self.handed_over,
        }

    async def wait_idle(self) -> None:
        """Wait until every event received so far has been processed."""
        while not (self._queue.empty() and self.idle.is_set()):
            await asyncio.sleep(0.01)

    # ------------------------------------------------------------------ event loop
    def _enqueue(self, item: AmiMessage | str) -> None:
        self.idle.clear()
        self._queue.put_nowait(item)

    async def _process(self) -> None:
        while True:
            if self._queue.empty():
                self.idle.set()
            item = await self._queue.get()
            try:
                if item == "connected":
                    await self._resync()
                elif isinstance(item, AmiMessage):
                    await self._on_event(item)
            except (AmiNotConnected, TimeoutError) as exc:
                log.warning("AMI unavailable while handling %s: %s", item, type(exc).__name__)
            except Exception:
                log.exception("error handling %r", item)

    async def _on_event(self, m: AmiMessage) -> None:
        handler = getattr(self, f"_ev_{(m.event or '').lower()}", None)
        if handler is not None:
            await handler(m)
        # Everything else (VarSet, Newexten, RTCP*, DeviceStateChange, ...) is ignored.

    # ------------------------------------------------------------------ channels
    def _chan_from(self, m: AmiMessage, prefix: str = "") -> Chan | None:
        uid = m.get(f"{prefix}Uniqueid")
        name = m.get(f"{prefix}Channel")
        if not uid or not name:
            return None
        chan = self.channels.get(uid)
        if chan is None:
            chan = Chan(uniqueid=uid, name=name, linkedid=m.get(f"{prefix}Linkedid") or uid,
                        advisor_id=self.settings.advisor_for(name))
            self.channels[uid] = chan
        chan.name = name
        if m.get(f"{prefix}Linkedid"):
            chan.linkedid = m[f"{prefix}Linkedid"]
        state = m.get(f"{prefix}ChannelState")
        if state is not None and state.isdigit():
            chan.state = int(state)
        for attr, key in (("caller_num", "CallerIDNum"), ("connected_num", "ConnectedLineNum"), ("exten", "Exten")):
            value = m.get(f"{prefix}{key}")
            if value is not None:
                setattr(chan, attr, value)
        return chan

    async def _ev_newchannel(self, m: AmiMessage) -> None:
        self._chan_from(m)

    async def _ev_newstate(self, m: AmiMessage) -> None:
        chan = self._chan_from(m)
        if chan is not None and chan.state == UP:
            await self._maybe_record(chan)

    async def _ev_newcallerid(self, m: AmiMessage) -> None:
        self._chan_from(m)

    async def _ev_newconnectedline(self, m: AmiMessage) -> None:
        self._chan_from(m)

    async def _ev_dialbegin(self, m: AmiMessage) -> None:
        caller = self._chan_from(m)
        callee = self._chan_from(m, "Dest")
        if caller is None or callee is None:
            return
        for adv, other in ((callee, caller), (caller, callee)):
            if adv.advisor_id and adv.uniqueid not in self._leg_of_chan:
                if other.advisor_id and not self.settings.record_internal:
                    continue
                await self._open_leg(adv, other)

    async def _ev_bridgeenter(self, m: AmiMessage) -> None:
        chan = self._chan_from(m)
        bid = m.get("BridgeUniqueid")
        if chan is None or not bid:
            return
        if chan.bridge and chan.bridge != bid:
            self.bridges.get(chan.bridge, set()).discard(chan.uniqueid)
        chan.bridge = bid
        self.bridges.setdefault(bid, set()).add(chan.uniqueid)
        for uid in list(self.bridges[bid]):
            other = self.channels.get(uid)
            if other is not None and other.advisor_id:
                await self._maybe_record(other)

    async def _ev_bridgeleave(self, m: AmiMessage) -> None:
        chan = self._chan_from(m)
        bid = m.get("BridgeUniqueid")
        if chan is None:
            return
        if bid:
            self.bridges.get(bid, set()).discard(chan.uniqueid)
        if chan.bridge == bid:
            chan.bridge = None
        leg = self._active_leg(chan.uniqueid)
        if leg is not None and leg.state == "recording":
            await self._finish_leg(leg, "advisor left the bridge")

    async def _ev_bridgedestroy(self, m: AmiMessage) -> None:
        bid = m.get("BridgeUniqueid")
        if bid:
            self.bridges.pop(bid, None)

    async def _ev_hold(self, m: AmiMessage) -> None:
        await self._hold(m, True)

    async def _ev_unhold(self, m: AmiMessage) -> None:
        await self._hold(m, False)

    async def _hold(self, m: AmiMessage, held: bool) -> None:
        chan = self._chan_from(m)
        if chan is None:
            return
        chan.held = held
        for leg in list(self.legs.values()):
            if chan.uniqueid in (leg.adv_uniqueid, leg.customer_uniqueid) and leg.state == "recording":
                await self._report(leg, CallEventKind.HELD if held else CallEventKind.RESUMED,
                                   {"by": "advisor" if chan.uniqueid == leg.adv_uniqueid else "customer"})

    async def _ev_hangup(self, m: AmiMessage) -> None:
        chan = self._chan_from(m)
        if chan is None:
            return
        await self._channel_gone(chan.uniqueid, f"hangup (cause {m.get('Cause') or '?'})")

    async def _channel_gone(self, uid: str, reason: str) -> None:
        chan = self.channels.pop(uid, None)
        self._stopped_chans.discard(uid)
        if chan is not None and chan.bridge:
            self.bridges.get(chan.bridge, set()).discard(uid)
        leg = self._active_leg(uid)
        if leg is not None:
            await self._finish_leg(leg, reason, channel_alive=False)

    async def _ev_blindtransfer(self, m: AmiMessage) -> None:
        if (m.get("Result") or "").lower() != "success":
            return
        leg = self._leg_for_transfer(m.get("TransfererUniqueid") or "")
        if leg is not None:
            await self._report(leg, CallEventKind.TRANSFERRED, {"kind": "blind", "to": m.get("Extension") or ""})

    async def _ev_attendedtransfer(self, m: AmiMessage) -> None:
        if (m.get("Result") or "").lower() != "success":
            return
        target = m.get("TransferTargetChannel") or ""
        to = self.settings.advisor_for(target) or m.get("TransferTargetCallerIDNum") or ""
        for key in ("OrigTransfererUniqueid", "SecondTransfererUniqueid"):
            leg = self._leg_for_transfer(m.get(key) or "")
            if leg is not None and leg.direction is not Direction.INTERNAL:
                await self._report(leg, CallEventKind.TRANSFERRED, {"kind": "attended", "to": to})

    # ------------------------------------------------------------------ resync after (re)connect
    async def _resync(self) -> None:
        _, items = await self.client.action_list("CoreShowChannels")
        self.resyncs += 1
        present = {it["Uniqueid"]: it for it in items if it.get("Uniqueid") and it.get("Channel")}
        for uid in list(self.channels):
            if uid not in present:
                await self._channel_gone(uid, "ended while the AMI connection was down")
        for leg in list(self.legs.values()):
            if leg.adv_uniqueid not in present:
                await self._finish_leg(leg, "ended while the AMI connection was down", channel_alive=False)
        self.bridges.clear()
        for uid, it in present.items():
            chan = self._chan_from(it)
            if chan is None:
                continue
            chan.bridge = it.get("BridgeId") or None
            if chan.bridge:
                self.bridges.setdefault(chan.bridge, set()).add(uid)
        for leg in list(self.legs.values()):
            chan = self.channels.get(leg.adv_uniqueid)
            if leg.state == "recording" and (chan is None or chan.bridge is None):
                await self._finish_leg(leg, "advisor no longer bridged after reconnect")
        for chan in list(self.channels.values()):
            if chan.advisor_id:
                await self._maybe_record(chan)
        log.info("AMI resync: %d channels, %d active legs", len(self.channels), len(self.legs))

    # ------------------------------------------------------------------ legs
    def _active_leg(self, uid: str) -> Leg | None:
        call_id = self._leg_of_chan.get(uid)
        return self.legs.get(call_id) if call_id else None

    def _customer_number(self, adv: Chan, other: Chan | None) -> str | None:
        for num in ((other.caller_num if other else ""), adv.connected_num):
            if num and num.strip().lower() not in _NO_NUMBER:
                return num.strip()
        return None

    async def _open_leg(self, adv: Chan, other: Chan | None) -> Leg:
        internal = other is not None and other.advisor_id is not None
        if internal:
            direction = Direction.INTERNAL
        elif other is not None:
            # Inbound when the customer's channel originated the call (the oldest channel).
            direction = Direction.INBOUND if other.uniqueid == other.linkedid else Direction.OUTBOUND
        else:
            direction = Direction.INBOUND if adv.uniqueid != adv.linkedid else Direction.OUTBOUND
        pbx_call_id = (other.linkedid if other is not None else adv.linkedid)[:128]
        # The call id names files in MixMonitor's options: only characters that cannot break out
        # of r(...) / t(...) (Asterisk's ids are digits and dots anyway).
        base = f"{_SAFE.sub('_', pbx_call_id)[:60]}_{_SAFE.sub('_', adv.uniqueid)[:40]}"
        call_id, n = base, 2
        while self.journal.load_leg(call_id) is not None or call_id in self.legs:
            call_id = f"{base}_{n}"
            n += 1
        leg = Leg(call_id=call_id, advisor_id=adv.advisor_id or "", adv_uniqueid=adv.uniqueid,
                  adv_channel=adv.name, pbx_call_id=pbx_call_id, direction=direction,
                  customer_number=None if internal else self._customer_number(adv, other),
                  customer_uniqueid=other.uniqueid if other is not None else None, reported_at=self.clock())
        self.legs[call_id] = leg
        self._leg_of_chan[adv.uniqueid] = call_id
        log.info("leg %s: advisor %s, %s, customer %s", call_id, leg.advisor_id, direction.value,
                 mask_number(leg.customer_number))
        await self._report(leg, CallEventKind.STARTED)
        return leg

    async def _maybe_record(self, adv: Chan) -> None:
        """Start recording when the advisor's channel is up and bridged with a customer."""
        if not adv.advisor_id or adv.state != UP or not adv.bridge or adv.uniqueid in self._stopped_chans:
            return
        others = [self.channels[u] for u in self.bridges.get(adv.bridge, ()) if u != adv.uniqueid and u in self.channels]
        customers = [o for o in others if not o.advisor_id]
        party = customers[0] if customers else (others[0] if others and self.settings.record_internal else None)
        if party is None:
            return
        leg = self._active_leg(adv.uniqueid)
        if leg is not None and leg.state == "recording":
            return
        if leg is None:
            leg = await self._open_leg(adv, party)
        else:
            leg.customer_uniqueid = party.uniqueid
            leg.customer_number = leg.customer_number or self._customer_number(adv, party)
        await self._start_monitor(leg, adv)

    async def _start_monitor(self, leg: Leg, adv: Chan) -> None:
        s = self.settings
        base = leg.call_id
        adv_file, cus_file = f"{base}-adv.wav", f"{base}-cus.wav"
        fields = {"Channel": adv.name, "Options": f"r({s.monitor_dir}/{adv_file})t({s.monitor_dir}/{cus_file})"}
        if s.done_marker:
            fields["Command"] = f"touch '{s.monitor_dir}/{base}.done'"
        async with leg.lock:
            leg.rec_started_at = self.clock()
            leg.state, leg.mode, leg.mode_since, leg.segments = "recording", RecordingMode.ADVISOR_ONLY, 0.0, []
            leg.files = (adv_file, cus_file)
            # Journal first: after a crash we still know which files belong to this leg.
            await self._save(leg)
            try:
                await self.client.action("MixMonitor", fields)
            except (AmiError, AmiNotConnected, TimeoutError) as exc:
                log.error("leg %s: MixMonitor failed: %s", leg.call_id, exc)
                leg.state = "ringing"
                await asyncio.to_thread(self.journal.remove_leg, leg.call_id)
                await self._report(leg, CallEventKind.ENDED, {"reason": "recording could not start", "error": str(exc)[:200]})
                self._forget(leg)
                return
            try:
                await self.client.action("MixMonitorMute", {"Channel": adv.name, "Direction": "write", "State": "1"})
            except (AmiError, AmiNotConnected, TimeoutError) as exc:
                # The core drops customer audio outside BOTH segments anyway; stop here so the
                # PBX does not keep writing the customer's voice.
                log.error("leg %s: muting the customer failed (%s); stopping the recording", leg.call_id, exc)
                await self._finish_leg_locked(leg, "customer side could not be muted")
                return
        await self._report(leg, CallEventKind.ANSWERED, {"channel": adv.name})

    async def _apply_flags(self, leg: Leg, old: tuple[bool, bool], new: tuple[bool, bool]) -> None:
        changes = [(d, n) for d, o, n in (("read", old[0], new[0]), ("write", old[1], new[1])) if o != n]
        if len(changes) == 2 and changes[0][1] == changes[1][1]:
            changes = [("both", changes[0][1])]
        # Mute before unmute, so that a failure half-way never records more than asked.
        changes.sort(key=lambda c: not c[1])
        for direction, mute in changes:
            await self.client.action("MixMonitorMute", {"Channel": leg.adv_channel, "Direction": direction,
                                                         "State": "1" if mute else "0"})

    async def _finish_leg(self, leg: Leg, reason: str, *, channel_alive: bool = True) -> None:
        async with leg.lock:
            await self._finish_leg_locked(leg, reason, channel_alive=channel_alive)

    async def _finish_leg_locked(self, leg: Leg, reason: str, *, channel_alive: bool = True) -> None:
        if leg.state == "ringing":
            leg.state = "finished"
            self._forget(leg)
            await self._report(leg, CallEventKind.ENDED, {"reason": reason, "answered": "no"})
            return
        if leg.state != "recording":
            return
        now = self.clock()
        leg.close(leg.offset(now))
        leg.ended_at, leg.state = now, "finished"
        await self._save(leg)
        self._forget(leg)
        if channel_alive and leg.adv_uniqueid in self.channels:
            with contextlib.suppress(AmiError, AmiNotConnected, TimeoutError):
                await self.client.action("StopMixMonitor", {"Channel": leg.adv_channel})
        await self._report(leg, CallEventKind.ENDED, {"reason": reason, "answered": "yes"})
        self._schedule_pickup(leg.call_id)

    def _forget(self, leg: Leg) -> None:
        self.legs.pop(leg.call_id, None)
        if self._leg_of_chan.get(leg.adv_uniqueid) == leg.call_id:
            del self._leg_of_chan[leg.adv_uniqueid]
        self._recent[leg.adv_uniqueid] = leg
        while len(self._recent) > 1000:
            self._recent.popitem(last=False)

    def _leg_for_transfer(self, uid: str) -> Leg | None:
        return self._active_leg(uid) or self._recent.get(uid)

    async def _report(self, leg: Leg, kind: CallEventKind, detail: dict[str, str] | None = None) -> None:
        if self._sink is None:
            return
        event = CallEvent(kind=kind, call_id=leg.call_id, source=self.name, at=self.clock(),
                          advisor_id=leg.advisor_id, customer_number=leg.customer_number,
                          direction=leg.direction, pbx_call_id=leg.pbx_call_id, detail=detail or {})
        try:
            await self._sink.call_event(event)
        except Exception as exc:  # the core being busy must not stop call tracking
            log.warning("sink refused %s event for leg %s: %s", kind.value, leg.call_id, type(exc).__name__)

    # ------------------------------------------------------------------ restore, pickup
    def _restore(self) -> None:
        for rec in self.journal.legs():
            try:
                leg = Leg.from_record(rec)
            except (KeyError, ValueError, TypeError):
                log.error("journal entry %s unreadable; left in place", rec.get("call_id"))
                continue
            if leg.state == "recording":
                self.legs[leg.call_id] = leg
                self._leg_of_chan[leg.adv_uniqueid] = leg.call_id
            elif leg.state in ("finished", "archived"):
                self._schedule_pickup(leg.call_id)

    def _schedule_pickup(self, call_id: str) -> None:
        task = self._pickups.get(call_id)
        if task is None or task.done():
            self._pickups[call_id] = asyncio.create_task(self._pickup_loop(call_id), name=f"pickup-{call_id}")

    async def _pickup_loop(self, call_id: str) -> None:
        delay = self.settings.retry_seconds
        try:
            while not self._stop.is_set():
                try:
                    async with self._pickup_sem:
                        if await self._pickup_once(call_id):
                            return
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("pickup of leg %s failed (%s: %s); retrying in %.0fs", call_id,
                                type(exc).__name__, str(exc)[:200], delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 300.0)
        finally:
            self._pickups.pop(call_id, None)

    async def _pickup_once(self, call_id: str) -> bool:
        rec = await asyncio.to_thread(self.journal.load_leg, call_id)
        if rec is None or rec.get("state") not in ("finished", "archived"):
            return True
        leg = Leg.from_record(rec)
        assert leg.files is not None
        names = list(leg.files)
        marker = f"{call_id}.done" if self.settings.done_marker else None
        rid = leg.recording_id or await asyncio.to_thread(self.journal.handed_over, call_id)
        if rid is None:
            rid = await self._hand_over(leg, names, marker)
            if rid is None:
                return True  # nothing to hand over (files missing); kept in the journal as lost
            # The archive confirmed: note it before anything is deleted on the PBX.
            await asyncio.to_thread(self.journal.mark_handed_over, call_id, rid)
            self.handed_over += 1
        for name in names + ([marker] if marker else []):
            await self.pickup.remove(name)
        await asyncio.to_thread(self.journal.remove_leg, call_id)
        log.info("leg %s archived as %s; PBX files removed", call_id, rid)
        return True

    async def _hand_over(self, leg: Leg, names: list[str], marker: str | None) -> str | None:
        assert self._sink is not None and leg.rec_started_at is not None
        readiness = await wait_ready(self.pickup, names, marker=marker, settle=self.settings.settle_seconds,
                                     timeout=self.settings.pickup_timeout, stop=self._stop)
        if readiness == "missing":
            log.error("leg %s: no recording files on the PBX after %.0fs; leg kept in the journal as lost",
                      leg.call_id, self.settings.pickup_timeout)
            rec = leg.to_record()
            rec["state"] = "lost"
            await asyncio.to_thread(self.journal.save_leg, rec)
            return None
        spool = await asyncio.to_thread(self.journal.spool_for, leg.call_id)
        paths: dict[ChannelRole, Path] = {}
        for role, name in zip((ChannelRole.ADVISOR, ChannelRole.CUSTOMER), names, strict=True):
            if await self.pickup.size(name) is None:
                continue
            path = await self.pickup.fetch(name, spool)
            if readiness == "partial":
                log.warning("leg %s: %s looks unfinished after %.0fs; taking it as it is", leg.call_id,
                            role.value, self.settings.pickup_timeout)
                path = await asyncio.to_thread(copy_for_repair, path, spool)
            paths[role] = path
        duration = wav_duration(paths[ChannelRole.ADVISOR]) if ChannelRole.ADVISOR in paths else None
        segments = _clamp(leg.segments, duration)
        # (a dict: mypy's attrs plugin mis-types the tuple converters of FinishedCall)
        fields: dict[str, Any] = {
            "call_id": leg.call_id, "source": self.name, "advisor_id": leg.advisor_id,
            "started_at": leg.rec_started_at, "direction": leg.direction,
            "files": tuple(ChannelFile(role=r, path=p) for r, p in paths.items()), "segments": tuple(segments),
            "customer_numbers": (leg.customer_number,) if leg.customer_number else (),
            "pbx_call_id": leg.pbx_call_id, "site": self.settings.site}
        call = FinishedCall(**fields)
        rid = await self._sink.call_finished(call)
        if not isinstance(rid, str) or not rid:
            raise RuntimeError("the sink returned no recording id")
        return rid


def _clamp(segments: list[tuple[float, float, str]], duration: float | None) -> list[ModeSegment]:
    out: list[ModeSegment] = []
    for start, end, mode in segments:
        if duration is not None:
            if start >= duration and out:
                continue
            end = min(end, duration) if end > duration else end
            start = min(start, end)
        out.append(ModeSegment(start=start, end=end, mode=RecordingMode(mode)))
    if duration is not None and out and out[-1].end < duration:
        # Asterisk wrote a little more than we timed (it stopped after our clock read).
        last = out[-1]
        out[-1] = ModeSegment(start=last.start, end=duration, mode=last.mode)
    return out
