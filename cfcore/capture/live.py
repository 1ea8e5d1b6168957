"""Live capture: audio frames into an encrypted spool, finalised into the same recording model as
file pickup.

A capture source that streams audio (SIPREC, dial-in recording) hands the sink ``AudioFrame``s.
For each call the spool keeps, below ``<data_dir>/live-spool/<call key>/``:

- ``meta.json`` (0600): recording id, start, advisor, source, the data key wrapped under the
  current KEK, and the customer's numbers sealed with the data key (no personal data in clear);
- ``advisor.cfe`` / ``customer.cfe``: the channel in the archive's envelope format
  (``cfcore.crypto.envelope``), written segment by segment as the audio arrives: nothing but
  ciphertext ever reaches the disk;
- ``journal.jsonl``: mode changes (with their media offset), holds, gaps and stream statistics.

Frame by frame: in ``PAUSED`` nothing is written; the customer's frames are written only in
``BOTH`` **and** when the catalog holds a consent (``capture_consents``) recorded by the call
controller at or before the switch; any other customer frame is dropped in memory. Time is the
frames' own (seconds from call start): a gap is filled with digital silence and counted.

At the end of the call (``ENDED``) the objects are closed, put to the stores and catalogued in one
transaction like ``ingest``. A process killed mid-call leaves unterminated objects: at the next
runner start ``recover`` keeps every complete segment, re-encrypts it as a terminated object and
archives the recording as ``incomplete`` (audited ``recording.incomplete``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select

from hookspecs.types import (
    AudioFrame,
    CallEvent,
    ChannelRole,
    Consent,
    ConsentMethod,
    Direction,
    ModeSegment,
    RecordingMode,
)

from .. import outbox
from ..archive import new_recording_id, object_key, recording_info, row_digest
from ..authority import system_context
from ..crypto import envelope
from ..crypto.keyring import unwrap_data_key, wrap_data_key
from ..states import CONSENT_METHODS, RecordingState
from ..wav import g711_decode

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger(__name__)

SPOOL_DIR = "live-spool"
#: 1 s of 8 kHz PCM16 per segment: a killed recorder loses at most the last second.
DEFAULT_LIVE_SEGMENT = 16000
_DECODERS = {"pcmu": "ulaw", "pcma": "alaw"}
#: Longest gap filled with silence in one go (a frame further ahead is treated as a clock jump).
MAX_GAP_SECONDS = 4 * 3600


def call_key(source: str, call_id: str) -> str:
    return hashlib.sha256(f"{source}\0{call_id}".encode()).hexdigest()[:32]


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _seal(key: bytes, rec_id: str, obj: Any) -> str:
    nonce = os.urandom(12)
    return (nonce + AESGCM(key).encrypt(nonce, json.dumps(obj).encode(), f"cf-live-meta:{rec_id}".encode())).hex()


def _unseal(key: bytes, rec_id: str, blob: str) -> Any:
    raw = bytes.fromhex(blob)
    return json.loads(AESGCM(key).decrypt(raw[:12], raw[12:], f"cf-live-meta:{rec_id}".encode()))


class _ChannelSpool:
    """One channel's encrypted spool file and its write position (in samples)."""

    def __init__(self, path: Path, key: bytes, rec_id: str, name: str, segment_size: int, rate: int) -> None:
        self.path = path
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._f = os.fdopen(fd, "wb", buffering=0)
        self.sha = hashlib.sha256()
        self.rate = rate
        self.samples = 0
        self.gap_samples = 0
        self.writer = envelope.SegmentWriter(key, rec_id, name, self._f.write, segment_size=segment_size)

    def write_at(self, pos: int, pcm: bytes, *, count_gap: bool = True) -> None:
        if pos > self.samples:
            gap = pos - self.samples
            if count_gap:
                self.gap_samples += gap
            self._put(bytes(2 * gap))
        elif pos < self.samples:  # overlap with what is written: keep the first
            pcm = pcm[2 * (self.samples - pos):]
        if pcm:
            self._put(pcm)

    def _put(self, pcm: bytes) -> None:
        self.sha.update(pcm)
        self.samples += len(pcm) // 2
        self.writer.write(pcm)

    def close(self) -> None:
        self.writer.close()
        self._f.close()


