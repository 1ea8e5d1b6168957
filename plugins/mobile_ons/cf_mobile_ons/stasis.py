"""Dial-in mobile recording: a Stasis application on Asterisk's ARI that drives ``flow.DialIn``.

One ``Session`` per advisor call into the Stasis application. ARI events become flow events;
the flow's actions become ARI requests:

- ``Answer`` → ``POST /channels/{id}/answer``; ``Play`` → ``POST /channels/{id}/play``
  (``playbackId`` ours, so ``PlaybackFinished`` finds its session)
- ``Dial`` → ``POST /channels`` (originate) to ``dial_endpoint`` with the checked E.164 number,
  ``app`` = this application, ``appArgs`` = ``customer,<session>``; the customer's channel enters
  Stasis when answered (``StasisStart``)
- ``Bridge`` → ``POST /bridges`` (mixing) + ``addChannel``
- ``Record`` → per leg ``POST /channels/{id}/snoop?spy=in`` (the leg's own voice), and on the
  snoop channel's ``StasisStart`` ``POST /channels/{snoop}/record`` (a channel in a bridge cannot
  be recorded directly: ARI answers 409) — two files, one voice each
- the files are fetched with ``GET /recordings/stored/{name}/file`` when the call ends, handed to
  the core (``FinishedCall``) with the consent and its proof, and deleted on the PBX
  (``DELETE /recordings/stored/{name}``) only after the archive confirmed them.

Nothing the caller supplies reaches ARI unchecked: the caller id is only looked up in the
configured mobiles; DTMF digits are digits; the number dialled is the flow's checked E.164
number (``+`` and digits); every id and name we send is generated here (hex) or Asterisk's own,
percent-encoded in paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import wave
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hookspecs.types import (
    CallEvent,
    CallEventKind,
    CaptureSink,
    ChannelFile,
    ChannelRole,
    Consent,
    Direction,
    FinishedCall,
    ModeSegment,
    RecordingMode,
)

from . import flow as F
from .ari import AriClient, AriError, seg
from .config import MobileSettings
from .numbers import NumberPolicy
from .pins import verify_pin

log = logging.getLogger(__name__)


def mask(number: str | None) -> str:
    if not number:
        return "-"
    return number[:3] + "*" * max(0, len(number) - 5) + number[-2:]


def e164_of_caller(raw: str | None, cc: str) -> str | None:
    """The caller id as E.164 for the pre-selection (never trusted beyond that)."""
    n = "".join(ch for ch in (raw or "") if ch.isdigit() or ch == "+")
    if n.startswith("+") and n[1:].isdigit():
        return n
    if n.startswith("00") and n[2:].isdigit():
        return "+" + n[2:]
    if n.startswith("0") and n[1:].isdigit():
        return "+" + cc + n[1:]
    return None


class Counters:
    """Per-advisor dial counts per day and PIN failures (lock-out), kept in a 0600 JSON file."""

    def __init__(self, path: Path, clock: Callable[[], datetime]) -> None:
        self.path, self.clock = path, clock
        try:
            self.data: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.data = {}
        self.data.setdefault("dials", {})
        self.data.setdefault("failures", {})

    def _save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps(self.data, sort_keys=True).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)

    def calls_today(self, advisor_id: str) -> int:
        day = self.clock().date().isoformat()
        return int(self.data["dials"].get(day, {}).get(advisor_id, 0))

    def count_dial(self, advisor_id: str) -> None:
        day = self.clock().date().isoformat()
        self.data["dials"] = {day: self.data["dials"].get(day, {})}  # older days are dropped
        self.data["dials"][day][advisor_id] = self.calls_today(advisor_id) + 1
        self._save()

    def failed(self, advisor_id: str) -> None:
        f = self.data["failures"].setdefault(advisor_id, [])
        f.append(self.clock().isoformat())
        del f[:-50]
        self._save()

    def succeeded(self, advisor_id: str) -> None:
        if self.data["failures"].pop(advisor_id, None) is not None:
            self._save()

    def is_locked(self, advisor_id: str, failures: int, seconds: float) -> bool:
        since = self.clock() - timedelta(seconds=seconds)
        recent = [t for t in self.data["failures"].get(advisor_id, []) if datetime.fromisoformat(t) >= since]
        return len(recent) >= failures


class Session:
    def __init__(self, sid: str, adv_chan: str, machine: F.DialIn, started: datetime) -> None:
        self.sid = sid
        self.call_id = f"mobile-{sid}"
        self.adv_chan = adv_chan
        self.cus_chan: str | None = None
        self.machine = machine
        self.started = started
        self.bridge: str | None = None
        self.snoops: dict[F.Leg, str] = {}
        self.recordings: dict[F.Leg, str] = {}
        self.rec_started: dict[F.Leg, datetime] = {}
        self.rec_done: dict[F.Leg, str] = {}  # leg → done | failed
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.announcement_times: dict[str, datetime] = {}
        self.consent_at: datetime | None = None
        self.consent_digit: str | None = None
        self.reported = False
        self.finished = asyncio.Event()


class MobileSource:
    """``hookspecs.CaptureSource`` for the dial-in Stasis application."""

    can_mute = True  # nothing of the customer is recorded before the opt-in, by construction

    def __init__(self, settings: MobileSettings, *, clock: Callable[[], datetime], data_dir: Path) -> None:
        self.s = settings
        self.name = settings.name
        self.clock = clock
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.spool = self.data_dir / "spool"
        self.spool.mkdir(exist_ok=True, mode=0o700)
        self.counters = Counters(self.data_dir / "counters.json", clock)
        #: sessions that are recording, journalled (0600) so that a restart of CallFort mid-call
        #: still finishes them: their channels and recordings live on in Asterisk
        self.journal = self.data_dir / "sessions"
        self.journal.mkdir(exist_ok=True, mode=0o700)
        self.client = AriClient(settings.ari_url, settings.ari_username, settings.ari_password, settings.app,
                                on_event=self._enqueue)
        self.sessions: dict[str, Session] = {}
        self._by_chan: dict[str, tuple[str, F.Leg | str]] = {}
        self._by_playback: dict[str, tuple[str, F.Leg, str]] = {}
        self._by_recording: dict[str, tuple[str, F.Leg]] = {}
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._stop = asyncio.Event()
        self._sink: CaptureSink | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.archived: list[str] = []
        self.resyncs = 0
        self.was_connected = False

    def __repr__(self) -> str:
        return f"MobileSource({self.name!r}, {self.client!r})"

    # ------------------------------------------------------------------ CaptureSource
    async def run(self, sink: CaptureSink) -> None:
        self._sink = sink
        self._restore()
        self._stop.clear()
        tasks = [asyncio.create_task(self.client.run(), name=f"{self.name}-ari"),
                 asyncio.create_task(self._process(), name=f"{self.name}-events")]
        try:
            await self._stop.wait()
        finally:
            await self.client.stop()
            for t in tasks:
                t.cancel()
            for t in tasks + list(self._tasks):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t

    async def stop(self) -> None:
        self._stop.set()

    async def set_mode(self, call_id: str, mode: RecordingMode) -> bool:
        """The mode of a dial-in call follows the customer's DTMF answer, not an advisor's click:
        only ``STOP`` is obeyed (it ends the recording); ``BOTH`` is confirmed when already so."""
        sess = next((x for x in self.sessions.values() if x.call_id == call_id), None)
        if sess is None:
            return False
        if mode is RecordingMode.BOTH:
            return sess.machine.state is F.State.RECORDING
        if mode is RecordingMode.STOP and sess.machine.state is F.State.RECORDING:
            await self._stop_recording(sess)
            return True
        return False

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "connected": self.client.connected.is_set(), "ready": self.client.connected.is_set(),
                "last_error": self.client.last_error, "connects": self.client.connects,
                "active_legs": sorted(x.call_id for x in self.sessions.values()), "handed_over": len(self.archived)}

    # ------------------------------------------------------------------ events
    def _enqueue(self, msg: dict[str, Any]) -> None:
        self._queue.put_nowait(msg)

    async def _process(self) -> None:
        while True:
            msg = await self._queue.get()
            try:
                await self._on_message(msg)
            except (ConnectionError, TimeoutError) as exc:
                log.warning("ARI unavailable while handling %s: %s", msg.get("type"), exc)
            except Exception:
                log.exception("error handling ARI event %s", msg.get("type"))

    def _policy(self, sess_holder: list[Session]) -> F.FlowPolicy:
        s = self.s

        def check(adv: str, pin: str) -> bool:
            a = s.advisors.get(adv)
            ok = verify_pin(a.pin_hash if a else None, pin)
            if a is not None:
                (self.counters.succeeded if ok else self.counters.failed)(adv)
            return ok

        return F.FlowPolicy(
            mobiles=s.mobiles, verify_pin=check,
            is_locked=lambda adv: self.counters.is_locked(adv, s.lockout_failures, s.lockout_seconds),
            calls_today=self.counters.calls_today, announcement=s.announcement,
            numbers=s.numbers if isinstance(s.numbers, NumberPolicy) else NumberPolicy(),
            daily_cap=s.daily_cap, opt_in_digit=s.opt_in_digit, decline_digit=s.decline_digit,
            unrecorded=s.unrecorded, input_timeout=s.input_timeout, optin_timeout=s.optin_timeout)

    async def _on_message(self, m: dict[str, Any]) -> None:
        kind = m.get("type")
        if kind == "_connected":
            await self._reconcile()
            return
        if kind == "_disconnected":
            return
        chan = m.get("channel") or {}
        cid = str(chan.get("id") or "")
        if kind == "StasisStart":
            args = [str(a) for a in (m.get("args") or [])]
            if not args:
                await self._new_session(chan)
            elif args[0] == "customer" and len(args) == 2 and args[1] in self.sessions:
                sess = self.sessions[args[1]]
                if sess.cus_chan == cid:
                    await self._feed(sess, F.CustomerAnswered())
            elif args[0] == "snoop" and len(args) == 3 and args[1] in self.sessions:
                await self._snoop_ready(self.sessions[args[1]], F.Leg(args[2]), cid)
            return
        if kind == "ChannelDtmfReceived":
            owner = self._by_chan.get(cid)
            if owner and isinstance(owner[1], F.Leg) and owner[0] in self.sessions:
                digit = str(m.get("digit") or "")
                await self._feed(self.sessions[owner[0]], F.Dtmf(owner[1], digit))
            return
        if kind == "PlaybackStarted" or kind == "PlaybackFinished":
            pb = m.get("playback") or {}
            ref = self._by_playback.get(str(pb.get("id") or ""))
            if ref and ref[0] in self.sessions:
                sess = self.sessions[ref[0]]
                if ref[2].startswith("announcement"):
                    sess.announcement_times[kind] = self._event_time(m)
                if kind == "PlaybackFinished":
                    self._by_playback.pop(str(pb.get("id")), None)
                    await self._feed(sess, F.PlaybackDone(ref[1], ref[2]))
            return
        if kind in ("RecordingStarted", "RecordingFinished", "RecordingFailed"):
            rec = m.get("recording") or {}
            ref = self._by_recording.get(str(rec.get("name") or ""))
            if ref and ref[0] in self.sessions:
                sess, leg = self.sessions[ref[0]], ref[1]
                if kind == "RecordingStarted":
                    sess.rec_started[leg] = self._event_time(m)
                    await asyncio.to_thread(self._save, sess)
                elif kind == "RecordingFinished":
                    sess.rec_done[leg] = "done"
                else:
                    sess.rec_done[leg] = "failed"
                    await self._feed(sess, F.RecordingFailed(leg))
            return
        if kind in ("ChannelDestroyed", "StasisEnd", "ChannelHangupRequest"):
            await self._channel_gone(cid)

    def _event_time(self, m: dict[str, Any]) -> datetime:
        return self.clock()

    async def _channel_gone(self, cid: str) -> None:
        owner = self._by_chan.pop(cid, None)
        if not owner or owner[0] not in self.sessions:
            return
        sess = self.sessions[owner[0]]
        role = owner[1]
        if isinstance(role, F.Leg):
            if role is F.Leg.CUSTOMER and sess.machine.state is F.State.DIALING:
                await self._feed(sess, F.CustomerUnreachable("customer leg ended before answer"))
            else:
                await self._feed(sess, F.Hangup(role))

    async def _new_session(self, chan: dict[str, Any]) -> None:
        sid = secrets.token_hex(8)
        holder: list[Session] = []
        sess = Session(sid, str(chan.get("id")), F.DialIn(self._policy(holder)), self.clock())
        holder.append(sess)
        self.sessions[sid] = sess
        self._by_chan[sess.adv_chan] = (sid, F.Leg.ADVISOR)
        caller = e164_of_caller((chan.get("caller") or {}).get("number"), self.s.numbers.country_code)
        log.info("mobile dial-in %s from %s", sid, mask(caller))
        await self._feed(sess, F.Started(caller))

    async def _feed(self, sess: Session, event: F.Event) -> None:
        for action in sess.machine.handle(event):
            try:
                await self._do(sess, action)
            except AriError as exc:
                log.warning("session %s: %s failed: %s", sess.sid, type(action).__name__, exc)
                if isinstance(action, F.Dial):
                    await self._feed(sess, F.CustomerUnreachable("originate refused"))
                elif isinstance(action, F.Record):
                    await self._feed(sess, F.RecordingFailed(F.Leg.CUSTOMER))

    # ------------------------------------------------------------------ actions
    async def _do(self, sess: Session, a: F.Action) -> None:
        c = self.client
        if isinstance(a, F.Answer):
            await c.request("POST", f"/channels/{seg(sess.adv_chan)}/answer")
        elif isinstance(a, F.Play):
            chan = sess.adv_chan if a.leg is F.Leg.ADVISOR else sess.cus_chan
            if chan is None:
                return
            pid = f"{sess.sid}-{a.playback_id}"
            self._by_playback[pid] = (sess.sid, a.leg, a.playback_id)
            await c.request("POST", f"/channels/{seg(chan)}/play", {"media": a.media, "playbackId": pid})
        elif isinstance(a, F.StartTimer):
            self._cancel_timer(sess, a.name)
            loop = asyncio.get_running_loop()
            sess.timers[a.name] = loop.call_later(a.seconds, self._timer_fired, sess.sid, a.name)
        elif isinstance(a, F.CancelTimer):
            self._cancel_timer(sess, a.name)
        elif isinstance(a, F.Dial):
            assert sess.machine.advisor_id is not None
            self.counters.count_dial(sess.machine.advisor_id)
            sess.cus_chan = f"cf-{sess.sid}-cus"
            self._by_chan[sess.cus_chan] = (sess.sid, F.Leg.CUSTOMER)
            await self._report(sess, CallEventKind.STARTED)
            await c.request("POST", "/channels", {
                "endpoint": self.s.dial_endpoint.replace("{number}", a.number), "app": self.s.app,
                "appArgs": f"customer,{sess.sid}", "callerId": self.s.caller_id, "timeout": self.s.dial_timeout,
                "channelId": sess.cus_chan, "originator": sess.adv_chan})
        elif isinstance(a, F.Bridge):
            bid = f"cf-{sess.sid}-br"
            await c.request("POST", "/bridges", {"type": "mixing", "bridgeId": bid})
            sess.bridge = bid
            await c.request("POST", f"/bridges/{seg(bid)}/addChannel",
                            {"channel": f"{sess.adv_chan},{sess.cus_chan}"})
        elif isinstance(a, F.ConsentGiven):
            sess.consent_at, sess.consent_digit = self.clock(), a.digit
        elif isinstance(a, F.Record):
            for leg in (F.Leg.ADVISOR, F.Leg.CUSTOMER):
                name = f"cf-mobile-{sess.sid}-{leg.value}"
                self._by_recording[name] = (sess.sid, leg)
                sess.recordings[leg] = name
            await asyncio.to_thread(self._save, sess)
            for leg, chan in ((F.Leg.ADVISOR, sess.adv_chan), (F.Leg.CUSTOMER, sess.cus_chan)):
                snoop = f"cf-{sess.sid}-snoop-{leg.value}"
                sess.snoops[leg] = snoop
                self._by_chan[snoop] = (sess.sid, f"snoop-{leg.value}")
                await c.request("POST", f"/channels/{seg(chan or '')}/snoop",
                                {"spy": "in", "whisper": "none", "app": self.s.app,
                                 "appArgs": f"snoop,{sess.sid},{leg.value}", "snoopId": snoop})
            await self._report(sess, CallEventKind.ANSWERED, {"consent": "dtmf", "mode": "both",
                                                              "consent_at": _iso(sess.consent_at) or ""})
        elif isinstance(a, F.StopRecording):
            await self._stop_recording(sess)
        elif isinstance(a, F.HangupLeg):
            chan = sess.adv_chan if a.leg is F.Leg.ADVISOR else sess.cus_chan
            if chan:
                with contextlib.suppress(AriError, ConnectionError):
                    await c.request("DELETE", f"/channels/{seg(chan)}", {"reason": "normal"})
        elif isinstance(a, F.Alert):
            await self._report(sess, None, {"alert": a.code, "summary": a.summary})
        elif isinstance(a, F.Finished):
            self._spawn(self._finish(sess, a))

    def _timer_fired(self, sid: str, name: str) -> None:
        sess = self.sessions.get(sid)
        if sess is not None:
            sess.timers.pop(name, None)
            self._spawn(self._feed(sess, F.Timeout(name)))

    def _cancel_timer(self, sess: Session, name: str) -> None:
        t = sess.timers.pop(name, None)
        if t is not None:
            t.cancel()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _snoop_ready(self, sess: Session, leg: F.Leg, snoop: str) -> None:
        if sess.snoops.get(leg) != snoop or sess.machine.state is not F.State.RECORDING:
            with contextlib.suppress(AriError, ConnectionError):
                await self.client.request("DELETE", f"/channels/{seg(snoop)}")
            return
        name = sess.recordings[leg]
        try:
            await self.client.request("POST", f"/channels/{seg(snoop)}/record",
                                      {"name": name, "format": "wav", "ifExists": "fail", "terminateOn": "none",
                                       "beep": False})
        except AriError as exc:
            log.error("session %s: recording the %s failed: %s", sess.sid, leg.value, exc)
            sess.rec_done[leg] = "failed"
            await self._feed(sess, F.RecordingFailed(leg))

    async def _stop_recording(self, sess: Session) -> None:
        for leg, name in list(sess.recordings.items()):
            if leg not in sess.rec_done:
                with contextlib.suppress(AriError, ConnectionError):
                    await self.client.request("POST", f"/recordings/live/{seg(name)}/stop")
        for snoop in list(sess.snoops.values()):
            with contextlib.suppress(AriError, ConnectionError):
                await self.client.request("DELETE", f"/channels/{seg(snoop)}")

    async def _report(self, sess: Session, kind: CallEventKind | None, detail: dict[str, str] | None = None) -> None:
        if self._sink is None:
            return
        m = sess.machine
        if kind is None:
            # an alert: reported on the session's call with a STARTED event (it opens the live
            # call if not yet open and changes nothing otherwise; HELD/RESUMED would mean hold)
            kind = CallEventKind.STARTED
        if kind is CallEventKind.STARTED:
            sess.reported = True
        event = CallEvent(kind=kind, call_id=sess.call_id, source=self.name, at=self.clock(),
                          advisor_id=m.advisor_id or "?", customer_number=m.number, direction=Direction.OUTBOUND,
                          pbx_call_id=sess.adv_chan[:128], detail=detail or {})
        try:
            await self._sink.call_event(event)
        except Exception as exc:
            log.warning("sink refused %s event for %s: %s", kind.value, sess.call_id, type(exc).__name__)

    # ------------------------------------------------------------------ the end of a call
    async def _finish(self, sess: Session, fin: F.Finished) -> None:
        for name in list(sess.timers):
            self._cancel_timer(sess, name)
        try:
            if fin.recorded and sess.recordings:
                await self._stop_recording(sess)
                loop = asyncio.get_running_loop()
                deadline = loop.time() + self.s.finish_timeout
                while set(sess.recordings) - set(sess.rec_done) and loop.time() < deadline:
                    await asyncio.sleep(0.05)
                await self._hand_over(sess, fin.reason)
            else:
                if sess.reported or sess.machine.advisor_id:
                    await self._report(sess, CallEventKind.ENDED, {"reason": fin.reason[:200], "recorded": "no"})
            if sess.bridge:
                with contextlib.suppress(AriError, ConnectionError):
                    await self.client.request("DELETE", f"/bridges/{seg(sess.bridge)}")
        finally:
            self._forget(sess)
            sess.finished.set()

    # ------------------------------------------------------------------ journal
    def _save(self, sess: Session) -> None:
        m = sess.machine
        rec = {"sid": sess.sid, "adv_chan": sess.adv_chan, "cus_chan": sess.cus_chan, "bridge": sess.bridge,
               "advisor_id": m.advisor_id, "number": m.number, "consent_digit": sess.consent_digit,
               "consent_at": _iso(sess.consent_at), "started": _iso(sess.started),
               "snoops": {k.value: v for k, v in sess.snoops.items()},
               "recordings": {k.value: v for k, v in sess.recordings.items()},
               "rec_started": {k.value: _iso(v) for k, v in sess.rec_started.items()},
               "announcement": {k: _iso(v) for k, v in sess.announcement_times.items()}}
        path = self.journal / f"{sess.sid}.json"
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps(rec, sort_keys=True).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)

    def _unjournal(self, sess: Session) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.journal / f"{sess.sid}.json").unlink()

    def _restore(self) -> None:
        """Sessions that were recording when CallFort stopped: back in ``RECORDING``, so that their
        hang-up (or the reconcile after connecting, if they ended meanwhile) finishes them."""
        for path in sorted(self.journal.glob("*.json")):
            try:
                r = json.loads(path.read_text())
                sid = str(r["sid"])
                if sid in self.sessions or not sid.isalnum():
                    continue
                machine = F.DialIn(self._policy([]))
                machine.state, machine.recorded = F.State.RECORDING, True
                machine.advisor_id, machine.number = r.get("advisor_id"), r.get("number")
                machine.consent_digit = r.get("consent_digit")
                sess = Session(sid, str(r["adv_chan"]), machine, _dt(r.get("started")) or self.clock())
                sess.cus_chan, sess.bridge = r.get("cus_chan"), r.get("bridge")
                sess.consent_digit, sess.consent_at = r.get("consent_digit"), _dt(r.get("consent_at"))
                sess.snoops = {F.Leg(k): v for k, v in r.get("snoops", {}).items()}
                sess.recordings = {F.Leg(k): v for k, v in r.get("recordings", {}).items()}
                sess.rec_started = {F.Leg(k): t for k, v in r.get("rec_started", {}).items() if (t := _dt(v))}
                sess.announcement_times = {k: t for k, v in r.get("announcement", {}).items() if (t := _dt(v))}
                sess.reported = True
            except (OSError, ValueError, KeyError, TypeError):
                log.error("mobile session journal %s unreadable; left in place", path.name)
                continue
            self.sessions[sid] = sess
            self._by_chan[sess.adv_chan] = (sid, F.Leg.ADVISOR)
            if sess.cus_chan:
                self._by_chan[sess.cus_chan] = (sid, F.Leg.CUSTOMER)
            for leg, name in sess.recordings.items():
                self._by_recording[name] = (sid, leg)
            log.warning("mobile dial-in %s was recording when CallFort stopped; resumed", sid)

    def _forget(self, sess: Session) -> None:
        self.sessions.pop(sess.sid, None)
        for table in (self._by_chan, self._by_playback, self._by_recording):
            for k in [k for k, v in table.items() if v[0] == sess.sid]:
                del table[k]

    async def _hand_over(self, sess: Session, reason: str) -> None:
        assert self._sink is not None
        spool = self.spool / sess.sid
        spool.mkdir(exist_ok=True, mode=0o700)
        paths: dict[F.Leg, Path] = {}
        for leg, name in sess.recordings.items():
            if sess.rec_done.get(leg) == "failed" and leg is F.Leg.ADVISOR:
                continue
            dest = spool / f"{leg.value}.wav"
            try:
                await self.client.download(f"/recordings/stored/{seg(name)}/file", dest)
                paths[leg] = dest
            except (AriError, ConnectionError, OSError) as exc:
                log.error("session %s: the %s recording could not be fetched: %s", sess.sid, leg.value, exc)
        if F.Leg.ADVISOR not in paths:
            await self._report(sess, CallEventKind.ENDED, {"reason": "recording lost", "error": "no advisor file",
                                                           "alert": "recording_failed",
                                                           "summary": "mobile dial-in: the recording could not be fetched"})
            await asyncio.to_thread(self._unjournal, sess)
            return
        t0 = min(sess.rec_started.get(leg, self.clock()) for leg in paths)
        for leg, path in paths.items():
            lag = (sess.rec_started.get(leg, t0) - t0).total_seconds()
            if lag > 0:
                _pad_front(path, lag)
        duration = _duration(paths[F.Leg.ADVISOR])
        for path in paths.values():
            duration = max(duration, _duration(path))
        ann = self.s.announcement
        proof = {
            "kind": "dial-in opt-in", "announcement_id": ann.id, "announcement_version": ann.version,
            "announcement_sha256": ann.sha256, "announcement_media": ann.media,
            "digit": sess.consent_digit or "", "digit_at": _iso(sess.consent_at),
            "announcement_started_at": _iso(sess.announcement_times.get("PlaybackStarted")),
            "announcement_finished_at": _iso(sess.announcement_times.get("PlaybackFinished")),
            "customer_leg_id": sess.cus_chan or "", "advisor_leg_id": sess.adv_chan,
            "recording_started_at": _iso(t0), "session": sess.sid,
        }
        consent = Consent(given_at=sess.consent_at or t0, offset=0.0, by_user="customer", method="dtmf",
                          applied_at=t0, proof=proof)
        files = tuple(ChannelFile(role=ChannelRole.ADVISOR if leg is F.Leg.ADVISOR else ChannelRole.CUSTOMER,
                                  path=p) for leg, p in paths.items())
        fields: dict[str, Any] = {
            "call_id": sess.call_id, "source": self.name, "advisor_id": sess.machine.advisor_id or "?",
            "started_at": t0, "direction": Direction.OUTBOUND, "files": files,
            "segments": (ModeSegment(start=0.0, end=duration, mode=RecordingMode.BOTH),),
            "consents": (consent,), "customer_numbers": (sess.machine.number,) if sess.machine.number else (),
            "pbx_call_id": sess.adv_chan[:128], "site": self.s.site}
        await self._report(sess, CallEventKind.ENDED, {"reason": reason[:200], "recorded": "yes"})
        delay = 0.5
        while True:
            try:
                rid = await self._sink.call_finished(FinishedCall(**fields))
                break
            except Exception as exc:
                log.warning("session %s: archive refused (%s); retrying", sess.sid, type(exc).__name__)
                if self._stop.is_set():
                    return  # the files stay in the spool and on the PBX
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        self.archived.append(rid)
        await asyncio.to_thread(self._unjournal, sess)
        for name in sess.recordings.values():
            with contextlib.suppress(AriError, ConnectionError):
                await self.client.request("DELETE", f"/recordings/stored/{seg(name)}")
        for p in paths.values():
            with contextlib.suppress(OSError):
                p.unlink()
        with contextlib.suppress(OSError):
            spool.rmdir()
        log.info("mobile dial-in %s archived as %s", sess.sid, rid)

    # ------------------------------------------------------------------ reconnect
    async def _reconcile(self) -> None:
        """After a (re)connect: calls whose channels vanished meanwhile are ended (their
        recordings, if any, are fetched); calls that go on keep their state."""
        self.resyncs += 1
        if not self.sessions:
            return
        present = {str(ch.get("id")) for ch in (await self.client.request("GET", "/channels") or [])}
        for sess in list(self.sessions.values()):
            for chan, leg in ((sess.adv_chan, F.Leg.ADVISOR), (sess.cus_chan, F.Leg.CUSTOMER)):
                if chan and chan not in present and sess.sid in self.sessions and chan in self._by_chan:
                    log.warning("session %s: the %s's channel ended while ARI was disconnected", sess.sid, leg.value)
                    await self._channel_gone(chan)


def _dt(v: str | None) -> datetime | None:
    return datetime.fromisoformat(v) if v else None


def _iso(t: datetime | None) -> str:
    return t.isoformat() if t else ""


def _duration(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / float(w.getframerate() or 8000)


def _pad_front(path: Path, seconds: float) -> None:
    """Put ``seconds`` of silence before the audio (the leg whose recording started later)."""
    with wave.open(str(path), "rb") as w:
        params = w.getparams()
        frames = w.readframes(w.getnframes())
    pad = b"\0" * (int(round(seconds * params.framerate)) * params.sampwidth * params.nchannels)
    tmp = path.with_name(path.name + ".pad")
    with wave.open(str(tmp), "wb") as w:
        w.setparams(params)
        w.writeframes(pad + frames)
    os.replace(tmp, path)

