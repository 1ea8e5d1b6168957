"""The Asterisk capture source: tracks calls from AMI events and steers MixMonitor.

One recording per advisor leg. A leg starts when an advisor's channel (mapped by endpoint in
the config) dials or is dialled by a customer. At once, while the phone still rings, the plugin
starts ``MixMonitor`` on the advisor's channel with ``b`` (write only while bridged) and
``r(<adv>)t(<cus>)`` (advisor's voice, customer's voice, separate and aligned files), followed by
``MixMonitorMute Direction=write State=1``: by the time the call is bridged and audio can flow,
the customer's side is already muted. The recording starts when the channel is up and bridged
with the customer.

Mode boundaries are **positions in the audio as written**, never clock offsets: MixMonitor writes
only while frames flow (hold, silence suppression), so the files can be shorter than the call.
``set_mode`` reads the advisor file's size right before the ``MixMonitorMute`` and right after
Asterisk confirmed it; the switch happened between the two positions (plus Asterisk's unflushed
write buffer and one frame, ``write_buffer``). A mode that keeps more starts at the upper end of
that window, one that keeps less at the lower end, and the window is handed over with the segment
(``ModeSegment.start_bounds``). Without a size (SFTP down) the clock gives an upper bound (a file
never holds more audio than time passed) and the previous boundary a lower one.

The leg ends when the advisor's channel leaves the bridge (transfer) or hangs up; then the files
are picked up, handed to the core's sink and removed on the PBX once the archive confirmed them.
A leg that never got bridged has only empty files; they are removed. A transfer to another
advisor starts a new leg with its own recording, again advisor-only.

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
from datetime import datetime, timedelta
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
RATE = 8000  # MixMonitor's WAV files: 8 kHz mono PCM16
WAV_HEADER = 44  # the header Asterisk's format_wav writes
FRAME_BYTES = 320  # one 20 ms frame that may be in flight between the mute and the write
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
    state: str = "ringing"  # ringing | recording | finished | archived | discard
    rec_started_at: datetime | None = None
    ended_at: datetime | None = None
    mode: RecordingMode = RecordingMode.ADVISOR_ONLY
    mode_since: float = 0.0
    #: the window in which the current mode began, when not exact
    mode_bounds: tuple[float, float] | None = None
    #: (start, end or None = the end of the file, mode, bounds of start or None)
    segments: list[tuple[float, float | None, str, tuple[float, float] | None]] = attrs.Factory(list)
    #: when MixMonitor was asked to start (the file cannot hold more audio than time since then)
    monitor_at: datetime | None = None
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
            "mode_bounds": list(self.mode_bounds) if self.mode_bounds else None,
            "segments": [[a, b, m, list(bd) if bd else None] for a, b, m, bd in self.segments],
            "files": list(self.files) if self.files else None,
            "monitor_at": self.monitor_at.isoformat() if self.monitor_at else None,
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
            mode_bounds=_bounds(r.get("mode_bounds")),
            segments=[(float(sg[0]), None if sg[1] is None else float(sg[1]), str(sg[2]),
                       _bounds(sg[3] if len(sg) > 3 else None)) for sg in r.get("segments", [])],
            files=tuple(r["files"]) if r.get("files") else None,  # type: ignore[arg-type]
            monitor_at=dt(r.get("monitor_at")),
            recording_id=r.get("recording_id"),
        )

    def switch(self, mode: RecordingMode, at: float, bounds: tuple[float, float] | None = None) -> None:
        """The new mode starts at position ``at`` (seconds of audio written)."""
        if at < self.mode_since:
            # A mode that keeps less reaches back before the last boundary (two switches within
            # one uncertainty window): it wins over what it overlaps.
            while self.segments and self.segments[-1][0] >= at:
                self.segments.pop()
            if self.segments:
                a, _, m, bd = self.segments[-1]
                self.segments[-1] = (a, at, m, bd)
            self.mode_since, self.mode_bounds, self.mode = at, bounds, mode
            return
        if at > self.mode_since:
            self.segments.append((self.mode_since, at, self.mode.value, self.mode_bounds))
            self.mode_since, self.mode_bounds = at, bounds
        elif bounds is not None:
            # A zero-length stretch of the old mode leaves no segment; the windows merge.
            old = self.mode_bounds or (self.mode_since, self.mode_since)
            self.mode_bounds = (min(old[0], bounds[0]), max(old[1], bounds[1]))
        self.mode = mode

    def close(self) -> None:
        """The last mode lasts to the end of the files (known only when they are picked up)."""
        self.segments.append((self.mode_since, None, self.mode.value, self.mode_bounds))


def _bounds(value: Any) -> tuple[float, float] | None:
    return (float(value[0]), float(value[1])) if value else None


def _keeps_more(new: RecordingMode, old: RecordingMode) -> bool:
    """True when ``new`` keeps audio that ``old`` did not (its start must not be early)."""
    keep = {RecordingMode.PAUSED: 0, RecordingMode.ADVISOR_ONLY: 1, RecordingMode.BOTH: 2}
    return keep.get(new, 0) > keep.get(old, 0)


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
            lo_pos = await self._written(leg)
            await self._apply_flags(leg, _FLAGS[leg.mode], _FLAGS[mode])
            confirmed = self.clock()
            hi_pos = await self._written(leg)
            if leg.state != "recording":
                return False
            lo, hi = self._window(leg, lo_pos, hi_pos, confirmed)
            # A mode that keeps more starts at the latest position the switch can have happened,
            # one that keeps less at the earliest: no audio is kept that was not meant to be.
            at = hi if _keeps_more(mode, leg.mode) else lo
            leg.switch(mode, at, (lo, hi) if hi > lo else None)
            await self._save(leg)
            log.info("leg %s: mode %s at %.3f s of audio (window %.3f-%.3f s)", call_id, mode.value, at, lo, hi)
            return True

    # ------------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        return {
            "name": self.name, "connected": self.client.connected.is_set(), "last_error": self.client.last_error,
            "connects": self.client.connects, "auth_failures": self.client.auth_failures,
            "ready": self.client.connected.is_set() and not self.client.permission_error,
            "permission_error": self.client.permission_error,
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

    async def _ev_varset(self, m: AmiMessage) -> None:
        """ONS: the dialplan names the advisor of a mobile leg routed through the PBX by a channel
        variable (``advisor_variable``); the caller id is never used for that."""
        if not self.settings.advisor_variable:
            return
        advisor = self.settings.ons_advisor(m.get("Variable") or "", m.get("Value") or "")
        if advisor is None:
            return
        chan = self._chan_from(m)
        if chan is not None and chan.uniqueid not in self._leg_of_chan:
            chan.advisor_id = advisor

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
                leg = await self._open_leg(adv, other)
                # Start MixMonitor now, while the phone rings: with ``b`` it writes nothing until
                # the call is bridged, and by then the customer's side is muted.
                async with leg.lock:
                    if leg.state == "ringing" and leg.monitor_at is None:
                        await self._arm(leg, adv)

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
        async with leg.lock:
            if leg.state != "ringing":
                return
            if leg.monitor_at is None and not await self._arm(leg, adv):
                return
            now = self.clock()
            # Normally nothing is written yet (the bridge just formed). A leg armed before this
            # process restarted may have been bridged meanwhile: its audio began that much earlier.
            written = await self._written(leg) or 0.0
            leg.rec_started_at = now - timedelta(seconds=written)
            leg.state, leg.mode, leg.mode_since, leg.mode_bounds, leg.segments = (
                "recording", RecordingMode.ADVISOR_ONLY, 0.0, None, [])
            await self._save(leg)
        await self._report(leg, CallEventKind.ANSWERED, {"channel": adv.name})

    async def _arm(self, leg: Leg, adv: Chan) -> bool:
        """MixMonitor (``b``: only while bridged) and the customer's mute; called with the leg's lock.
        False when the recording could not be started (the leg is closed then)."""
        s = self.settings
        base = leg.call_id
        adv_file, cus_file = f"{base}-adv.wav", f"{base}-cus.wav"
        fields = {"Channel": adv.name, "Options": f"br({s.monitor_dir}/{adv_file})t({s.monitor_dir}/{cus_file})"}
        if s.done_marker:
            fields["Command"] = f"touch '{s.monitor_dir}/{base}.done'"
        leg.monitor_at = self.clock()
        leg.files = (adv_file, cus_file)
        # Journal first: after a crash we still know which files belong to this leg.
        await self._save(leg)
        try:
            await self.client.action("MixMonitor", fields)
        except (AmiError, AmiNotConnected, TimeoutError) as exc:
            log.error("leg %s: MixMonitor failed: %s", leg.call_id, exc)
            leg.monitor_at, leg.files = None, None
            await asyncio.to_thread(self.journal.remove_leg, leg.call_id)
            if leg.state == "ringing" and self.channels.get(leg.adv_uniqueid) is not None \
                    and self.channels[leg.adv_uniqueid].bridge is None:
                return False  # not bridged yet: tried again when it is
            await self._report(leg, CallEventKind.ENDED, {"reason": "recording could not start", "error": str(exc)[:200]})
            leg.state = "finished"
            self._forget(leg)
            return False
        try:
            await self.client.action("MixMonitorMute", {"Channel": adv.name, "Direction": "write", "State": "1"})
        except (AmiError, AmiNotConnected, TimeoutError) as exc:
            # The core drops customer audio outside BOTH segments anyway; stop here so the
            # PBX does not keep writing the customer's voice.
            log.error("leg %s: muting the customer failed (%s); stopping the recording", leg.call_id, exc)
            with contextlib.suppress(AmiError, AmiNotConnected, TimeoutError):
                await self.client.action("StopMixMonitor", {"Channel": adv.name})
            await self._finish_leg_locked(leg, "customer side could not be muted", channel_alive=False)
            return False
        return True

    async def _written(self, leg: Leg) -> float | None:
        """Seconds of audio the PBX has flushed to the advisor's file now (None: unknown)."""
        if not leg.files:
            return None
        try:
            size = await self.pickup.size(leg.files[0])
        except Exception as exc:  # the position is then bounded by the clock (fail-safe)
            log.warning("leg %s: cannot read the recording's size (%s)", leg.call_id, type(exc).__name__)
            return None
        if size is None:
            return None
        return max(0, size - WAV_HEADER) // 2 / RATE

    def _window(self, leg: Leg, lo_pos: float | None, hi_pos: float | None, confirmed: datetime) -> tuple[float, float]:
        """The positions between which the PBX switched: from the file's size before the action
        to its size after the confirmation plus what Asterisk may still hold unflushed."""
        frame = FRAME_BYTES / 2 / RATE
        slack = (self.settings.write_buffer + FRAME_BYTES) / 2 / RATE
        since = leg.monitor_at or leg.rec_started_at
        # A file never holds more audio than time has passed since MixMonitor started.
        cap = max(0.0, (confirmed - since).total_seconds()) + frame if since is not None else None
        lo = leg.mode_since if lo_pos is None else lo_pos
        hi = hi_pos + slack if hi_pos is not None else cap
        if hi is None:
            hi = lo + slack
        elif cap is not None:
            hi = min(hi, cap)
        hi = max(hi, lo)
        return round(lo, 6), round(hi, 6)

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
            if leg.monitor_at is not None and leg.files:
                # MixMonitor ran while the phone rang but wrote nothing (never bridged): its empty
                # files are removed once Asterisk closed them.
                leg.state = "discard"
                await self._save(leg)
                if channel_alive and leg.adv_uniqueid in self.channels:
                    with contextlib.suppress(AmiError, AmiNotConnected, TimeoutError):
                        await self.client.action("StopMixMonitor", {"Channel": leg.adv_channel})
                self._schedule_pickup(leg.call_id)
            await self._report(leg, CallEventKind.ENDED, {"reason": reason, "answered": "no"})
            return
        if leg.state != "recording":
            return
        now = self.clock()
        leg.close()
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
            if leg.state in ("recording", "ringing"):
                self.legs[leg.call_id] = leg
                self._leg_of_chan[leg.adv_uniqueid] = leg.call_id
            elif leg.state in ("finished", "archived", "discard"):
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
        if rec is None or rec.get("state") not in ("finished", "archived", "discard"):
            return True
        leg = Leg.from_record(rec)
        assert leg.files is not None
        names = list(leg.files)
        marker = f"{call_id}.done" if self.settings.done_marker else None
        if leg.state == "discard":
            await wait_ready(self.pickup, names, marker=marker, settle=self.settings.settle_seconds,
                             timeout=self.settings.pickup_timeout, stop=self._stop)
            for name in names + ([marker] if marker else []):
                await self.pickup.remove(name)
            await asyncio.to_thread(self.journal.remove_leg, call_id)
            log.info("leg %s was never answered; its empty MixMonitor files were removed", call_id)
            return True
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
        segments = _segments(leg.segments, duration)
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


def _segments(segments: list[tuple[float, float | None, str, tuple[float, float] | None]],
              duration: float | None) -> list[ModeSegment]:
    """The leg's segments as positions in the files; the last one ends with the file. Nothing is
    clamped or dropped here: the core compares them with the audio and reports what does not fit."""
    out: list[ModeSegment] = []
    for start, end, mode, bounds in segments:
        stop = (duration if duration is not None else start) if end is None else end
        out.append(ModeSegment(start=start, end=max(stop, start), mode=RecordingMode(mode), start_bounds=bounds))
    return out
