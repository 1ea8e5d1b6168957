"""Ingest: a finished call (WAV files) into the archive.

normalise (decode G.711 to PCM16, split channels) → drop customer audio outside ``BOTH`` segments
and all audio in ``PAUSED`` segments → encode (``[archive] codec``: PCM, FLAC, Opus) → encrypt each
channel with a fresh data key → put the objects to the stores (streamed block by block, hashed as
the bytes pass: ``cfcore.ingest_stream``; memory does not grow with the call) → one catalog
transaction (recording, segments, consents, subjects, media rows, wrapped data key, audit entry
``recording.archive``) → ``cf_recording_archived`` hook.

Crash safety: objects are written before the transaction; a crash before the commit leaves only
objects that no catalog row names (invisible; ``sweep_orphans`` deletes them after an hour).

Crash points ``after-store`` and ``before-commit`` (exit code 86) for tests: only the test-only
plugin (``cf_test_crash_point``; the test kit's ``CF_TEST_CRASH_AT``) acts on them, so tests can
kill an ingest mid-way; a production install has no such plugin.
"""

from __future__ import annotations

import contextvars
import json
import logging
import math
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import select

from hookspecs.types import (
    ChannelRole,
    Consent,
    ConsentMethod,
    Direction,
    FinishedCall,
    ModeSegment,
    RecordingMode,
    RequestContext,
    StoreFailure,
)

from .archive import (
    CHANNELS,
    new_recording_id,
    object_key,
    parse_object_key,
    recording_id_time,
    recording_info,
    row_digest,
)
from .authority import system_context
from .consent import enforce_consent
from .crypto import envelope
from .crypto.keyring import wrap_data_key
from .db.models import ConsentRow, DataKey, MediaObject, ModeSegmentRow, Recording, RecordingSubject
from .errors import ConfigError, InputError, IntegrityError
from .retention import apply_retention, choose_class, retention_settings
from .storage import lock_recording_media
from .subjects import pseudonyms_for
from .sync.site_keys import site_keys_for
from .wav import Audio, WavInfo, wav_info

if TYPE_CHECKING:
    from .app import App

log = logging.getLogger(__name__)

CRASH_EXIT_CODE = 86
#: Channels of at least this much PCM go to the stores in parallel (two threads); below it the
#: thread start costs more than it saves.
PARALLEL_BYTES = 8 << 20
ORPHAN_AGE = timedelta(hours=1)


def _crash_point(app: App, name: str) -> None:
    """Crash point (see module docstring): a test-only plugin may end the process here."""
    app.crash_point(name, CRASH_EXIT_CODE)


# ---------------------------------------------------------------------- segments


def plan_segments(duration: float, consent_at: float | None, segments: Sequence[ModeSegment] | None) -> list[ModeSegment]:
    """The mode segments of a recording, covering ``[0, duration]`` without overlap.

    Given segments are clipped to the duration and gaps are filled with ``ADVISOR_ONLY``; without
    segments, ``consent_at`` switches from ``ADVISOR_ONLY`` to ``BOTH``.
    """
    if segments is None:
        if consent_at is None or consent_at >= duration:
            return [ModeSegment(start=0.0, end=duration, mode=RecordingMode.ADVISOR_ONLY)]
        out = []
        if consent_at > 0:
            out.append(ModeSegment(start=0.0, end=consent_at, mode=RecordingMode.ADVISOR_ONLY))
        out.append(ModeSegment(start=consent_at, end=duration, mode=RecordingMode.BOTH))
        return out
    ordered = sorted(segments, key=lambda s: (s.start, s.end))
    out = []
    pos = 0.0
    for seg in ordered:
        if seg.mode is RecordingMode.STOP:
            continue
        if seg.start < pos - 1e-9:
            raise InputError(f"mode segments overlap at {seg.start:.3f} s")
        start, end = min(seg.start, duration), min(seg.end, duration)
        if start > pos:
            out.append(ModeSegment(start=pos, end=start, mode=RecordingMode.ADVISOR_ONLY))
        if end > start:
            out.append(ModeSegment(start=start, end=end, mode=seg.mode,
                                   start_bounds=seg.start_bounds if start == seg.start else None))
        pos = max(pos, end)
    if pos < duration:
        out.append(ModeSegment(start=pos, end=duration, mode=RecordingMode.ADVISOR_ONLY))
    return out


