"""The purge of expired recordings: mark, delete media, shred, disposal log (see the package
docstring for the state machine). Recordings go in batches: each step is one transaction or one
store pass for the whole batch, with set-based statements naming the batch's ids; what the law and
the FIS need per recording (rule and veto hooks, the audit entries with ``row_digest``, the
tombstone) stays per recording."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from hookspecs.types import AccessTarget, RecordingInfo, RequestContext, Tombstone

from ..db.base import among
from ..db.models import DataKey, Recording, TombstoneRow, TombstoneSubject
from ..db.models_retention import LegalHold, PurgeTask, RetentionOverride
from .common import (
    LIVE_STATES,
    REASON_ERASURE,
    REASON_EXPIRED,
    as_context,
    authorize_retention,
    crash_point,
    digest,
    load_recording,
    media_keys,
)
from .policy import decide_retention, info_of
from .settings import retention_settings

if TYPE_CHECKING:
    from ..app import App

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


def mark(app: App, ctx: RequestContext, s: Session, rec: Recording, reason: str, rule: str,
         approval_id: str | None) -> PurgeTask:
    """Step 1 for one recording (an erasure) inside the caller's transaction (the row is locked
    by the caller); ``_mark_batch`` does the same for a batch of expired recordings."""
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


def _lockable(store: Any) -> bool:
    """Whether a store may refuse a delete (Object Lock). A store that says it has no object lock
    (``object_lock = False``, e.g. a local directory) is not asked for every object."""
    return bool(getattr(store, "object_lock", True))


def store_locks(app: App, keys: Iterable[str], now: datetime) -> list[str]:
    """Objects a store would refuse to delete now (Object Lock retention or legal hold)."""
    stores = {name: store for name, store in getattr(app.stores, "stores", {}).items() if _lockable(store)}
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


def _delete_media(app: App, keys_by_rec: Mapping[str, list[str]]) -> dict[str, Exception]:
    """Step 2 for a batch: delete every copy of every object; returns the recordings whose delete
    failed (PermissionError: a lock; another error from the stores), which stay ``purging``.

    Local stores unlink without syncing their directory per object; ``sync_deletes`` makes the
    whole batch durable with one fsync per directory before the shred commits."""
    failed: dict[str, Exception] = {}
    try:
        for rec_id, keys in keys_by_rec.items():
            for key in keys:
                try:
                    app.stores.delete(key, sync=False)
                except KeyError:
                    pass  # already gone: a rerun after a crash
                except Exception as exc:  # noqa: BLE001 - a store refused (object lock) or failed: retried next run
                    failed[rec_id] = exc
                    break
                crash_point(app, "purge-after-store-delete")
    finally:
        app.stores.sync_deletes()
    return failed


def _pending(app: App, ctx: RequestContext, failed: Mapping[str, Exception], tasks: Mapping[str, tuple[str, str]],
             report: PurgeReport) -> None:
    """Record the recordings a store did not let go: attempt counted, audited, reported."""
    with app.catalog.session() as s:
        rows = {t.recording_id: t for t in s.scalars(select(PurgeTask).where(among(s, PurgeTask.recording_id, list(failed))))}
        for rec_id, exc in failed.items():
            locked = isinstance(exc, PermissionError) or "PermissionError" in str(exc)
            message = f"{'locked' if locked else 'store error'}: {type(exc).__name__}: {exc}"
            task = rows.get(rec_id)
            if task is not None:
                task.attempts = (task.attempts or 0) + 1
                task.last_error = message[:2000]
            rule, reason = tasks[rec_id]
            action = "recording.erase" if reason == REASON_ERASURE else "recording.purge"
            app.audit.append(s, ctx, action, "recording", rec_id, "pending", {"error": message[:500]})
            log.warning("purge of %s pending: %s", rec_id, message)
            report.pending.append({"id": rec_id, "rule": rule, "reason": reason, "error": message})


def _children(s: Session, model: Any, ids: list[str], *cols: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {rec_id: [] for rec_id in ids}
    for row in s.execute(select(model.recording_id, *cols).where(among(s, model.recording_id, ids))):
        out[row[0]].append(row[1] if len(cols) == 1 else row[1:])
    return out


def _shred(app: App, ctx: RequestContext, ids: list[str], events: list[str]) -> list[Tombstone]:
    """Step 3 for a batch, one transaction: destroy the keys, write the tombstones, drop the
    catalog rows set-based, audit every recording. Recordings another worker finished are skipped.
    The ids of the ``cf_after_purge`` events (committed with the shred) are added to ``events``."""
    from .. import outbox
    from ..archive import row_digest
    from ..db.models import ConsentRow, MediaObject, ModeSegmentRow, RecordingSubject
    from ..db.models_integration import TranscriptRow

    tombs: list[Tombstone] = []
    with app.catalog.session() as s:
        recs = list(s.execute(select(*Recording.__table__.columns).where(among(s, Recording.id, ids))
                              .order_by(Recording.id).with_for_update()))
        tasks = {t.recording_id: t for t in s.execute(
            select(PurgeTask.recording_id, PurgeTask.state, PurgeTask.rule, PurgeTask.reason, PurgeTask.approval_id)
            .where(among(s, PurgeTask.recording_id, ids)))}  # plain rows: a batch of 500 ORM objects costs
        recs = [r for r in recs if r.state == "purging" and r.id in tasks and tasks[r.id].state == "purging"]
        if not recs:
            return []
        ids = [r.id for r in recs]
        now = app.clock.now()
        pseudonyms = {k: sorted(set(v)) for k, v in _children(s, RecordingSubject, ids, RecordingSubject.pseudonym).items()}
        hashes = {k: sorted(set(v)) for k, v in _children(s, MediaObject, ids, MediaObject.sha256).items()}
        have_tomb = set(s.scalars(select(TombstoneRow.recording_id).where(among(s, TombstoneRow.recording_id, ids))))
        have_key = set(s.scalars(select(DataKey.recording_id).where(among(s, DataKey.recording_id, ids))))
        new = [r for r in recs if r.id not in have_tomb]
        if new:
            s.execute(insert(TombstoneRow), [dict(
                recording_id=r.id, site=r.site, source=r.source, direction=r.direction, two_sided=bool(r.two_sided),
                started_at=r.started_at, ended_at=r.ended_at, retention_class=r.retention_class or "",
                rule=tasks[r.id].rule, reason=tasks[r.id].reason, deleted_at=now, subject_pseudonyms=pseudonyms[r.id],
                ciphertext_sha256=hashes[r.id], approval_id=tasks[r.id].approval_id) for r in new])
            subjects = [{"recording_id": r.id, "pseudonym": p} for r in new for p in pseudonyms[r.id]]
            if subjects:
                s.execute(insert(TombstoneSubject), subjects)
        # crypto-shredding: the wrapped data keys go (a key destroyed before keeps its date)
        s.execute(update(DataKey).where(among(s, DataKey.recording_id, ids), DataKey.destroyed_at.is_(None))
                  .values(destroyed_at=now))
        s.execute(update(DataKey).where(among(s, DataKey.recording_id, ids), DataKey.wrapped.is_not(None))
                  .values(wrapped=None))
        for model in (ModeSegmentRow, ConsentRow, RecordingSubject, MediaObject, TranscriptRow, LegalHold,
                      RetentionOverride):
            s.execute(delete(model).where(among(s, model.recording_id, ids)))
        s.execute(update(Recording).where(among(s, Recording.id, ids))
                  .values(state="purged", pbx_call_id=None, advisor_id="-"))
        s.execute(update(PurgeTask).where(among(s, PurgeTask.recording_id, ids)).values(state="done", done_at=now))
        entries = []
        for r in recs:
            task = tasks[r.id]
            # the row as it is now (the children are gone): what row_digest covers
            row = SimpleNamespace(**{**r._mapping, "state": "purged", "pbx_call_id": None, "advisor_id": "-",
                                     "segments": [], "consents": [], "subjects": [], "media": []})
            action = "recording.erase" if task.reason == REASON_ERASURE else "recording.purge"
            entries.append((action, "recording", r.id, "ok", {
                "reason": task.reason, "rule": task.rule, "deleted_at": now, "key_destroyed": r.id in have_key,
                "ciphertext_sha256": hashes[r.id], "subjects": len(pseudonyms[r.id]), "approval_id": task.approval_id,
                "row_digest": row_digest(row)}))  # type: ignore[arg-type]
            tombs.append(Tombstone(recording_id=r.id, started_at=r.started_at, ended_at=r.ended_at, deleted_at=now,
                                   reason=task.reason, rule=task.rule, subject_pseudonyms=pseudonyms[r.id],
                                   ciphertext_sha256=hashes[r.id]))
        seqs = app.audit.append_many(s, ctx, entries)
        for r, seq in zip(recs, seqs, strict=True):
            if tasks[r.id].reason == REASON_ERASURE:
                # the erasure entry is its own disposal record
                s.execute(update(PurgeTask).where(PurgeTask.recording_id == r.id).values(disposal_seq=seq))
        events += outbox.enqueue_many(app, s, "cf_after_purge", tombs)  # committed with the shred
    return tombs


def deliver_events(app: App, events: list[str]) -> None:
    """First delivery of ``cf_after_purge`` now; failures are audited and retried by cf serve
    (cfcore.outbox). A crash before it leaves the events to cf serve as well."""
    from .. import outbox

    for start in range(0, len(events), 500):
        try:
            outbox.deliver(app, events[start:start + 500], limit=500)
        except Exception:  # a broken listener must not undo or block the purge
            log.exception("a cf_after_purge implementation failed")


def finish_batch(app: App, ctx: RequestContext, ids: list[str], report: PurgeReport,
                 events: list[str] | None = None) -> set[str]:
    """Steps 2 and 3 for recordings in state ``purging``. Returns the ids purged (by this call);
    the others stay pending. The ``cf_after_purge`` events are delivered at once, or, given a list
    ``events``, added to it for the caller to deliver (one delivery for a whole run)."""
    from ..db.models import MediaObject

    if not ids:
        return set()
    with app.catalog.session() as s:
        keys = {k: sorted(set(v)) for k, v in _children(s, MediaObject, ids, MediaObject.key).items()}
        rules = {r.id: r.retention_rule for r in s.execute(select(Recording.id, Recording.retention_rule)
                                                          .where(among(s, Recording.id, ids)))}
        tasks = {rec_id: (rules.get(rec_id) or "-", REASON_EXPIRED) for rec_id in ids}
        for t in s.execute(select(PurgeTask.recording_id, PurgeTask.rule, PurgeTask.reason)
                           .where(among(s, PurgeTask.recording_id, ids))):
            tasks[t.recording_id] = (t.rule, t.reason)
    failed = _delete_media(app, {rec_id: keys[rec_id] for rec_id in ids})
    if failed:
        _pending(app, ctx, failed, tasks, report)
    new_events: list[str] = []
    tombs = _shred(app, ctx, [rec_id for rec_id in ids if rec_id not in failed], new_events)
    crash_point(app, "purge-after-shred")
    if events is None:
        deliver_events(app, new_events)
    else:
        events += new_events
    for tomb in tombs:
        report.purged.append({"id": tomb.recording_id, "rule": tomb.rule, "reason": tomb.reason,
                              "deleted_at": tomb.deleted_at})
    return {tomb.recording_id for tomb in tombs}


def finish(app: App, ctx: RequestContext, rec_id: str, report: PurgeReport) -> bool:
    """Steps 2 and 3 for one recording in state ``purging``. False when it stays pending."""
    with app.catalog.session() as s:
        load_recording(s, rec_id)  # NotFound for an unknown id
    finish_batch(app, ctx, [rec_id], report)
    return not any(p["id"] == rec_id for p in report.pending)


def purge_veto(app: App, info: RecordingInfo) -> str | None:
    return app.pm.purge_veto(info)  # a failing veto plugin vetoes in its name: when in doubt, keep


def _assign_missing(app: App, ctx: RequestContext, batch: int = 500) -> int:
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


def _candidates(app: App, now: datetime, after: str, batch: int) -> list[str]:
    with app.catalog.session() as s:
        return list(s.scalars(
            select(Recording.id).where(Recording.state.in_(LIVE_STATES), Recording.legal_hold.is_(False),
                                       Recording.retention_until <= now, Recording.id > after)
            .order_by(Recording.id).limit(batch)))


def _unchanged(rec: Any, now: datetime) -> bool:
    return (rec.state in LIVE_STATES and not rec.legal_hold and rec.retention_until is not None
            and rec.retention_until <= now)


def _plain(s: Session, ids: list[str], *, lock: bool = False, children: tuple[str, ...] = ()) -> list[Any]:
    """The recordings ``ids`` as plain rows (no ORM objects: a batch of hundreds is read several
    times faster), each with the child lists named in ``children`` (rows with the same attributes
    as the ORM's, so ``info_of``, ``choose_class`` and ``row_digest`` read them alike)."""
    from ..db.models import ConsentRow, MediaObject, ModeSegmentRow, RecordingSubject

    q = select(*Recording.__table__.columns).where(among(s, Recording.id, ids)).order_by(Recording.id)
    recs = [SimpleNamespace(**r._mapping) for r in s.execute(q.with_for_update() if lock else q)]
    models: dict[str, Any] = {"segments": ModeSegmentRow, "consents": ConsentRow, "subjects": RecordingSubject, "media": MediaObject}
    for name in children:
        model = models[name]
        by_rec: dict[str, list[Any]] = {r.id: [] for r in recs}
        for row in s.execute(select(*model.__table__.columns).where(among(s, model.recording_id, ids))):
            by_rec[row.recording_id].append(row)
        for r in recs:
            setattr(r, name, by_rec[r.id])
    return recs


def _consider(app: App, ctx: RequestContext, ids: list[str], now: datetime, settings: Mapping[str, Any],
              report: PurgeReport, dry_run: bool) -> list[str]:
    """Decide on a batch of expired candidates; mark them (step 1, one transaction) unless
    dry-run. Returns the ids that go.

    Plugins (rules, vetoes) and the stores (lock check: a HEAD per object where a store has
    object locks) are asked outside the transaction that locks the rows; that transaction checks
    again that nothing changed meanwhile."""
    with app.catalog.session() as s:
        recs = _plain(s, ids, children=("subjects", "media"))
        overrides = {o.recording_id: o for o in
                     s.scalars(select(RetentionOverride).where(among(s, RetentionOverride.recording_id, ids)))}
        seen = []
        for rec in recs:
            if not _unchanged(rec, now):
                continue  # changed since the candidate query
            d = decide_retention(app, rec, s, settings, override=overrides.get(rec.id))
            seen.append((rec.id, d, info_of(rec), media_keys(rec), rec.retention_rule or d.rule or "-",
                         rec.retention_until))
    go: dict[str, str] = {}
    for rec_id, d, info, keys, rule, until in seen:
        if d.until is None or d.until > now:
            # the rules changed since archive (a class lengthened, a new plugin): keep, and say so
            report.kept.append({"id": rec_id, "until": d.until, "rule": d.rule})
            if not dry_run:
                _reapply(app, ctx, rec_id, d)
            continue
        veto = purge_veto(app, info)
        if veto:
            report.vetoed.append({"id": rec_id, "reason": veto})
            continue
        locks = store_locks(app, keys, now)
        if locks:  # the store would refuse: keep it readable and unmarked until the lock ends
            report.locked.append({"id": rec_id, "locks": locks})
            continue
        if dry_run:
            report.purged.append({"id": rec_id, "rule": rule, "reason": REASON_EXPIRED, "until": until})
        go[rec_id] = rule
    if dry_run or not go:
        return list(go)
    return _mark_batch(app, ctx, go, now)


def _mark_batch(app: App, ctx: RequestContext, go: Mapping[str, str], now: datetime) -> list[str]:
    """Step 1 for a batch of expired recordings (``{id: rule}``), one transaction, set-based:
    re-check under the row locks, ``state = "purging"``, the purge tasks, one audit entry each."""
    from ..archive import row_digest

    with app.catalog.session() as s:
        recs = [r for r in _plain(s, list(go), lock=True, children=("segments", "consents", "subjects", "media"))
                if _unchanged(r, now)]  # held or changed meanwhile: left alone
        if not recs:
            return []
        ids = [r.id for r in recs]
        at = app.clock.now()
        s.execute(update(Recording).where(among(s, Recording.id, ids)).values(state="purging"))
        old = {t.recording_id: t for t in s.scalars(select(PurgeTask).where(among(s, PurgeTask.recording_id, ids)))}
        for task in old.values():  # a task left from an earlier attempt keeps its attempt count
            task.state, task.reason, task.rule, task.approval_id = "purging", REASON_EXPIRED, go[task.recording_id], None
            task.started_at, task.done_at, task.last_error, task.disposal_seq = at, None, None, None
        fresh = [{"recording_id": r.id, "state": "purging", "reason": REASON_EXPIRED, "rule": go[r.id],
                  "approval_id": None, "started_at": at, "attempts": 0} for r in recs if r.id not in old]
        if fresh:
            s.execute(insert(PurgeTask), fresh)
        for r in recs:
            r.state = "purging"
        app.audit.append_many(s, ctx, [("recording.purge", "recording", r.id, "started",
                                        {"reason": REASON_EXPIRED, "rule": go[r.id], "key_destroyed": False,
                                         "row_digest": row_digest(r)}) for r in recs])
    return ids


def _reapply(app: App, ctx: RequestContext, rec_id: str, d: Any) -> None:
    with app.catalog.session() as s:
        rec = load_recording(s, rec_id, lock=True)
        if rec.state in LIVE_STATES:
            old = rec.retention_until
            rec.retention_class, rec.retention_until, rec.retention_rule = d.retention_class, d.until, d.rule
            s.flush()
            app.audit.append(s, ctx, "retention.apply", "recording", rec.id, "ok",
                             {"old_until": old, "until": d.until, "rule": d.rule, "row_digest": digest(rec)})


def count_due(app: App) -> int:
    """How many recordings a purge run would look at now (expired by their catalogued date, plus
    interrupted purges): the length of a progress bar."""
    from sqlalchemy import func, or_

    now = app.clock.now()
    with app.catalog.session() as s:
        return int(s.scalar(select(func.count()).select_from(Recording).where(or_(
            Recording.state == "purging",
            Recording.state.in_(LIVE_STATES) & (Recording.retention_until <= now)))) or 0)


#: The first batch of a run holds one recording, and each next one twice as many up to ``batch``:
#: a store that refuses or fails shows on one recording, not on hundreds made unreadable
#: (``purging``) at once.
FIRST_BATCH = 1


def run_purge(app: App, ctx: RequestContext | None = None, *, dry_run: bool = False, limit: int | None = None,
              batch: int = 500, progress: Callable[[int], None] | None = None) -> PurgeReport:
    """Purge every expired recording that is not held or vetoed; finish interrupted purges.

    ``ctx`` is the operator running ``cf retention run``; without one the scheduled job runs as
    the system (``system_context("retention.purge")``, which may do ``retention.run`` and nothing
    else). ``progress(n)`` is told of every recording looked at.

    Recordings go in batches: one transaction marks a batch, its media are deleted with one
    directory sync per batch, one transaction shreds it. A crash leaves the batch in flight
    ``purging``; the next run finishes it.
    """
    ctx = as_context(ctx, "retention.purge")
    tick = progress or (lambda n: None)
    now = app.clock.now()
    report = PurgeReport(now=now, dry_run=dry_run)
    settings = retention_settings(app)
    batch = max(1, batch)
    events: list[str] = []  # cf_after_purge, delivered once at the end of the run
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
        for start in range(0, len(resume), batch):
            part = resume[start:start + batch]
            finish_batch(app, ctx, part, report, events)
            tick(len(part))

    after = ""
    count = 0
    size = FIRST_BATCH
    while limit is None or count < limit:
        want = size if limit is None else min(size, limit - count)
        ids = _candidates(app, now, after, want)
        if not ids:
            break
        after = ids[-1]
        size = min(batch, size * 2)
        tick(len(ids))
        chosen = _consider(app, ctx, ids, now, settings, report, dry_run)
        count += len(chosen)
        if chosen and not dry_run:
            crash_point(app, "purge-after-mark")
            finish_batch(app, ctx, chosen, report, events)

    if not dry_run:
        report.disposal_seq = _disposal_entry(app, ctx, now, report)
        deliver_events(app, events)
    return report


def _disposal_entry(app: App, ctx: RequestContext, now: datetime, report: PurgeReport) -> int:
    """One audit entry per run: date, rules, count and ids of what was destroyed since the last."""
    with app.catalog.session() as s:
        done = list(s.execute(select(PurgeTask.recording_id, PurgeTask.rule)
                              .where(PurgeTask.state == "done", PurgeTask.disposal_seq.is_(None))
                              .order_by(PurgeTask.recording_id).with_for_update()))
        by_rule: dict[str, list[str]] = {}
        for t in done:
            by_rule.setdefault(t.rule, []).append(t.recording_id)
        detail = {"date": now.date().isoformat(), "count": len(done), "ids": [t.recording_id for t in done],
                  "rules": {rule: len(ids) for rule, ids in sorted(by_rule.items())},
                  "pending": [p["id"] for p in report.pending], "vetoed": [v["id"] for v in report.vetoed],
                  "locked": [x["id"] for x in report.locked],
                  "held_expired": len(report.held)}
        seq = app.audit.append(s, ctx, "retention.disposal", "retention", now.date().isoformat(), "ok", detail)
        ids = [t.recording_id for t in done]
        for start in range(0, len(ids), 500):  # set-based, the rows locked above
            s.execute(update(PurgeTask).where(among(s, PurgeTask.recording_id, ids[start:start + 500]))
                      .values(disposal_seq=seq))
        return seq
