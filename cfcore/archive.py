"""Reading the archive: catalog rows, integrity-checked audio, WAV views for export and streaming.

None of these functions checks access: callers (CLI, web) call ``authorize`` first and audit.
Every read authenticates what it decrypts; a changed byte raises ``IntegrityError``, never
returns audio.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from hookspecs.types import Direction, RecordingInfo, StoreFailure

from . import codecs
from .clock import utc
from .crypto import envelope
from .crypto.keyring import unwrap_data_key
from .db.models import DataKey, MediaObject, Recording
from .errors import ConflictError, IntegrityError, NotFound, StoreError
from .wav import interleave, wav_header

if TYPE_CHECKING:
    from .app import App

log = logging.getLogger(__name__)

CHANNELS = ("advisor", "customer")
_ID = re.compile(r"^[0-9a-f]{32}$")


def new_recording_id(now: datetime) -> str:
    """32 hex characters: 12 of milliseconds since the epoch (so ids sort by creation and an
    orphan object's age is known from its key), 20 random."""
    ms = int(now.timestamp() * 1000)
    return f"{ms:012x}{secrets.token_hex(10)}"


def recording_id_time(rec_id: str) -> datetime:
    return datetime.fromtimestamp(int(rec_id[:12], 16) / 1000, UTC)


def object_key(rec_id: str, channel: str, started_at: datetime) -> str:
    """``<yyyy>/<mm>/<recording id>.<channel>.cfe`` (month of the call's start, UTC)."""
    s = started_at.astimezone(UTC)
    return f"{s.year:04d}/{s.month:02d}/{rec_id}.{channel}.cfe"


_KEY = re.compile(r"^\d{4}/\d{2}/([0-9a-f]{32})\.(advisor|customer)\.cfe$")


def parse_object_key(key: str) -> tuple[str, str] | None:
    """``(recording id, channel)`` of a key this module made, else None."""
    m = _KEY.match(key)
    return (m.group(1), m.group(2)) if m else None


def get_recording(session: Session, rec_id: str) -> Recording:
    """The recording with its segments, consents, subjects and media; NotFound otherwise."""
    if not isinstance(rec_id, str) or not _ID.match(rec_id):
        raise NotFound(f"no recording {rec_id!r}", hint="a recording id is 32 hex characters; see cf recordings list")
    rec = session.scalars(select(Recording).where(Recording.id == rec_id).options(
        selectinload(Recording.segments), selectinload(Recording.consents),
        selectinload(Recording.subjects), selectinload(Recording.media))).one_or_none()
    if rec is None:
        raise NotFound(f"no recording {rec_id}", hint="see cf recordings list")
    return rec


def recording_info(rec: Recording) -> RecordingInfo:
    return RecordingInfo(
        id=rec.id, site=rec.site, source=rec.source, advisor_id=rec.advisor_id,
        direction=Direction(rec.direction), started_at=utc(rec.started_at), ended_at=utc(rec.ended_at),
        two_sided=bool(rec.two_sided), retention_class=rec.retention_class, legal_hold=bool(rec.legal_hold),
        subject_pseudonyms=sorted({s.pseudonym for s in rec.subjects}), state=rec.state)


def _ts(dt: datetime | None) -> str | None:
    return None if dt is None else utc(dt).astimezone(UTC).isoformat(timespec="microseconds")


def canonical_row(rec: Recording) -> dict[str, Any]:
    """The metadata ``row_digest`` covers, as plain JSON-able data."""
    return {
        "id": rec.id, "site": rec.site, "source": rec.source, "pbx_call_id": rec.pbx_call_id,
        "advisor_id": rec.advisor_id, "direction": rec.direction, "started_at": _ts(rec.started_at),
        "ended_at": _ts(rec.ended_at), "duration": float(rec.duration), "channels": rec.channels,
        "sample_rate": rec.sample_rate, "codec": rec.codec, "two_sided": bool(rec.two_sided), "state": rec.state,
        "retention_class": rec.retention_class, "retention_until": _ts(rec.retention_until),
        "retention_rule": rec.retention_rule, "legal_hold": bool(rec.legal_hold), "created_at": _ts(rec.created_at),
        # (fields added later appear only when set, so older rows keep their digest)
        "segments": [[s.idx, float(s.start), float(s.end), s.mode]
                     + ([float(s.start_lo), float(s.start_hi)] if s.start_lo is not None and s.start_hi is not None else [])
                     for s in sorted(rec.segments, key=lambda s: s.idx)],
        "consents": sorted([[_ts(c.given_at), float(c.offset), c.by_user, c.method]
                            + ([_ts(c.applied_at)] if c.applied_at is not None else []) for c in rec.consents],
                           key=lambda c: (c[1], c[0], c[2], c[3])),
        "subjects": sorted([s.kind, s.pseudonym] for s in rec.subjects),
        "media": sorted([m.channel, m.store, m.key, m.size, m.sha256, m.plain_size, m.plain_sha256, m.codec]
                        for m in rec.media),
    }


def row_digest(rec: Recording) -> str:
    """SHA-256 over the canonical metadata of a recording (fields, segments, consents, subjects,
    media rows, state, legal hold, retention). Whoever changes any of it audits an entry whose
    detail carries the new ``row_digest``; the FIS compares."""
    body = json.dumps(canonical_row(rec), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(body.encode()).hexdigest()


# ---------------------------------------------------------------------- reading audio


@attrs.frozen
class _Channel:
    name: str
    key: str
    size: int
    sha256: str
    plain_size: int
    plain_sha256: str
    codec: str = "pcm_s16le"


@attrs.frozen
class _Loaded:
    rec_id: str
    sample_rate: int
    channels: tuple[_Channel, ...]
    data_key: bytes


def _load(app: App, rec_id: str) -> _Loaded:
    with app.catalog.read_session() as s:
        rec = get_recording(s, rec_id)
        if rec.state == "purged":
            raise NotFound(f"recording {rec_id} was deleted", hint="see its tombstone")
        dk = s.get(DataKey, rec_id)
        media: dict[str, MediaObject] = {}
        for m in rec.media:
            media.setdefault(m.channel, m)
        chans = tuple(_Channel(c, mo.key, mo.size, mo.sha256, mo.plain_size, mo.plain_sha256, mo.codec)
                      for c in CHANNELS if (mo := media.get(c)) is not None)
        sample_rate = rec.sample_rate
        state = rec.state
    if dk is None:
        from .sync.handover import no_local_key_error

        raise no_local_key_error(app, rec_id)
    if dk.wrapped is None or dk.kek_id is None:
        raise ConflictError(f"the data key of recording {rec_id} was destroyed (crypto-shredded); its audio is gone")
    if state == "purging":
        # the purge or an erasure has begun: nobody hears it between mark and shred
        raise ConflictError(f"recording {rec_id} is being deleted (purge or erasure in progress)")
    if not chans or chans[0].name != "advisor":
        raise IntegrityError(f"recording {rec_id} has no advisor media object in the catalog")
    key = unwrap_data_key(app, rec_id, dk.kek_id, dk.wrapped)
    return _Loaded(rec_id, sample_rate, chans, key)


def read_channel(app: App, rec_id: str, channel: str) -> bytes:
    """The decrypted PCM16 mono audio of one channel, every segment and both hashes verified."""
    if channel not in CHANNELS:
        raise NotFound(f"no channel {channel!r}", hint="choose one of: " + ", ".join(CHANNELS))
    loaded = _load(app, rec_id)
    ch = next((c for c in loaded.channels if c.name == channel), None)
    if ch is None:
        raise NotFound(f"recording {rec_id} has no {channel} channel (no consent to two-sided recording)")
    blob = app.stores.get(ch.key, expected_sha256=ch.sha256)
    plain = envelope.decrypt(loaded.data_key, rec_id, channel, blob)
    if len(plain) != ch.plain_size or hashlib.sha256(plain).hexdigest() != ch.plain_sha256:
        raise IntegrityError(f"decrypted {channel} audio of {rec_id} does not match its catalogued SHA-256")
    return codecs.decode_all(ch.codec, plain, f"{rec_id}/{channel}")


class _FailoverReader:
    """Random access to one channel's object, authenticated segment by segment, that moves on to
    the next store's copy when a copy is missing, unreachable or fails authentication, and reports
    the broken copy (the whole-object SHA-256 cannot be checked on a range)."""

    def __init__(self, stores: Any, data_key: bytes, rec_id: str, ch: _Channel,
                 opened: dict[str, envelope.Reader] | None = None) -> None:
        self._stores, self._key, self._rec_id, self._ch = stores, data_key, rec_id, ch
        #: store name -> reader whose header was checked (shared by the views of one playback link:
        #: a reader keeps no position, so views in several threads may use it at once)
        self._opened = {} if opened is None else opened
        self._order = stores.read_order(ch.key)
        self._pos = 0
        self._reader: envelope.Reader | None = None
        self._call(lambda r: None)

    def _open(self, name: str) -> envelope.Reader:
        reader = self._opened.get(name)
        if reader is not None:
            return reader

        def fetch(a: int, b: int) -> bytes:
            return self._stores.get_from(name, self._ch.key, a, b)

        reader = envelope.Reader(self._key, self._rec_id, self._ch.name, fetch, self._ch.size)
        if reader.plain_size != self._ch.plain_size:
            raise IntegrityError(f"{self._ch.name} object of {self._rec_id} in store {name} has a different size")
        self._opened[name] = reader
        return reader

    def _call(self, op: Callable[[envelope.Reader], Any]) -> Any:
        missing: list[str] = []
        damaged: list[str] = []
        while self._pos < len(self._order):
            name = self._order[self._pos]
            try:
                if self._reader is None:
                    self._reader = self._open(name)
                result = op(self._reader)
            except KeyError:
                missing.append(name)
                self._opened.pop(name, None)
            except IntegrityError:
                damaged.append(name)
                self._opened.pop(name, None)
            except (StoreFailure, OSError) as exc:
                log.warning("store %s failed to read %s: %s", name, self._ch.key, type(exc).__name__)
            else:
                if missing or damaged:
                    self._stores.report_read(self._ch.key, missing=missing, damaged=damaged, healthy=name)
                return result
            self._reader = None
            self._pos += 1
        self._stores.report_read(self._ch.key, missing=[], damaged=damaged, healthy=None)
        if damaged:
            raise IntegrityError(f"{self._ch.name} audio of {self._rec_id} failed authentication in every store "
                                 f"({', '.join(damaged)})", hint="possible manipulation: inform the DPO")
        if missing and len(missing) == len(self._order):
            raise NotFound(f"stored object {self._ch.key} is missing from every store")
        raise StoreError(f"cannot read {self._ch.key} from any store")

    @property
    def plain_size(self) -> int:
        return self._ch.plain_size

    def read(self, start: int, end: int) -> bytes:
        return self._call(lambda r: r.read(start, end))


def _interleave(parts: list[bytes]) -> bytes:
    """``cfcore.wav.interleave`` with NumPy (several times faster on a two-channel stream, where
    interleaving costs more than decrypting). NumPy is imported here, on first use, not with the
    module: it costs a command that only lists or shows recordings 35 ms of CPU."""
    if len(parts) == 2:
        import numpy as _np

        n = len(parts[0]) // 2
        out = _np.empty((n, 2), dtype="<i2")
        out[:, 0] = _np.frombuffer(parts[0], dtype="<i2", count=n)
        out[:, 1] = _np.frombuffer(parts[1], dtype="<i2", count=n)
        return out.tobytes()
    return interleave(parts)


class WavView:
    """A PCM16 WAV (1 or 2 channels) of a recording with random access: ``read(start, end)``
    decrypts only the segments that hold the requested bytes (for HTTP Range streaming)."""

    def __init__(self, app: App, rec_id: str, *, loaded: _Loaded | None = None,
                 opened: dict[str, dict[str, envelope.Reader]] | None = None) -> None:
        """``loaded`` and ``opened`` (channel -> store -> reader) come from an earlier view of the
        same recording (``cfcore.playback``: once per streaming link); without them the catalog
        and the stores are read now."""
        loaded = _load(app, rec_id) if loaded is None else loaded
        self.loaded = loaded
        self.recording_id = rec_id
        self.sample_rate = loaded.sample_rate
        self._channels = loaded.channels
        self.opened = {} if opened is None else opened
        # a coded channel (FLAC, Opus) is decoded on the fly into the same PCM16 byte view
        self._readers = [codecs.pcm_access(ch.codec, _FailoverReader(app.stores, loaded.data_key, rec_id, ch,
                                                                     self.opened.setdefault(ch.name, {})),
                                           f"{rec_id}/{ch.name}") for ch in loaded.channels]
        self.channels = len(self._readers)
        self.frames = self._readers[0].plain_size // 2
        self.data_size = self.frames * 2 * self.channels
        self.header = wav_header(self.data_size, self.channels, self.sample_rate)
        self.size = len(self.header) + self.data_size

    def _frames(self, f0: int, f1: int) -> bytes:
        parts = [r.read(2 * f0, 2 * f1) for r in self._readers]
        if any(len(p) != 2 * (f1 - f0) for p in parts):
            raise IntegrityError(f"channels of {self.recording_id} have different lengths")
        return _interleave(parts)

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self._channels)

    def channel_frames(self, index: int, f0: int, f1: int) -> bytes:
        """PCM16 samples ``[f0, f1)`` of one channel, decrypted in memory only."""
        f1 = min(f1, self.frames)
        return self._readers[index].read(2 * f0, 2 * f1) if f1 > f0 else b""

    def read(self, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``[start, end)`` of the WAV file (clamped to ``size``)."""
        end = self.size if end is None else min(end, self.size)
        start = max(0, start)
        if start >= end:
            return b""
        h = len(self.header)
        out = self.header[start:end] if start < h else b""
        d0, d1 = max(start, h) - h, end - h
        if d1 > d0:
            fs = 2 * self.channels
            f0, f1 = d0 // fs, -(-d1 // fs)
            data = self._frames(f0, f1)
            out += data[d0 - f0 * fs:d1 - f0 * fs]
        return out

    def iter_verified(self, chunk_frames: int = 1 << 18) -> Iterator[bytes]:
        """The whole WAV in chunks; at the end each channel's SHA-256 is compared with the
        catalog (IntegrityError on mismatch, after the last chunk)."""
        for r, ch in zip(self._readers, self._channels, strict=True):
            if getattr(r, "decoded", False):  # the payload's hash, before any of it goes out
                r.verify(ch.plain_size, ch.plain_sha256)
        yield self.header
        hashes = [hashlib.sha256() for _ in self._readers]
        for f0 in range(0, self.frames, chunk_frames):
            f1 = min(self.frames, f0 + chunk_frames)
            parts = [r.read(2 * f0, 2 * f1) for r in self._readers]
            for h, p in zip(hashes, parts, strict=True):
                h.update(p)
            yield _interleave(parts)
        if self.frames == 0:
            for r in self._readers:
                r.read(0, 0)
        for h, ch, r in zip(hashes, self._channels, self._readers, strict=True):
            if not getattr(r, "decoded", False) and h.hexdigest() != ch.plain_sha256:
                raise IntegrityError(f"decrypted {ch.name} audio of {self.recording_id} does not match its SHA-256")


def export_wav(app: App, rec_id: str, out_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Write the recording as a PCM16 WAV file (bit-exact to what was stored), verified.

    Written to a temporary file and renamed, so a failed check leaves no file behind. Refuses to
    overwrite. Returns ``{"path", "bytes", "sha256", "channels", "duration"}``.
    """
    out = Path(out_path)
    if out.exists():
        raise ConflictError(f"{out} exists already", hint="choose another --out file")
    view = WavView(app, rec_id)
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.part")
    digest = hashlib.sha256()
    try:
        with open(tmp, "xb") as f:
            for chunk in view.iter_verified():
                f.write(chunk)
                digest.update(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return {"path": str(out), "bytes": view.size, "sha256": digest.hexdigest(), "channels": view.channels,
            "duration": view.frames / view.sample_rate}


# ---------------------------------------------------------------------- guarded entry points


def recording_target(rec: Recording) -> Any:
    from hookspecs.types import AccessTarget

    return AccessTarget(kind="recording", id=rec.id, owner_advisor_id=rec.advisor_id,
                        attributes={"two_sided": bool(rec.two_sided), "state": rec.state})


def authorized_target(app: App, ctx: Any, action: str, rec_id: str, **kwargs: Any) -> Any:
    """``authorize`` ``action`` on recording ``rec_id`` *before* telling whether it exists: for an
    unknown id the decision is taken on a recording of no advisor, so that a person who may not
    see other advisors' recordings gets the same (audited) refusal for an unknown id as for a
    colleague's call and cannot probe which ids exist. Then ``NotFound`` for those who may."""
    from hookspecs.types import AccessTarget

    from .access.guard import authorize

    with app.catalog.session() as s:
        rec = s.get(Recording, rec_id) if isinstance(rec_id, str) and _ID.match(rec_id) else None
        target = recording_target(rec) if rec is not None else AccessTarget(kind="recording", id=str(rec_id)[:64])
    authorize(app, ctx, action, target, **kwargs)
    if rec is None:
        raise NotFound(f"no recording {rec_id!r}", hint="a recording id is 32 hex characters; see cf recordings list")
    return target


def export_recording(app: App, ctx: Any, rec_id: str, out_path: str | os.PathLike[str]) -> dict[str, Any]:
    """``authorize`` ``recording.export`` (four-eyes: ``ctx.approval_id``), export, audit the
    outcome with the exported file's SHA-256. For the CLI and the four-eyes executor."""
    from .errors import CallFortError

    authorized_target(app, ctx, "recording.export", rec_id)
    try:
        result = export_wav(app, rec_id, out_path)
    except CallFortError as exc:
        app.audit.record(ctx, "recording.export", "recording", rec_id, "failed",
                         {"error": type(exc).__name__, "message": exc.message[:300]})
        raise
    app.audit.record(ctx, "recording.export", "recording", rec_id, "ok",
                     {"sha256": result["sha256"], "bytes": result["bytes"], "channels": result["channels"]})
    return result


def _exec_export(app: App, ctx: Any, target_id: str, params: dict[str, Any]) -> dict[str, Any]:
    from .errors import InputError

    out = params.get("out")
    if not isinstance(out, str) or not out:
        raise InputError("an export request needs the output file", hint="request it with params out=FILE.wav")
    return export_recording(app, ctx, target_id, out)


def consent_proofs(app: App, ctx: Any, rec_id: str) -> list[dict[str, Any]]:
    """The recording's consents with their decrypted proofs (``Consent.proof``), for whoever may
    see the recording (``recording.show``); the read is audited (``recording.consent_proof``)."""
    from .db.models import ConsentRow

    authorized_target(app, ctx, "recording.show", rec_id)
    with app.catalog.session() as s:
        get_recording(s, rec_id)
        rows = [(c.id, c.given_at, c.offset, c.by_user, c.method, c.applied_at, c.proof_enc)
                for c in s.scalars(select(ConsentRow).where(ConsentRow.recording_id == rec_id).order_by(ConsentRow.id))]
        dk = s.get(DataKey, rec_id)
    key = None
    if any(r[6] for r in rows):
        if dk is None or dk.wrapped is None or dk.kek_id is None:
            raise ConflictError(f"the data key of recording {rec_id} was destroyed; its consent proofs are gone")
        key = unwrap_data_key(app, rec_id, dk.kek_id, dk.wrapped)
    out = []
    for i, (_, given, offset, by_user, method, applied, enc) in enumerate(rows):
        proof = json.loads(envelope.decrypt(key, rec_id, f"consent-{i}", enc)) if enc and key else {}
        out.append({"given_at": _ts(given), "offset": offset, "by_user": by_user, "method": method,
                    "applied_at": _ts(applied), "proof": proof})
    app.audit.record(ctx, "recording.consent_proof", "recording", rec_id, "ok", {"consents": len(out)})
    return out