def capture_warnings(duration: float, rate: int, segments: Sequence[ModeSegment] | None,
                     consents: Sequence[Consent], customer_kept: bool) -> list[str]:
    """What a source handed over that the audio could not hold: ``BOTH`` segments cut or dropped
    because they lie past the end of the files, and consents without any customer audio."""
    out: list[str] = []
    tolerance = 1.0 / rate
    for seg in segments or ():
        if seg.mode is not RecordingMode.BOTH:
            continue
        kept = max(0.0, min(seg.end, duration) - min(seg.start, duration))
        lost = (seg.end - seg.start) - kept
        if lost > tolerance:
            what = "dropped" if kept <= tolerance else "cut"
            out.append(f"two-sided segment {seg.start:.3f}-{seg.end:.3f} s {what}: {lost:.3f} s beyond the "
                       f"end of the audio ({duration:.3f} s)")
    if consents and not customer_kept:
        out.append(f"{len(consents)} consent(s) but no customer audio kept; classified two-sided all the same")
    return out


def apply_modes(audio: Audio, segments: Sequence[ModeSegment]) -> tuple[bytes, bytes | None]:
    """``(advisor, customer)`` PCM16 with customer audio only inside ``BOTH`` segments and no
    audio inside ``PAUSED`` segments. ``customer`` is None when nothing of it may be kept.

    The rule on whole buffers; ingest streams with ``ingest_stream.silenced_ranges``, which a test
    holds to exactly the same samples."""
    rate = audio.sample_rate
    frames = audio.frames
    advisor = bytearray(audio.channels[0])
    for seg in segments:
        if seg.mode is RecordingMode.PAUSED:
            a = max(0, math.floor(seg.start * rate + 1e-6))
            b = min(frames, math.ceil(seg.end * rate - 1e-6))
            if b > a:
                advisor[2 * a:2 * b] = bytes(2 * (b - a))
    customer: bytes | None = None
    if len(audio.channels) > 1:
        src = audio.channels[1]
        kept = bytearray(2 * frames)  # digital silence
        any_kept = False
        for seg in segments:
            if seg.mode is RecordingMode.BOTH:
                a = max(0, math.ceil(seg.start * rate - 1e-6))
                b = min(frames, math.floor(seg.end * rate + 1e-6))
                if b > a:
                    kept[2 * a:2 * b] = src[2 * a:2 * b]
                    any_kept = True
        customer = bytes(kept) if any_kept else None
    return bytes(advisor), customer


# ---------------------------------------------------------------------- ingest


def storage_codec(app: App, rec: Recording) -> tuple[str, int]:
    """``(catalog codec, segment size)`` for a recording about to be stored: ``[archive]
    class_codecs`` by its retention class (as ``apply_retention`` will choose it), else ``[archive]
    codec`` (default ``pcm``)."""
    from .codecs import catalog_codec

    name = app.config.get("archive.codec", str, "pcm")
    by_class = app.config.section("archive.class_codecs")
    if by_class:
        cls = choose_class(retention_settings(app), rec)
        name = by_class.get(cls, name)
        if not isinstance(name, str):
            raise ConfigError(f"{app.config.path}: archive.class_codecs.{cls} must be a string")
    seg_size = app.config.get("archive.segment_size", int, envelope.DEFAULT_SEGMENT_SIZE)
    if not envelope.MIN_SEGMENT_SIZE <= seg_size <= envelope.MAX_SEGMENT_SIZE:
        raise ConfigError(f"archive.segment_size must be between {envelope.MIN_SEGMENT_SIZE} and "
                          f"{envelope.MAX_SEGMENT_SIZE}")
    return catalog_codec(name), seg_size


def _as_datetime(value: datetime | str | None, default: datetime) -> datetime:
    if value is None:
        return default
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InputError(f"start time {value!r} is not ISO-8601", hint="e.g. 2026-11-28T09:30:00+01:00") from None
    if value.tzinfo is None:
        raise InputError("start time needs a time zone", hint="e.g. 2026-11-28T09:30:00+01:00 or ...Z")
    return value


#: A call may end at most this far after the server's clock (PBX clocks drift a little).
FUTURE_SKEW = timedelta(hours=1)


