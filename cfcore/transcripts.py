"""Transcripts (Verschriftung): speech to text of consented recordings, after archiving.

The worker (``transcripts.run`` job of ``cf serve``, and ``cf transcribe run``) takes archived
recordings that have no transcript yet and, for each channel separately, hands decrypted PCM to the
``cf_transcribe`` hook (the first engine plugin that answers wins):

- the advisor's channel in the stretches that were not paused,
- the customer's channel only inside two-sided (``BOTH``) segments, i.e. after consent,

then merges the timed words or phrases of both voices by time. The language comes from the
advisor's setting (``[transcription.advisors] "<advisor id>" = "de"``) or the deployment's
(``[transcription] language``, default ``en``); it is never detected from the audio.

The transcript is JSON encrypted with the recording's data key in the same envelope as the audio
(channel name ``transcript``), in the ``transcripts`` table. Reading it is ``transcript.read``
(own call, else four-eyes), through a signed link that also needs the user's own session
(``GET /api/transcripts/<id>?t=…``), audited like a playback. The purge deletes the row and
destroys the key with the recording (crypto-shredding); an Art. 17 erasure destroys the key first.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import select
from sqlalchemy.orm import Session

from hookspecs.types import AudioClip, ChannelRole, RecordingMode, RequestContext, Transcript, TranscriptionUnavailable

from .archive import get_recording, read_channel
from .authority import system_context
from .crypto import envelope
from .crypto.keyring import unwrap_data_key
from .db.models import DataKey, Recording
from .db.models_integration import TranscriptRow
from .errors import ConflictError, InputError, NotFound
from .states import LIVE_RECORDING_STATES

if TYPE_CHECKING:
    from .app import App

log = logging.getLogger(__name__)

CHANNEL = "transcript"
LIVE = LIVE_RECORDING_STATES
SCOPES = ("consented", "all")
#: Failed runs (engine crashed) are retried this often, then left as ``failed``.
MAX_ATTEMPTS = 3
_LANG_OK = frozenset("abcdefghijklmnopqrstuvwxyz-")


@attrs.frozen(kw_only=True)
class Settings:
    enabled: bool
    language: str
    advisors: dict[str, str]
    scope: str
    interval_seconds: int
    batch: int


def _lang(where: str, value: Any) -> str:
    text = str(value).strip().lower()
    if not 2 <= len(text) <= 16 or not set(text) <= _LANG_OK:
        raise InputError(f"{where}: {value!r} is not a language code", hint='e.g. "en" or "de"')
    return text


def settings(app: App) -> Settings:
    """The validated ``[transcription]`` section."""
    cfg = app.config
    section = dict(cfg.section("transcription"))
    advisors = section.get("advisors", {})
    if not isinstance(advisors, Mapping):
        raise InputError(f"{cfg.path}: [transcription.advisors] must map advisor ids to languages")
    scope = str(section.get("scope", "consented"))
    if scope not in SCOPES:
        raise InputError(f"{cfg.path}: transcription.scope must be one of: {', '.join(SCOPES)}")
    interval = int(section.get("interval_seconds", 60))
    batch = int(section.get("batch", 5))
    if interval < 1 or batch < 1:
        raise InputError(f"{cfg.path}: transcription.interval_seconds and batch must be positive")
    return Settings(enabled=bool(section.get("enabled", True)),
                    language=_lang(f"{cfg.path}: transcription.language", section.get("language", "en")),
                    advisors={str(k): _lang(f"{cfg.path}: transcription.advisors.{k}", v) for k, v in advisors.items()},
                    scope=scope, interval_seconds=interval, batch=batch)


def language_for(st: Settings, advisor_id: str) -> str:
    """The advisor's language, else the deployment's. Never detected from the audio."""
    return st.advisors.get(advisor_id, st.language)


# ---------------------------------------------------------------------------------- the worker


def pending(app: App, st: Settings, limit: int) -> list[str]:
    """Recordings that still need a transcript (oldest first)."""
    with app.catalog.session() as s:
        done = select(TranscriptRow.recording_id).where(
            (TranscriptRow.state != "failed") | (TranscriptRow.attempts >= MAX_ATTEMPTS))
        q = (select(Recording.id).where(Recording.state.in_(LIVE), Recording.id.not_in(done))
             .order_by(Recording.created_at, Recording.id).limit(limit))
        if st.scope == "consented":
            q = q.where(Recording.two_sided.is_(True))
        return list(s.scalars(q))


def _stretches(segments: Iterable[Any], duration: float, role: ChannelRole) -> list[tuple[float, float]]:
    """Where a voice may be transcribed: the customer only inside BOTH, the advisor outside PAUSED."""
    wanted = {RecordingMode.BOTH.value} if role is ChannelRole.CUSTOMER else {
        RecordingMode.BOTH.value, RecordingMode.ADVISOR_ONLY.value}
    out: list[tuple[float, float]] = []
    for seg in sorted(segments, key=lambda x: x.start):
        if seg.mode not in wanted or seg.end <= seg.start:
            continue
        start, end = float(seg.start), min(float(seg.end), duration)
        if out and abs(out[-1][1] - start) < 1e-6:
            out[-1] = (out[-1][0], end)  # adjacent stretches of the same voice are one clip
        elif end > start:
            out.append((start, end))
    return out


def _engine_call(app: App, clip: AudioClip, language: str) -> Transcript | None:
    result = app.pm.transcribe(clip, language, app.config.section("transcription"))
    if result is not None and not isinstance(result, Transcript):
        raise TypeError(f"a cf_transcribe implementation returned {type(result).__name__}, not Transcript")
    return result


@attrs.frozen
class _Seg:
    start: float
    end: float
    mode: str


@attrs.frozen
class _Outcome:
    state: str
    engine: str | None
    document: dict[str, Any] | None
    error: str | None
    audio_seconds: float


def transcribe_recording(app: App, rec_id: str, language: str) -> _Outcome:
    """Transcribe both channels of one recording (nothing is written)."""
    with app.catalog.session() as s:
        rec = get_recording(s, rec_id)
        segments = [_Seg(seg.start, seg.end, seg.mode) for seg in rec.segments]
        duration, rate = float(rec.duration), int(rec.sample_rate)
        # the customer channel exists only where consented audio was stored (not every two-sided call)
        roles = [ChannelRole.ADVISOR] + ([ChannelRole.CUSTOMER] if int(rec.channels) > 1 else [])
    words: list[dict[str, Any]] = []
    engines: set[str] = set()
    seconds = 0.0
    for role in roles:
        pcm = read_channel(app, rec_id, role.value)
        for start, end in _stretches(segments, duration, role):
            a, b = int(start * rate) * 2, int(end * rate) * 2
            clip = AudioClip(recording_id=rec_id, role=role, pcm_s16le=pcm[a:b], sample_rate=rate)
            seconds += (b - a) / 2 / rate
            try:
                result = _engine_call(app, clip, language)
            except TranscriptionUnavailable as exc:
                return _Outcome("refused", None, None, str(exc)[:500], seconds)
            if result is None:
                return _Outcome("refused", None, None, f"no transcription engine for language '{language}' "
                                "(install or configure one, see docs/transcription.md)", seconds)
            engines.add(result.engine)
            if result.segments:
                for w in result.segments:
                    if w.text.strip():
                        words.append({"start": round(start + w.start, 3), "end": round(start + w.end, 3),
                                      "role": role.value, "text": w.text.strip()})
            elif result.text.strip():
                words.append({"start": round(start, 3), "end": round(end, 3), "role": role.value,
                              "text": result.text.strip()})
        del pcm
    words.sort(key=lambda w: (w["start"], w["end"], w["role"]))
    engine = ",".join(sorted(engines))
    doc: dict[str, Any] = {"format": 1, "recording_id": rec_id, "language": language, "engine": engine,
                           "segments": words}
    return _Outcome("done", engine or None, doc, None, seconds)


def _data_key(s: Session, app: App, rec_id: str) -> bytes:
    dk = s.get(DataKey, rec_id)
    if dk is None or dk.wrapped is None or dk.kek_id is None:
        raise ConflictError(f"the data key of recording {rec_id} was destroyed (crypto-shredded)")
    return unwrap_data_key(app, rec_id, dk.kek_id, dk.wrapped)


def _store(app: App, rec_id: str, language: str, out: _Outcome, cpu: float) -> dict[str, Any]:
    now = app.clock.now()
    with app.catalog.session() as s:
        rec = s.get(Recording, rec_id)
        if rec is None or rec.state not in LIVE:
            return {"id": rec_id, "state": "skipped"}
        row = s.get(TranscriptRow, rec_id)
        if row is None:
            row = TranscriptRow(recording_id=rec_id, attempts=0, words=0)
            s.add(row)
        row.state, row.language, row.engine, row.created_at = out.state, language, out.engine, now
        row.audio_seconds = round(out.audio_seconds, 3)
        row.attempts = (row.attempts or 0) + (1 if out.state == "failed" else 0)
        row.last_error = out.error
        detail: dict[str, Any] = {"language": language, "engine": out.engine, "audio_seconds": row.audio_seconds,
                                  "cpu_seconds": round(cpu, 3)}
        if out.document is not None:
            plain = json.dumps(out.document, ensure_ascii=False, separators=(",", ":")).encode()
            row.ciphertext = envelope.encrypt(_data_key(s, app, rec_id), rec_id, CHANNEL, plain)
            row.plain_sha256 = hashlib.sha256(plain).hexdigest()
            row.words = sum(len(w["text"].split()) for w in out.document["segments"])
            detail.update(words=row.words, plain_sha256=row.plain_sha256)
        else:
            row.ciphertext, row.plain_sha256, row.words = None, None, 0
            detail["error"] = out.error
        s.flush()
        app.audit.append(s, system_context("transcripts.run"), "transcript.create", "recording", rec_id,
                         "ok" if out.state == "done" else out.state, detail)
    return {"id": rec_id, "state": out.state, "language": language, "engine": out.engine, "error": out.error,
            "audio_seconds": round(out.audio_seconds, 3), "cpu_seconds": round(cpu, 3)}


def run(app: App, *, limit: int | None = None, recording_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Transcribe what is pending (or the given recordings); returns one summary per recording.
    A crash of one engine run is recorded as ``failed`` (retried up to ``MAX_ATTEMPTS``)."""
    st = settings(app)
    ids = list(recording_ids) if recording_ids is not None else pending(app, st, limit or st.batch)
    results = []
    for rec_id in ids:
        with app.catalog.session() as s:
            rec = get_recording(s, rec_id)
            language = language_for(st, rec.advisor_id)
        t0 = time.process_time()
        try:
            out = transcribe_recording(app, rec_id, language)
        except Exception as exc:  # noqa: BLE001 - one bad recording or engine must not stop the worker
            log.warning("transcription of %s failed: %s", rec_id, type(exc).__name__)
            out = _Outcome("failed", None, None, f"{type(exc).__name__}: {exc}"[:500], 0.0)
        results.append(_store(app, rec_id, language, out, time.process_time() - t0))
    return results