class LiveRecording:
    """The spool of one live call."""

    def __init__(self, app: App, folder: Path, *, call_id: str, source: str, advisor_id: str, started_at: datetime,
                 direction: Direction, pbx_call_id: str | None, customer_numbers: tuple[str, ...],
                 segment_size: int, sample_rate: int = 8000) -> None:
        self.app = app
        self.folder = folder
        self.call_id = call_id
        self.source = source
        self.rate = sample_rate
        self.segment_size = segment_size
        self.rec_id = new_recording_id(app.clock.now())
        self._key = envelope.new_data_key()
        kek_id, wrapped = wrap_data_key(app, self.rec_id, self._key)
        folder.mkdir(parents=True, mode=0o700)
        self.meta: dict[str, Any] = {"rec_id": self.rec_id, "call_id": call_id, "source": source, "advisor_id": advisor_id,
                     "started_at": started_at.isoformat(), "direction": direction.value, "pbx_call_id": pbx_call_id,
                     "kek_id": kek_id, "wrapped": wrapped.hex(), "sample_rate": sample_rate,
                     "sealed": _seal(self._key, self.rec_id, {"customer_numbers": list(customer_numbers)})}
        _write_private(folder / "meta.json", json.dumps(self.meta).encode())
        jfd = os.open(folder / "journal.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._journal = os.fdopen(jfd, "a", encoding="utf-8", buffering=1)
        self.channels: dict[ChannelRole, _ChannelSpool] = {
            ChannelRole.ADVISOR: _ChannelSpool(folder / "advisor.cfe", self._key, self.rec_id, "advisor",
                                               segment_size, sample_rate)}
        self.mode = RecordingMode.ADVISOR_ONLY
        self.mode_before_hold: RecordingMode | None = None
        self.resume_pending: RecordingMode | None = None
        self.customer_from: float | None = None  # media offset from which customer frames may be kept
        self.media_end = 0.0
        self.dropped_customer = 0
        self.closed = False
        self.log("mode", mode=self.mode.value, at=0.0)

    # ---------------------------------------------------------------- journal

    def log(self, kind: str, **data: Any) -> None:
        if self._journal.closed:
            return
        self._journal.write(json.dumps({"k": kind, **data}) + "\n")

    # ---------------------------------------------------------------- frames

    def frame(self, frame: AudioFrame) -> None:
        if self.closed:
            return
        payload = frame.payload
        law = _DECODERS.get(frame.codec)
        if law is not None:
            pcm = g711_decode(payload, law)
        elif frame.codec == "pcm_s16le":
            pcm = payload[:len(payload) & ~1]
        else:
            raise ValueError(f"codec {frame.codec!r} is not supported by the live spool")
        if frame.sample_rate != self.rate:
            raise ValueError(f"frame at {frame.sample_rate} Hz in a {self.rate} Hz recording")
        end = frame.timestamp + len(pcm) / (2 * self.rate)
        if end - self.media_end > MAX_GAP_SECONDS:
            log.warning("call %s: frame %.1f s ahead dropped", self.call_id, end - self.media_end)
            return
        if self.resume_pending is not None:  # the first frame after the SRC's hold ends it
            prev, self.resume_pending = self.resume_pending, None
            at = max(frame.timestamp, self.media_end)
            self.mode = prev
            if prev is RecordingMode.BOTH:
                self.customer_from = at
            self.log("mode", mode=prev.value, at=round(at, 4), reason="src-resume")
        self.media_end = max(self.media_end, end)
        if self.mode is RecordingMode.PAUSED:
            return
        pos = round(frame.timestamp * self.rate)
        if frame.role is ChannelRole.CUSTOMER:
            start = self.customer_from
            if self.mode is not RecordingMode.BOTH or start is None or end <= start:
                self.dropped_customer += 1  # dropped in memory, never written
                return
            first = round(start * self.rate)
            if pos < first:  # the part of the frame before the consent is cut off
                pcm, pos = pcm[2 * (first - pos):], first
            ch = self.channels.get(ChannelRole.CUSTOMER)
            if ch is None:
                ch = self.channels[ChannelRole.CUSTOMER] = _ChannelSpool(
                    self.folder / "customer.cfe", self._key, self.rec_id, "customer", self.segment_size, self.rate)
                ch.write_at(first, b"", count_gap=False)
            ch.write_at(pos, pcm)
        else:
            self.channels[ChannelRole.ADVISOR].write_at(pos, pcm)

    # ---------------------------------------------------------------- modes

    def set_mode(self, mode: RecordingMode, *, consent_offset: float | None = None, reason: str = "request") -> None:
        """Switch from the current media position; ``BOTH`` needs ``consent_offset`` (a consent the
        controller recorded, as seconds from the call start), else the customer stays off."""
        if self.closed:
            return
        at = self.media_end
        if mode is RecordingMode.BOTH:
            if consent_offset is None:
                log.error("call %s: BOTH without a recorded consent; customer stays off", self.call_id)
                mode = RecordingMode.ADVISOR_ONLY
            else:
                # on the sample grid: the journal's switch time (0.1 ms) then names the same sample
                # as the cut of the customer's audio
                at = math.ceil(max(at, consent_offset) * self.rate) / self.rate
                self.customer_from = at
        elif mode is not RecordingMode.PAUSED:
            self.customer_from = None
        if mode is self.mode:
            return
        if mode is RecordingMode.PAUSED:
            # resume later returns here; the customer needs the consent again only if it was never given
            pass
        self.mode = mode
        self.log("mode", mode=mode.value, at=round(at, 4), reason=reason)

    def resume_customer(self) -> None:
        """After a pause back to BOTH: the consent given earlier still holds."""
        if self.mode is RecordingMode.BOTH:
            self.customer_from = self.media_end

    def hold(self, held: bool) -> None:
        """The SRC paused the recording (``a=inactive``): stored as a PAUSED interval."""
        if held and self.resume_pending is not None:
            self.mode_before_hold, self.resume_pending = self.resume_pending, None
        elif held and self.mode is not RecordingMode.PAUSED:
            self.mode_before_hold = self.mode
            self.set_mode(RecordingMode.PAUSED, reason="src-hold")
        elif not held and self.mode_before_hold is not None:
            # no media flowed during the hold: the pause ends where the media starts again
            self.resume_pending, self.mode_before_hold = self.mode_before_hold, None

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        total = max((c.samples for c in self.channels.values()), default=0)
        total = max(total, round(self.media_end * self.rate))
        for ch in self.channels.values():
            ch.write_at(total, b"", count_gap=False)
            ch.close()
        self.log("closed", samples=total,
                 gaps={r.value: round(c.gap_samples / self.rate, 3) for r, c in self.channels.items()},
                 dropped_customer_frames=self.dropped_customer)
        self._journal.close()

    def abandon(self) -> None:
        """Close the files without terminating the objects (a crash, for tests)."""
        for ch in self.channels.values():
            with contextlib.suppress(Exception):
                ch._f.close()
        with contextlib.suppress(Exception):
            self._journal.close()
        self.closed = True


# --------------------------------------------------------------------------- the sink's side


class LiveCapture:
    """The live recordings of one capture runner (shared by its sinks)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.root = Path(app.data_dir) / SPOOL_DIR
        self.segment_size = app.config.get("capture.live_segment_size", int, DEFAULT_LIVE_SEGMENT)
        self.calls: dict[tuple[str, str], LiveRecording] = {}
        self.started: dict[tuple[str, str], CallEvent] = {}

    def event(self, event: CallEvent) -> LiveRecording | None:
        """Remember a call's start (the spool opens with its first frame); returns the recording an
        ``ENDED`` event closes (to be finalised by the caller)."""
        from hookspecs.types import CallEventKind

        k = (event.source, event.call_id)
        if event.kind is CallEventKind.STARTED:
            self.started.setdefault(k, event)
        rec = self.calls.get(k)
        if rec is None:
            if event.kind is CallEventKind.ENDED:
                self.started.pop(k, None)
            return None
        if event.kind is CallEventKind.HELD:
            rec.hold(True)
        elif event.kind is CallEventKind.RESUMED:
            rec.hold(False)
        elif event.kind is CallEventKind.ENDED:
            self.calls.pop(k)
            self.started.pop(k, None)
            if event.detail.get("media_stats"):
                rec.log("stats", stats=json.loads(event.detail["media_stats"]))
            if event.detail.get("evidence"):
                # the source's signalling evidence (SIPREC: every metadata XML received and the
                # normalised timeline), sealed with the recording's data key: never in clear on disk
                rec.log("evidence", sealed=_seal(rec._key, rec.rec_id, json.loads(event.detail["evidence"])))
            rec.close()
            return rec
        return None

    def frame(self, source: str, frame: AudioFrame) -> None:
        k = (source, frame.call_id)
        rec = self.calls.get(k)
        if rec is None:
            start = self.started.get(k)
            if start is None:
                raise ValueError(f"frame for call {frame.call_id} that was never started")
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            rec = self.calls[k] = LiveRecording(
                self.app, self.root / call_key(source, frame.call_id), call_id=frame.call_id, source=source,
                advisor_id=start.advisor_id or "?", started_at=start.at,
                direction=start.direction or Direction.INBOUND, pbx_call_id=start.pbx_call_id,
                customer_numbers=tuple(n for n in (start.customer_number,) if n), segment_size=self.segment_size,
                sample_rate=frame.sample_rate)
        rec.frame(frame)

    async def apply_mode(self, source: str, call_id: str, mode: RecordingMode) -> bool:
        """The controller applied a mode (and, for BOTH, recorded the consent): from now on the
        frames follow it. The consent is read back from the catalog, never taken on trust."""
        import asyncio

        rec = self.calls.get((source, call_id))
        if rec is None:
            return False
        if mode is RecordingMode.BOTH:
            offset = await asyncio.to_thread(consent_offset, self.app, call_id,
                                             datetime.fromisoformat(rec.meta["started_at"]))
            if rec.closed:  # the call ended while the consent was read
                return False
            was_paused = rec.mode is RecordingMode.PAUSED
            rec.set_mode(mode, consent_offset=offset)
            if was_paused:
                rec.resume_customer()
        else:
            rec.set_mode(mode)
        return True


def consent_offset(app: App, call_id: str, started_at: datetime) -> float | None:
    """Seconds from the call start of the first consent the controller recorded for the call."""
    from ..db.models_capture import CallConsent

    with app.catalog.session() as s:
        first = s.scalars(select(CallConsent.given_at).where(CallConsent.call_id == call_id)
                          .order_by(CallConsent.given_at)).first()
    return None if first is None else max(0.0, (first - started_at).total_seconds())


# --------------------------------------------------------------------------- finalising


def _journal(folder: Path) -> list[dict[str, Any]]:
    out = []
    try:
        with open(folder / "journal.jsonl", encoding="utf-8") as f:
            for line in f:
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
    except FileNotFoundError:
        pass
    return out


def _segments(entries: list[dict[str, Any]], duration: float) -> list[ModeSegment]:
    changes = [(float(e["at"]), RecordingMode(e["mode"])) for e in entries if e.get("k") == "mode"]
    out: list[ModeSegment] = []
    for i, (at, mode) in enumerate(changes):
        end = changes[i + 1][0] if i + 1 < len(changes) else duration
        a, b = min(at, duration), min(max(end, at), duration)
        if b > a:
            if out and out[-1].mode is mode and abs(out[-1].end - a) < 1e-9:
                out[-1] = ModeSegment(start=out[-1].start, end=b, mode=mode)
            else:
                out.append(ModeSegment(start=a, end=b, mode=mode))
    return out


def finalise(app: App, folder: Path, *, incomplete: bool, reason: str = "") -> str:
    """Archive the spool in ``folder``; returns the recording id. Safe to call again."""
    from ..db.models import ConsentRow, DataKey, MediaObject, ModeSegmentRow, Recording, RecordingSubject
    from ..db.models_capture import CallConsent, LiveCall
    from ..retention import apply_retention
    from ..storage import lock_recording_media
    from ..subjects import normalise_number, pseudonyms_for

    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    rec_id = meta["rec_id"]
    with app.catalog.session() as s:
        if s.get(Recording, rec_id) is not None:  # archived before a crash removed the spool
            shutil.rmtree(folder, ignore_errors=True)
            return str(rec_id)
    key = unwrap_data_key(app, rec_id, meta["kek_id"], bytes.fromhex(meta["wrapped"]))
    rate = int(meta["sample_rate"])
    started_at = datetime.fromisoformat(meta["started_at"])
    entries = _journal(folder)
    blobs: dict[str, bytes] = {}
    plains: dict[str, tuple[int, str]] = {}
    if incomplete:
        pcm: dict[str, bytes] = {}
        for ch in ("advisor", "customer"):
            p = folder / f"{ch}.cfe"
            if p.exists() and p.stat().st_size > 0:
                with contextlib.suppress(Exception):
                    pcm[ch] = envelope.recover_unterminated(key, rec_id, ch, p.read_bytes())
        n = max((len(v) for v in pcm.values()), default=0)
        for ch, data in pcm.items():
            data = data.ljust(n, b"\0")
            blobs[ch] = envelope.encrypt(key, rec_id, ch, data, segment_size=DEFAULT_LIVE_SEGMENT)
            plains[ch] = (len(data), hashlib.sha256(data).hexdigest())
        if "advisor" not in pcm:
            blobs["advisor"] = envelope.encrypt(key, rec_id, "advisor", bytes(n))
            plains["advisor"] = (n, hashlib.sha256(bytes(n)).hexdigest())
    else:
        for ch in ("advisor", "customer"):
            p = folder / f"{ch}.cfe"
            if p.exists():
                blob = p.read_bytes()
                data = envelope.decrypt(key, rec_id, ch, blob)  # authenticate before archiving
                blobs[ch] = blob
                plains[ch] = (len(data), hashlib.sha256(data).hexdigest())
    duration = plains["advisor"][0] / (2 * rate)
    plan = _segments(entries, duration)
    if "customer" in blobs and not any(sg.mode is RecordingMode.BOTH for sg in plan):
        del blobs["customer"], plains["customer"]  # nothing of it may be kept
    with app.catalog.session() as s:
        rows = list(s.scalars(select(CallConsent).where(CallConsent.call_id == meta["call_id"])
                              .order_by(CallConsent.applied_at, CallConsent.id)))
    # A consent's offset is where the customer's voice began to be kept in the audio as written
    # (the start of the two-sided stretch it opened, a media position), as for file pickup.
    starts: list[float] = []
    before = RecordingMode.ADVISOR_ONLY
    for sg in plan:
        if sg.mode is RecordingMode.BOTH and before is not RecordingMode.BOTH:
            starts.append(sg.start)
        if sg.mode is not RecordingMode.PAUSED:
            before = sg.mode
    consents = [Consent(given_at=c.given_at,
                        offset=starts[i] if i < len(starts) else max(0.0, (c.applied_at - started_at).total_seconds()),
                        by_user=c.by_user, method=c.method if c.method in CONSENT_METHODS else ConsentMethod.API.value,
                        applied_at=c.applied_at)
                for i, c in enumerate(rows)]
    for sg in plan:  # never a two-sided stretch without a consent the controller recorded before it
        if sg.mode is RecordingMode.BOTH and not any(c.offset <= sg.start + 1e-6 for c in consents):
            raise RuntimeError(f"live recording {rec_id}: two-sided stretch at {sg.start:.3f} s without consent")
    cc = app.config.get("deployment.country_code", str, "49")
    numbers = []
    for num in _unseal(key, rec_id, meta["sealed"]).get("customer_numbers", []):
        with contextlib.suppress(Exception):
            normalise_number(num, cc)
            numbers.append(num)
    subjects = pseudonyms_for(app, (), tuple(numbers))
    stats: dict[str, Any] = {}
    for e in entries:
        if e.get("k") == "closed":
            stats["gaps_seconds"] = e.get("gaps")
            stats["dropped_customer_frames"] = e.get("dropped_customer_frames")
        elif e.get("k") == "stats":
            stats["streams"] = e.get("stats")
    now = app.clock.now()
    media_rows = []
    media_sha = {}
    written = []
    for ch, blob in blobs.items():
        okey = object_key(rec_id, ch, started_at)
        # an orphan of an earlier attempt of this very recording (it died between the store and
        # the catalog commit): no catalog row names it, so it goes; an absent copy is fine
        app.stores.delete(okey)
        sha = hashlib.sha256(blob).hexdigest()
        for store in app.stores.put(okey, blob):
            media_rows.append(MediaObject(channel=ch, store=store, key=okey, size=len(blob), sha256=sha,
                                          plain_size=plains[ch][0], plain_sha256=plains[ch][1], codec="pcm_s16le"))
        written.append(okey)
        media_sha[ch] = sha
    two_sided = "customer" in blobs
    state = RecordingState.INCOMPLETE if incomplete else RecordingState.ARCHIVED
    rec = Recording(
        id=rec_id, site=app.config.site, source=meta["source"], pbx_call_id=meta["pbx_call_id"] or meta["call_id"],
        advisor_id=meta["advisor_id"], direction=meta["direction"], started_at=started_at,
        ended_at=started_at + timedelta(seconds=duration), duration=duration, channels=2 if two_sided else 1,
        sample_rate=rate, codec="pcm_s16le", two_sided=two_sided, state=state, retention_class="",
        legal_hold=False, created_at=now,
        segments=[ModeSegmentRow(idx=i, start=sg.start, end=sg.end, mode=sg.mode.value) for i, sg in enumerate(plan)],
        consents=[ConsentRow(given_at=c.given_at, offset=c.offset, by_user=c.by_user, method=c.method.value,
                             applied_at=c.applied_at) for c in consents],
        subjects=[RecordingSubject(kind=k, pseudonym=p) for k, p in subjects],
        media=media_rows)
    from ..sync.site_keys import site_keys_for

    site_keys = site_keys_for(app, rec_id, key)  # a site seals the key to the archive (docs/sites.md)
    try:
        with app.catalog.session() as s:
            apply_retention(app, s, rec)
            s.add(rec)
            if site_keys is None or site_keys.keep_local:
                s.add(DataKey(recording_id=rec_id, kek_id=meta["kek_id"], wrapped=bytes.fromhex(meta["wrapped"]),
                              created_at=now))
            if site_keys is not None:
                s.add(site_keys.row(rec_id, now))
            s.flush()
            app.audit.append(s, system_context("capture.live"), "recording.archive", "recording", rec_id, "ok", {
                "row_digest": row_digest(rec), "channels": sorted(blobs), "duration": duration,
                "media_sha256": media_sha, "source_codec": "live", "stores": sorted({m.store for m in media_rows}),
                "live": True, "media_stats": stats})
            for e in entries:
                if e.get("k") == "evidence" and isinstance(e.get("sealed"), str):
                    app.audit.append(s, system_context("capture.live"), "recording.evidence", "recording", rec_id, "ok", {
                        "sealed": e["sealed"], "sha256": hashlib.sha256(e["sealed"].encode()).hexdigest()})
            if incomplete:
                app.audit.append(s, system_context("capture.live"), "recording.incomplete", "recording", rec_id, "ok",
                                 {"reason": reason[:200] or "capture stopped mid-call", "duration": duration})
            row = s.get(LiveCall, meta["call_id"], with_for_update=True)
            if row is not None:
                row.recording_id, row.archived_at, row.updated_at = rec_id, now, now
                row.state = "archived"
                row.ended_at = row.ended_at or now
                if incomplete:
                    row.end_reason = (reason or "capture stopped mid-call")[:200]
            # cf_recording_archived goes through the outbox, committed with the archive
            events = outbox.enqueue(app, s, "cf_recording_archived", recording_info(rec))
    except Exception:
        for okey in written:
            with contextlib.suppress(Exception):
                app.stores.delete(okey)
        raise
    shutil.rmtree(folder, ignore_errors=True)
    if site_keys is None:  # a site's copies go away at hand-over; the archive locks its own
        lock_recording_media(app, rec, system_context("capture.live"))
    try:  # first delivery now; failures are audited and retried by cf serve (cfcore.outbox)
        outbox.deliver(app, events)
    except Exception:  # noqa: BLE001 - the outbox job retries; never undoes the archive
        log.exception("delivering cf_recording_archived for %s failed", rec_id)
    return str(rec_id)


def recover(app: App, sources: list[str] | None = None) -> list[str]:
    """Finalise every spool a killed runner left (of these sources) as ``incomplete``."""
    root = Path(app.data_dir) / SPOOL_DIR
    done: list[str] = []
    if not root.is_dir():
        return done
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            log.error("live spool %s has no readable meta.json; left for an operator", folder.name)
            continue
        if sources is not None and meta.get("source") not in sources:
            continue
        closed = any(e.get("k") == "closed" for e in _journal(folder))
        try:
            done.append(finalise(app, folder, incomplete=not closed,
                                 reason="" if closed else "the capture runner stopped mid-call; kept up to the last "
                                 "complete segment"))
        except Exception:
            log.exception("live spool %s could not be finalised; kept", folder.name)
    return done


def stats_of(app: App, rec_id: str) -> dict[str, Any]:
    """Gap and loss figures of a live recording (from its archive audit entry)."""
    for e in app.audit.entries(action="recording.archive", target_id=rec_id):
        return dict((e.detail or {}).get("media_stats") or {})
    return {}


def evidence_of(app: App, rec_id: str) -> list[Any]:
    """The source's evidence of a live recording (unsealed with its data key). The caller has made
    the access decision and audits the read; a crypto-shredded recording has none left."""
    from ..db.models import DataKey
    from ..errors import ConflictError

    sealed = [str((e.detail or {}).get("sealed")) for e in app.audit.entries(action="recording.evidence", target_id=rec_id)]
    if not sealed:
        return []
    with app.catalog.session() as s:
        dk = s.get(DataKey, rec_id)
        if dk is None or dk.wrapped is None or dk.kek_id is None:
            raise ConflictError(f"the data key of recording {rec_id} was destroyed; its evidence is gone")
        kek_id, wrapped = dk.kek_id, dk.wrapped
    key = unwrap_data_key(app, rec_id, kek_id, wrapped)
    return [_unseal(key, rec_id, b) for b in sealed]