def _check_start(app: App, started_at: datetime, duration: float, now: datetime) -> None:
    """A call starts in a sane window: not before ``[archive] max_call_age_days`` (default ten
    years: migrations of old archives) and not ending after now (plus ``FUTURE_SKEW``). A start in
    1970 would be purgeable at once; one in 9999 would break the retention arithmetic."""
    max_age = app.config.get("archive.max_call_age_days", int, 3660)
    earliest = now - timedelta(days=max_age)
    latest_start = now + FUTURE_SKEW - timedelta(seconds=duration)
    if started_at < earliest or started_at > latest_start:
        raise InputError(f"start time {started_at.isoformat()} lies outside {earliest:%Y-%m-%d} .. now: "
                         "a call cannot end in the future nor be older than max_call_age_days",
                         hint="check --started (and this server's clock); older archives: "
                              "[archive] max_call_age_days")


def _check_text(name: str, value: str | None, limit: int, required: bool = True) -> None:
    if value is None or value == "":
        if required:
            raise InputError(f"{name} is required")
        return
    if len(value) > limit or not value.isprintable():
        raise InputError(f"{name} must be printable and at most {limit} characters")


def ingest_wav(app: App, path: str | os.PathLike[str], *, advisor_id: str, customer_ids: Iterable[str] = (),
               customer_numbers: Iterable[str] = (), consent_at: float | None = None,
               started: datetime | str | None = None, site: str | None = None, direction: str | Direction = "in",
               source: str = "cli", pbx_call_id: str | None = None, segments: Sequence[ModeSegment] | None = None,
               consents: Sequence[Consent] | None = None, ctx: RequestContext | None = None) -> str:
    """Archive a WAV file (mono = advisor; stereo = advisor, customer). Returns the recording id.

    Without ``consent_at``, ``segments`` or a ``BOTH`` segment, no customer audio is stored.
    """
    info = wav_info(path)
    return _archive(app, _sources([(info, i) for i in range(info.channels)]), info.sample_rate, info.source_codec,
                    advisor_id=advisor_id, customer_ids=tuple(customer_ids),
                    customer_numbers=tuple(customer_numbers), consent_at=consent_at, started=started, site=site,
                    direction=direction, source=source, pbx_call_id=pbx_call_id, segments=segments,
                    consents=consents, ctx=ctx)


def ingest_call(app: App, call: FinishedCall, ctx: RequestContext | None = None,
                wall_seconds: float | None = None) -> str:
    """Archive a call a capture source finished (one mono file per channel).

    ``wall_seconds`` is the call's length by the core's clock (from the start to the end event):
    with it, no consent is placed earlier than the advisor acted less the audio the files lack.

    Idempotent: a call already archived (same source, PBX call id and start) returns its id, so a
    source may retry after a crash without creating a duplicate.
    """
    pbx_call_id = call.pbx_call_id or call.call_id
    with app.catalog.session() as s:
        existing = s.scalars(select(Recording.id).where(
            Recording.source == call.source, Recording.pbx_call_id == pbx_call_id,
            Recording.advisor_id == call.advisor_id, Recording.started_at == call.started_at)).first()
    if existing:
        return existing
    files = {f.role: f.path for f in call.files}
    if ChannelRole.ADVISOR not in files:
        raise InputError(f"call {call.call_id} has no advisor file")
    adv = wav_info(files[ChannelRole.ADVISOR])
    parts = [(adv, 0)]
    if ChannelRole.CUSTOMER in files:
        cus = wav_info(files[ChannelRole.CUSTOMER])
        if cus.sample_rate != adv.sample_rate:
            raise InputError(f"call {call.call_id}: advisor and customer files have different sample rates")
        parts.append((cus, 0))  # the first channel of each file; the shorter is padded with silence
    return _archive(app, _sources(parts), adv.sample_rate, adv.source_codec, advisor_id=call.advisor_id,
                    customer_ids=call.customer_ids, customer_numbers=call.customer_numbers, consent_at=None,
                    started=call.started_at, site=call.site, direction=call.direction, source=call.source, pbx_call_id=pbx_call_id,
                    segments=call.segments or None, consents=call.consents, ctx=ctx, wall_seconds=wall_seconds)


