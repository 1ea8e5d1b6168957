"""The purge of expired recordings: mark, delete media, shred, disposal log."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import attrs
from sqlalchemy import select
from sqlalchemy.orm import Session

from hookspecs.types import AccessTarget, RecordingInfo, RequestContext, Tombstone

from ..db.models import DataKey, Recording, TombstoneRow, TombstoneSubject
from ..db.models_retention import LegalHold, PurgeTask, RetentionOverride
from .common import (
    LIVE_STATES,
    REASON_ERASURE,
    REASON_EXPIRED,
    authorize_retention,
    crash_point,
    digest,
    load_recording,
    media_keys,
)
from .policy import decide_retention, info_of
from .settings import retention_settings

log = logging.getLogger(__name__)




@attrs.define
class PurgeReport:
    now: datetime
    dry_run: bool
    purged: list[dict[str, Any]] = attrs.field(factory=list)
    pending: list[dict[str, Any]] = attrs.field(factory=list)
    vetoed: list[dict[str, Any]] = attrs.field(factory=list)
    kept: list[dict[str, Any]] = attrs.field(factory=list)
    locked: list[dict[str, Any]] = attrs.field(factory=list)
    held: list[str] = attrs.field(factory=list)
    assigned: int = 0
    disposal_seq: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def mark(app: Any, ctx: RequestContext | None, s: Session, rec: Recording, reason: str, rule: str,
          approval_id: str | None) -> PurgeTask:
    task = s.get(PurgeTask, rec.id)
    now = app.clock.now()
    if task is None:
        task = PurgeTask(recording_id=rec.id, attempts=0)
        s.add(task)
    task.state, task.reason, task.rule, task.approval_id = "purging", reason, rule, approval_id
    task.started_at, task.done_at, task.last_error, task.disposal_seq = now, None, None, None
    rec.state = "purging"
    shredded = False
    if reason == REASON_ERASURE:
        # Art. 17: the audio becomes unreadable at once (crypto-shredding), even where a store
        # keeps the ciphertext under an Object Lock until its retention date.
        shredded = _destroy_key(s, rec.id, now)
    s.flush()
    action = "recording.erase" if reason == REASON_ERASURE else "recording.purge"
    app.audit.append(s, ctx, action, "recording", rec.id, "started",
                     {"reason": reason, "rule": rule, "key_destroyed": shredded, "row_digest": digest(rec)})
    return task


def _destroy_key(s: Session, rec_id: str, now: datetime) -> bool:
    """Crypto-shred: drop the wrapped data key. True when a key row exists (now or before)."""
    key = s.get(DataKey, rec_id)
    if key is None:
        return False
    if key.wrapped is not None or key.destroyed_at is None:
        key.wrapped = None
        key.destroyed_at = now
    return True


def store_locks(app: Any, keys: Iterable[str], now: datetime) -> list[str]:
    """Objects a store would refuse to delete now (Object Lock retention or legal hold)."""
    stores = getattr(app.stores, "stores", {})
    found = []
    for key in keys:
        for name, store in stores.items():
            try:
                info = store.stat(key)
            except KeyError:
                continue
            except Exception as exc:  # noqa: BLE001 - an unreachable store shows up at delete time
                log.warning("cannot check the lock of %s in store %s: %s", key, name, type(exc).__name__)
                continue
            if info.legal_hold:
                found.append(f"store {name}: {key} is under a legal hold in the store")
            elif info.retain_until is not None and info.retain_until > now:
                found.append(f"store {name}: {key} is locked until {info.retain_until.isoformat()}")
    return found


def _delete_media(app: Any, keys: list[str]) -> None:
    """Delete every copy; raises PermissionError (a lock) or another error from the stores."""
    for key in keys:
        try:
            app.stores.delete(key)
        except KeyError:
            pass  # already gone: a rerun after a crash
        crash_point(app, "purge-after-store-delete")


def _shred(app: Any, ctx: RequestContext | None, rec_id: str) -> Tombstone | None:
    """Destroy the key, write the tombstone, drop the catalog rows: one transaction."""
    from .. import outbox
    from ..transcripts import drop as drop_transcript

    with app.catalog.session() as s:
        rec = load_recording(s, rec_id, lock=True)
        task = s.get(PurgeTask, rec_id)
        if rec.state != "purging" or task is None or task.state != "purging":
            return None  # another worker finished it
        now = app.clock.now()
        pseudonyms = sorted({x.pseudonym for x in rec.subjects})
        hashes = sorted({m.sha256 for m in rec.media})
        if s.get(TombstoneRow, rec.id) is None:
            s.add(TombstoneRow(
                recording_id=rec.id, site=rec.site, source=rec.source, direction=rec.direction,
                two_sided=bool(rec.two_sided), started_at=rec.started_at, ended_at=rec.ended_at,
                retention_class=rec.retention_class or "", rule=task.rule, reason=task.reason, deleted_at=now,
                subject_pseudonyms=pseudonyms, ciphertext_sha256=hashes, approval_id=task.approval_id))
            s.flush()
            for p in pseudonyms:
                s.add(TombstoneSubject(recording_id=rec.id, pseudonym=p))
        key_destroyed = _destroy_key(s, rec.id, now)
        rec.segments.clear()
        rec.consents.clear()
        rec.subjects.clear()
        rec.media.clear()
        drop_transcript(s, rec.id)  # its ciphertext is unreadable already: the key is gone
        for hold in s.scalars(select(LegalHold).where(LegalHold.recording_id == rec.id)):
            s.delete(hold)
        ov = s.get(RetentionOverride, rec.id)
        if ov is not None:
            s.delete(ov)
        rec.pbx_call_id = None
        rec.advisor_id = "-"
        rec.state = "purged"
        task.state, task.done_at = "done", now
        s.flush()
        action = "recording.erase" if task.reason == REASON_ERASURE else "recording.purge"
        seq = app.audit.append(s, ctx, action, "recording", rec.id, "ok", {
            "reason": task.reason, "rule": task.rule, "deleted_at": now, "key_destroyed": key_destroyed,
            "ciphertext_sha256": hashes, "subjects": len(pseudonyms), "approval_id": task.approval_id,
            "row_digest": digest(rec)})
        if task.reason == REASON_ERASURE:
            task.disposal_seq = seq  # the erasure entry is its own disposal record
        tomb = Tombstone(recording_id=rec.id, started_at=rec.started_at, ended_at=rec.ended_at, deleted_at=now,
                         reason=task.reason, rule=task.rule, subject_pseudonyms=pseudonyms,
                         ciphertext_sha256=hashes)
        events = outbox.enqueue(app, s, "cf_after_purge", tomb)  # committed with the shred
    try:  # first delivery now; failures are audited and retried by cf serve (cfcore.outbox)
        outbox.deliver(app, events)
    except Exception:  # a broken listener must not undo or block the purge
        log.exception("a cf_after_purge implementation failed for %s", rec_id)
    return tomb


def finish(app: Any, ctx: RequestContext | None, rec_id: str, report: PurgeReport) -> bool:
    """Steps 2 and 3 for a recording in state ``purging``. False when it stays pending."""
    with app.catalog.session() as s:
        rec = load_recording(s, rec_id)
        keys = media_keys(rec)
        task = s.get(PurgeTask, rec_id)
        task_rule, task_reason = (task.rule, task.reason) if task else (rec.retention_rule or "-", REASON_EXPIRED)
    try:
        _delete_media(app, keys)
    except Exception as exc:  # noqa: BLE001 - a store refused (object lock) or failed: retried next run
        locked = isinstance(exc, PermissionError) or "PermissionError" in str(exc)
        message = f"{'locked' if locked else 'store error'}: {type(exc).__name__}: {exc}"
        with app.catalog.session() as s:
            task = s.get(PurgeTask, rec_id)
            if task is not None:
                task.attempts = (task.attempts or 0) + 1
                task.last_error = message[:2000]
            action = "recording.erase" if task_reason == REASON_ERASURE else "recording.purge"
            app.audit.append(s, ctx, action, "recording", rec_id, "pending", {"error": message[:500]})
        log.warning("purge of %s pending: %s", rec_id, message)
        report.pending.append({"id": rec_id, "rule": task_rule, "reason": task_reason, "error": message})
        return False
    tomb = _shred(app, ctx, rec_id)
    crash_point(app, "purge-after-shred")
    if tomb is not None:
        report.purged.append({"id": rec_id, "rule": tomb.rule, "reason": tomb.reason,
                              "deleted_at": tomb.deleted_at})
    return True


def purge_veto(app: Any, info: RecordingInfo) -> str | None:
    return app.pm.purge_veto(info)  # a failing veto plugin vetoes in its name: when in doubt, keep


def _assign_missing(app: Any, ctx: RequestContext | None, batch: int = 500) -> int:
    """Recordings archived without a retention date get one (audited)."""
    settings = retention_settings(app)
    done = 0
    after = ""
    while True:
        with app.catalog.session() as s:
            recs = s.scalars(select(Recording).where(Recording.state.in_(LIVE_STATES),
                                                     Recording.retention_until.is_(None), Recording.id > after)
                             .order_by(Recording.id).limit(batch).with_for_update()).all()
            for rec in recs:
                d = decide_retention(app, rec, s, settings)
                if d.until is None:
                    continue  # no rule applies: never purged automatically
                rec.retention_class, rec.retention_until, rec.retention_rule = d.retention_class, d.until, d.rule
                s.flush()
                app.audit.append(s, ctx, "retention.apply", "recording", rec.id, "ok",
                                 {"until": d.until, "rule": d.rule, "row_digest": digest(rec)})
                done += 1
        if len(recs) < batch:
            return done
        after = recs[-1].id


def _candidates(app: Any, now: datetime, after: str, batch: int) -> list[str]:
    with app.catalog.session() as s:
        return list(s.scalars(
            select(Recording.id).where(Recording.state.in_(LIVE_STATES), Recording.legal_hold.is_(False),
                                       Recording.retention_until <= now, Recording.id > after)
            .order_by(Recording.id).limit(batch)))


def _unchanged(rec: Recording, now: datetime) -> bool:
    return (rec.state in LIVE_STATES and not rec.legal_hold and rec.retention_until is not None
            and rec.retention_until <= now)


def _consider(app: Any, ctx: RequestContext | None, rec_id: str, now: datetime, settings: Mapping[str, Any],
              report: PurgeReport, dry_run: bool) -> bool:
    """Decide on one expired candidate; mark it (step 1) unless dry-run. True when it goes.

    Plugins (rules, vetoes) and the stores (lock check: a HEAD per object) are asked outside the
    transaction that locks the row; that transaction checks again that nothing changed meanwhile.
    """
    with app.catalog.session() as s:
        rec = load_recording(s, rec_id)
        if not _unchanged(rec, now):
            return False  # changed since the candidate query
        d = decide_retention(app, rec, s, settings)
        info = info_of(rec)
        keys = media_keys(rec)
        rule = rec.retention_rule or d.rule or "-"
        until = rec.retention_until
    if d.until is None or d.until > now:
        # the rules changed since archive (a class lengthened, a new plugin): keep, and say so
        report.kept.append({"id": rec_id, "until": d.until, "rule": d.rule})
        if not dry_run:
            with app.catalog.session() as s:
                rec = load_recording(s, rec_id, lock=True)
                if rec.state in LIVE_STATES:
                    old = rec.retention_until
                    rec.retention_class, rec.retention_until, rec.retention_rule = d.retention_class, d.until, d.rule
                    s.flush()
                    app.audit.append(s, ctx, "retention.apply", "recording", rec.id, "ok",
                                     {"old_until": old, "until": d.until, "rule": d.rule, "row_digest": digest(rec)})
        return False
    veto = purge_veto(app, info)
    if veto:
        report.vetoed.append({"id": rec_id, "reason": veto})
        return False
    locks = store_locks(app, keys, now)
    if locks:  # the store would refuse: keep it readable and unmarked until the lock ends
        report.locked.append({"id": rec_id, "locks": locks})
        return False
    if dry_run:
        report.purged.append({"id": rec_id, "rule": rule, "reason": REASON_EXPIRED, "until": until})
        return True
    with app.catalog.session() as s:
        rec = load_recording(s, rec_id, lock=True)
        if not _unchanged(rec, now):
            return False  # held or changed meanwhile
        mark(app, ctx, s, rec, REASON_EXPIRED, rule, None)
    return True


def count_due(app: Any) -> int:
    """How many recordings a purge run would look at now (expired by their catalogued date, plus
    interrupted purges): the length of a progress bar."""
    from sqlalchemy import func, or_

    now = app.clock.now()
    with app.catalog.session() as s:
        return int(s.scalar(select(func.count()).select_from(Recording).where(or_(
            Recording.state == "purging",
            Recording.state.in_(LIVE_STATES) & (Recording.retention_until <= now)))) or 0)


def run_purge(app: Any, ctx: RequestContext | None = None, *, dry_run: bool = False, limit: int | None = None,
              batch: int = 200, progress: Callable[[int], None] | None = None) -> PurgeReport:
    """Purge every expired recording that is not held or vetoed; finish interrupted purges.

    ``ctx`` is the operator running ``cf retention run`` (None: the scheduled job, the system).
    ``progress(n)`` is told of every recording looked at.
    """
    tick = progress or (lambda n: None)
    now = app.clock.now()
    report = PurgeReport(now=now, dry_run=dry_run)
    settings = retention_settings(app)
    authorize_retention(app, ctx, "retention.run", AccessTarget(kind="retention", attributes={"dry_run": dry_run}))

    with app.catalog.session() as s:
        resume = list(s.scalars(select(Recording.id).where(Recording.state == "purging").order_by(Recording.id)))
        report.held = list(s.scalars(select(Recording.id).where(
            Recording.state.in_(LIVE_STATES), Recording.legal_hold.is_(True), Recording.retention_until <= now)
            .order_by(Recording.id)))
    if dry_run:
        for rec_id in resume:
            report.pending.append({"id": rec_id, "error": "interrupted purge: would be resumed"})
    else:
        report.assigned = _assign_missing(app, ctx)
        for rec_id in resume:
            finish(app, ctx, rec_id, report)
            tick(1)

    after = ""
    count = 0
    while limit is None or count < limit:
        ids = _candidates(app, now, after, batch)
        if not ids:
            break
        after = ids[-1]
        for rec_id in ids:
            if limit is not None and count >= limit:
                break
            tick(1)
            if not _consider(app, ctx, rec_id, now, settings, report, dry_run):
                continue
            count += 1
            if not dry_run:
                crash_point(app, "purge-after-mark")
                finish(app, ctx, rec_id, report)

    if not dry_run:
        report.disposal_seq = _disposal_entry(app, ctx, now, report)
    return report


def _disposal_entry(app: Any, ctx: RequestContext | None, now: datetime, report: PurgeReport) -> int:
    """One audit entry per run: date, rules, count and ids of what was destroyed since the last."""
    with app.catalog.session() as s:
        done = s.scalars(select(PurgeTask).where(PurgeTask.state == "done", PurgeTask.disposal_seq.is_(None))
                         .order_by(PurgeTask.recording_id).with_for_update()).all()
        by_rule: dict[str, list[str]] = {}
        for t in done:
            by_rule.setdefault(t.rule, []).append(t.recording_id)
        detail = {"date": now.date().isoformat(), "count": len(done), "ids": [t.recording_id for t in done],
                  "rules": {rule: len(ids) for rule, ids in sorted(by_rule.items())},
                  "pending": [p["id"] for p in report.pending], "vetoed": [v["id"] for v in report.vetoed],
                  "locked": [x["id"] for x in report.locked],
                  "held_expired": len(report.held)}
        seq = app.audit.append(s, ctx, "retention.disposal", "retention", now.date().isoformat(), "ok", detail)
        for t in done:
            t.disposal_seq = seq
        return seq