def job(app: App) -> list[dict[str, Any]] | None:
    """The ``cf serve`` job: transcribe a batch when enabled."""
    st = settings(app)
    if not st.enabled:
        return None
    return run(app)


# ---------------------------------------------------------------------------------- reading


def status(app: App, rec_id: str) -> TranscriptRow | None:
    with app.catalog.session() as s:
        row = s.get(TranscriptRow, rec_id)
        if row is not None:
            s.expunge(row)
        return row


def decrypt(app: App, rec_id: str) -> dict[str, Any]:
    """The transcript document of a live recording (no access check: callers authorize and audit)."""
    with app.catalog.session() as s:
        rec = get_recording(s, rec_id)
        if rec.state not in LIVE:
            raise NotFound(f"recording {rec_id} has no transcript (it is {rec.state})")
        row = s.get(TranscriptRow, rec_id)
        if row is None or row.state != "done" or row.ciphertext is None:
            raise NotFound(f"recording {rec_id} has no transcript")
        key = _data_key(s, app, rec_id)
        blob, digest = row.ciphertext, row.plain_sha256
    plain = envelope.decrypt(key, rec_id, CHANNEL, blob)
    if hashlib.sha256(plain).hexdigest() != digest:
        from .errors import IntegrityError

        raise IntegrityError(f"the transcript of {rec_id} does not match its SHA-256")
    doc: dict[str, Any] = json.loads(plain)
    return doc


def has_transcript(app: App, rec_id: str) -> bool:
    row = status(app, rec_id)
    return row is not None and row.state == "done"


def drop(s: Session, rec_id: str) -> bool:
    """Delete a recording's transcript row inside the purge's transaction."""
    row = s.get(TranscriptRow, rec_id)
    if row is None:
        return False
    s.delete(row)
    return True


def create_link(app: App, ctx: RequestContext, rec_id: str, *, bind_ip: bool | None = None) -> dict[str, Any]:
    """A link to the transcript view for the actor: ``transcript.read`` decides (own call, or
    four-eyes under ``ctx.approval_id``)."""
    from .access import approvals, links
    from .access.guard import authorize

    target = approvals.resolve_target(app, "recording", rec_id)
    authorize(app, ctx, "transcript.read", target, detail={"function": "link.create"})
    if not target.attributes.get("exists") or not has_transcript(app, rec_id):
        raise NotFound(f"recording {rec_id} has no transcript")
    return links.issue(app, ctx, rec_id, purpose="transcript", bind_ip=bind_ip)


def _exec_read(app: App, ctx: RequestContext, target_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """Approved reading of another advisor's transcript: a link for the requester."""
    return create_link(app, ctx, target_id)