def _sources(parts: list[tuple[WavInfo, int]]) -> list[Any]:
    """One streaming source per channel, all as long as the longest (silence pads the shorter)."""
    from .ingest_stream import ChannelSource

    frames = max(info.frames for info, _ in parts)
    return [ChannelSource(info=info, index=i, frames=frames) for info, i in parts]


def _archive(app: App, sources: list[Any], sample_rate: int, source_codec: str, *, advisor_id: str,
             customer_ids: tuple[str, ...], customer_numbers: tuple[str, ...], consent_at: float | None,
             started: datetime | str | None, site: str | None, direction: str | Direction, source: str, pbx_call_id: str | None,
             segments: Sequence[ModeSegment] | None, consents: Sequence[Consent] | None,
             ctx: RequestContext | None, wall_seconds: float | None = None) -> str:
    # a call captured without a person acting is archived by the system, audited as such
    ctx = ctx if ctx is not None else system_context("ingest")
    now = app.clock.now()
    frames = sources[0].frames
    duration = frames / sample_rate
    if duration <= 0:
        raise InputError("the recording has no audio (0 samples): nothing to archive")
    started_at = _as_datetime(started, now - timedelta(seconds=duration))
    _check_start(app, started_at, duration, now)
    site = site or app.config.site
    _check_text("advisor id", advisor_id, 64)
    _check_text("site", site, 64)
    _check_text("source", source, 64)
    _check_text("PBX call id", pbx_call_id, 128, required=False)
    try:
        direction = direction if isinstance(direction, Direction) else Direction(direction)
    except ValueError:
        raise InputError(f"direction {direction!r} is unknown", hint="choose one of: in, out, internal") from None
    if consent_at is not None and not (0 <= consent_at <= duration):
        raise InputError(f"consent at {consent_at} s lies outside the recording (0..{duration:.3f} s)")
    subjects = pseudonyms_for(app, customer_ids, customer_numbers)
    plan = plan_segments(duration, consent_at, segments)
    all_consents = list(consents or ())
    if consent_at is not None:
        by = ctx.actor.username if ctx else "system"
        method = source if source in {m.value for m in ConsentMethod} else ConsentMethod.API
        all_consents.append(Consent(given_at=started_at + timedelta(seconds=consent_at), offset=consent_at,
                                    by_user=by, method=method))
    if wall_seconds is not None:
        # A source places each consent in its files' time line, which runs behind the wall clock
        # only where no audio was written (hold, silence). So a consent sits no earlier than when
        # the advisor acted, less the audio the files lack: a source cannot move it further back.
        gap = max(0.0, wall_seconds - duration)
        all_consents = [attrs.evolve(c, offset=min(duration, max(
            c.offset, (c.given_at - started_at).total_seconds() - gap))) for c in all_consents]
    # The core, not the source, decides what customer audio is kept: no BOTH before a consent.
    plan, refused = enforce_consent(plan, all_consents)
    if refused:
        log.warning("source %s claimed two-sided audio without consent for %.3f s; the customer channel is "
                    "silenced there", source, sum(r.seconds for r in refused))
    from .ingest_stream import SealedChannel, seal_channel, silenced_ranges

    advisor_silence, customer_silence = silenced_ranges(plan, sample_rate, frames)
    customer_kept = len(sources) > 1 and customer_silence != [(0, frames)]
    warnings = capture_warnings(duration, sample_rate, segments, all_consents, customer_kept)
    silence = {"advisor": advisor_silence, "customer": customer_silence}
    channel_sources = {"advisor": sources[0], "customer": sources[1] if customer_kept else None}
    kept = [c for c in CHANNELS if channel_sources[c] is not None]
    # Two-sided (and kept as such, MiFID) follows the consent, not the audio that survived.
    two_sided = customer_kept or bool(all_consents)

    rec_id = new_recording_id(now)
    rec = Recording(
        id=rec_id, site=site, source=source, pbx_call_id=pbx_call_id, advisor_id=advisor_id,
        direction=direction.value, started_at=started_at, ended_at=started_at + timedelta(seconds=duration),
        duration=duration, channels=len(kept), sample_rate=sample_rate, two_sided=two_sided, state="archived",
        retention_class="", legal_hold=False, created_at=now)  # class chosen by apply_retention
    codec, seg_size = storage_codec(app, rec)
    rec.codec = codec
    data_key = envelope.new_data_key()
    site_keys = site_keys_for(app, rec_id, data_key)  # a site seals every key to the archive at once
    kek_id, wrapped = wrap_data_key(app, rec_id, data_key) if site_keys is None or site_keys.keep_local else ("", b"")
    media_rows: list[MediaObject] = []
    media_sha: dict[str, str] = {}
    written: list[str] = []
    try:
        with app.stores.batch():  # one directory fsync per recording, before the commit names it
            def store_channel(channel: str, prefix: bytes, dk: bytes) -> tuple[list[str], SealedChannel]:
                key = object_key(rec_id, channel, started_at)
                runs: list[SealedChannel] = []

                def produce() -> Any:
                    runs.append(SealedChannel())
                    return seal_channel(channel_sources[channel], silence[channel], codec=codec,
                                        sample_rate=sample_rate, data_key=dk, recording_id=rec_id, channel=channel,
                                        segment_size=seg_size, nonce_prefix=prefix, result=runs[-1])

                confirmed = app.stores.put_stream(key, produce)
                done = [r for r in runs if r.sha256]
                if not done or any(r != done[0] for r in done):
                    app.stores.delete(key)
                    raise IntegrityError(f"the {channel} object of {rec_id} came out differently for two stores")
                return confirmed, done[0]

            # The channels go to the stores at the same time: hashing, reading and writing let go
            # of the GIL, so a second core shortens the wall time (the CPU time stays the same).
            jobs = [(c, os.urandom(envelope.PREFIX_SIZE)) for c in kept]
            outcomes: list[Any] = []
            if len(jobs) > 1 and 2 * frames >= PARALLEL_BYTES:
                with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="cf-ingest") as pool:
                    futures = [pool.submit(contextvars.copy_context().run, store_channel, c, prefix, data_key)
                               for c, prefix in jobs]
                    for f in futures:
                        try:
                            outcomes.append(f.result())
                        except Exception as exc:  # the other channel still finishes (and is removed)
                            outcomes.append(exc)
            else:
                for c, prefix in jobs:
                    try:
                        outcomes.append(store_channel(c, prefix, data_key))
                    except Exception as exc:  # what was stored before is removed below
                        outcomes.append(exc)
                        break
            for (channel, _), outcome in zip(jobs, outcomes, strict=False):
                if not isinstance(outcome, Exception):
                    written.append(object_key(rec_id, channel, started_at))
            for (channel, _), outcome in zip(jobs, outcomes, strict=False):
                if isinstance(outcome, Exception):
                    raise outcome
                confirmed, r = outcome
                key = object_key(rec_id, channel, started_at)
                for store in confirmed:
                    media_rows.append(MediaObject(channel=channel, store=store, key=key, size=r.size, sha256=r.sha256,
                                                  plain_size=r.plain_size, plain_sha256=r.plain_sha256, codec=codec))
                media_sha[channel] = r.sha256
                _crash_point(app, "after-store")
        # A consent's proof (a dial-in opt-in's announcement, digit, times) is kept encrypted
        # under the recording's data key, like the audio: it goes with the key at purge.
        proofs = [envelope.encrypt(data_key, rec_id, f"consent-{i}",
                                   json.dumps(dict(c.proof), sort_keys=True).encode()) if c.proof else None
                  for i, c in enumerate(all_consents)]
        del data_key

        rec.segments = [ModeSegmentRow(idx=i, start=s.start, end=s.end, mode=s.mode.value,
                                       start_lo=s.start_bounds[0] if s.start_bounds else None,
                                       start_hi=s.start_bounds[1] if s.start_bounds else None)
                        for i, s in enumerate(plan)]
        rec.consents = [ConsentRow(given_at=c.given_at, offset=min(c.offset, duration), by_user=c.by_user,
                                   method=c.method.value, applied_at=c.applied_at, proof_enc=proofs[i])
                        for i, c in enumerate(all_consents)]
        rec.subjects = [RecordingSubject(kind=k, pseudonym=p) for k, p in subjects]
        rec.media = media_rows
        with app.catalog.session() as s:
            apply_retention(app, s, rec)  # class, keep-until and rule from cfcore.retention
            s.add(rec)
            if wrapped:
                s.add(DataKey(recording_id=rec_id, kek_id=kek_id, wrapped=wrapped, created_at=now))
            if site_keys is not None:
                s.add(site_keys.row(rec_id, now))
            s.flush()
            app.audit.append(s, ctx, "recording.archive", "recording", rec_id, "ok", {
                "row_digest": row_digest(rec), "channels": kept,
                "duration": duration, "media_sha256": media_sha, "source_codec": source_codec,
                "stores": sorted({m.store for m in media_rows}),
            })
            if refused:
                app.audit.append(s, ctx, "recording.consent_refused", "recording", rec_id, "refused", {
                    "source": source, "pbx_call_id": pbx_call_id,
                    "stretches": [[round(r.start, 3), round(r.end, 3)] for r in refused],
                    "seconds": round(sum(r.seconds for r in refused), 3),
                    "reason": "two-sided audio claimed before any consent; customer channel silenced"})
            if warnings:
                # Consented audio that did not fit the files: never silent (FIS rule capture-loss).
                app.audit.append(s, ctx, "recording.capture_warning", "recording", rec_id, "warning",
                                 {"source": source, "pbx_call_id": pbx_call_id, "duration": round(duration, 3),
                                  "warnings": warnings[:20], "retention_class": rec.retention_class})
                log.warning("recording %s: %s", rec_id, "; ".join(warnings[:3]))
            from .outbox import enqueue

            events = enqueue(app, s, "cf_recording_archived", recording_info(rec))
            _crash_point(app, "before-commit")
    except Exception:
        # nothing of a failed ingest stays visible, and nothing of it stays in the stores either
        # (the objects are not locked yet); a crash instead of an exception leaves orphans for
        # sweep_orphans
        for key in written:
            try:
                app.stores.delete(key)
            except Exception:  # noqa: S110 - best effort; sweep_orphans catches the rest
                log.warning("could not remove %s after a failed ingest; 'cf archive sweep' will", key)
        raise
    # Object Lock until the retention end, now that it is known (problems are audited, not fatal).
    if site_keys is None:  # a site's copies go away at hand-over; the archive locks its own
        lock_recording_media(app, rec, ctx or system_context("ingest"))
    # first delivery of cf_recording_archived now; failures are audited and retried from the
    # outbox by cf serve (cfcore.outbox), they never undo the archive
    if events:
        from .outbox import deliver

        try:
            deliver(app, events)
        except Exception:  # noqa: BLE001 - the outbox job retries
            log.exception("delivering cf_recording_archived for %s failed", rec_id)
    return rec_id


# ---------------------------------------------------------------------- orphans


def sweep_orphans(app: App, older_than: timedelta = ORPHAN_AGE, ctx: RequestContext | None = None) -> list[str]:
    """Delete store objects that no catalog row names and that are older than ``older_than``
    (by the time in their recording id): what a crash between store and commit leaves behind.

    Only keys of CallFort's own layout are considered. Audited as ``store.sweep`` when anything
    was deleted. Returns the deleted keys.
    """
    ctx = ctx if ctx is not None else system_context("store.sweep")
    cutoff = app.clock.now() - older_than
    deleted: list[str] = []
    skipped: list[str] = []
    for name, store in app.stores.stores.items():
        candidates: dict[str, list[str]] = {}
        for key in store.keys():
            parsed = parse_object_key(key)
            if parsed is None or recording_id_time(parsed[0]) > cutoff:
                continue
            candidates.setdefault(parsed[0], []).append(key)
        ids = list(candidates)
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            with app.catalog.session() as s:
                known = set(s.scalars(select(MediaObject.key).where(MediaObject.recording_id.in_(chunk))))
            for rid in chunk:
                for key in candidates[rid]:
                    if key not in known:
                        try:
                            store.delete(key)
                        except KeyError:
                            continue
                        except (PermissionError, StoreFailure) as exc:  # locked, or the store is down
                            skipped.append(f"{name}:{key}")
                            log.warning("orphan %s in store %s not removed: %s", key, name, type(exc).__name__)
                            continue
                        deleted.append(f"{name}:{key}")
    if deleted or skipped:
        app.audit.record(ctx, "store.sweep", "store", None, "ok" if not skipped else "partial",
                         {"deleted": len(deleted), "keys": deleted[:100], "skipped": skipped[:100]})
    return deleted

