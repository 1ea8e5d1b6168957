"""Retention: how long each recording is kept, legal holds, and the purge (crypto-shredding).

How rules combine (see ``docs/retention.md``): every ``cf_retention_rules`` implementation returns
the duties it sees; the recording is kept until the latest ``keep_until``. A per-recording
extension (four-eyes) moves that date later; a shortening (four-eyes) moves it earlier but never
below a ``statutory`` rule. A legal hold or a ``cf_before_purge`` veto stops the purge whatever the
date says.

The purge of one recording is a small state machine, resumable after a crash at any point:

1. *mark* (one transaction): re-check hold, date and vetoes under a row lock; ``state="purging"``
   and a ``purge_tasks`` row; audit ``recording.purge`` outcome ``started``.
2. *delete media* from every store (absent objects are fine; a store that refuses — an object
   lock — leaves the recording ``purging``: it is retried on the next run).
3. *shred* (one transaction): destroy the data key, write the tombstone, delete the recording's
   catalog rows, ``state="purged"``; audit ``recording.purge`` (or ``recording.erase``) with the
   new ``row_digest``.
4. *disposal log* (one transaction per run): one ``retention.disposal`` audit entry naming every
   recording shredded since the last one (so one lost to a crash is reported by the next run).

An Art. 17 erasure (four-eyes ``recording.erase``) runs the same machine with reason
``art17-erasure``, but destroys the data key already in step 1: the audio is unreadable at once
even where a store keeps the ciphertext under an Object Lock until its retention date.
Crash points for tests (``CRASH_POINTS``; see docs/retention.md): only the test-only plugin acts
on them (``cf_test_crash_point``; the test kit's ``CF_TEST_CRASH_AT``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import attrs
from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from hookspecs.types import AccessTarget, Direction, RecordingInfo, RequestContext, RetentionRule, Tombstone

from .authority import system_context
from .db.models import DataKey, Recording, TombstoneRow, TombstoneSubject
from .db.models_retention import LegalHold, PurgeTask, RetentionOverride
from .defaults.retention_rules import ADVISOR_ONLY_CLASS, MIFID_CLASS, add_years, class_kind
from .errors import ConfigError, ConflictError, InputError, NotFound
from .states import LIVE_RECORDING_STATES

log = logging.getLogger(__name__)

#: States a recording may be purged or erased from.
LIVE_STATES = LIVE_RECORDING_STATES
REASON_EXPIRED = "retention-expired"
REASON_ERASURE = "art17-erasure"

#: Crash points for tests (the test kit's ``CF_TEST_CRASH_AT=<name>``): the process exits at once.
CRASH_POINTS = ("purge-after-mark", "purge-after-store-delete", "purge-after-shred")

_CLASS_KINDS = ("mifid", "consent", "advisor-only")


# ------------------------------------------------------------------------------------ settings


def retention_settings(app: Any) -> Mapping[str, Any]:
    """The validated ``[retention]`` section (defaults filled in)."""
    cfg = app.config
    section = dict(cfg.section("retention"))
    mifid_years = cfg.get("retention.mifid_years", int, 5)
    max_years = cfg.get("retention.mifid_max_years", int, 7)
    days = cfg.get("retention.advisor_only_days", int, 30)
    interval = cfg.get("retention.purge_interval_seconds", int, 86400)
    if mifid_years < 5:
        raise ConfigError(f"{cfg.path}: retention.mifid_years is {mifid_years}; MiFID II Art. 16(7) requires at least 5")
    if max_years < mifid_years:
        raise ConfigError(f"{cfg.path}: retention.mifid_max_years ({max_years}) is below mifid_years ({mifid_years})")
    if days < 0:
        raise ConfigError(f"{cfg.path}: retention.advisor_only_days must be 0 or more")
    if interval <= 0:
        raise ConfigError(f"{cfg.path}: retention.purge_interval_seconds must be positive")
    classes = section.get("classes", {})
    if not isinstance(classes, Mapping):
        raise ConfigError(f"{cfg.path}: [retention.classes] must be a table of classes")
    for name, opts in classes.items():
        where = f"{cfg.path}: retention.classes.{name}"
        if not isinstance(opts, Mapping):
            raise ConfigError(f"{where} must be a table")
        if len(name) > 32 or name in (MIFID_CLASS, ADVISOR_ONLY_CLASS):
            raise ConfigError(f"{where}: class names are at most 32 characters and not '{MIFID_CLASS}' or '{ADVISOR_ONLY_CLASS}'")
        kind = opts.get("kind", "mifid")
        if kind not in _CLASS_KINDS:
            raise ConfigError(f"{where}.kind must be one of: {', '.join(_CLASS_KINDS)}")
        for key in ("years", "days"):
            if key in opts and (not isinstance(opts[key], int) or isinstance(opts[key], bool) or opts[key] < 0):
                raise ConfigError(f"{where}.{key} must be a whole number of {key}")
        if kind == "mifid":
            if "days" in opts:
                raise ConfigError(f"{where}: a MiFID class is kept in years (years = {mifid_years}..{max_years})")
            years = opts.get("years", mifid_years)
            if not mifid_years <= years <= max_years:
                raise ConfigError(f"{where}.years must be between {mifid_years} and {max_years} (MiFID II Art. 16(7))")
        for key in ("advisors", "sites", "sources"):
            value = opts.get(key, [])
            if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                raise ConfigError(f"{where}.{key} must be a list of strings")
    section.update(mifid_years=mifid_years, mifid_max_years=max_years, advisor_only_days=days,
                   purge_interval_seconds=interval, classes=dict(classes))
    return section


def _fits(kind: str | None, two_sided: bool) -> bool:
    return kind in ("mifid", "consent") if two_sided else kind == "advisor-only"


def choose_class(settings: Mapping[str, Any], rec: Recording) -> str:
    """The retention class of a recording: its own when known and fitting, else the first
    configured class whose selectors (``advisors``, ``sites``, ``sources``) all match, else
    ``mifid`` (two-sided) or ``advisor-only``."""
    two_sided = bool(rec.two_sided)
    current = rec.retention_class
    if current and _fits(class_kind(settings, current), two_sided):
        return current
    for name, opts in settings.get("classes", {}).items():
        if not _fits(str(opts.get("kind", "mifid")), two_sided):
            continue
        selectors = {"advisors": rec.advisor_id, "sites": rec.site, "sources": rec.source}
        given = [(key, value) for key, value in selectors.items() if opts.get(key)]
        if given and all(value in opts[key] for key, value in given):
            return str(name)
    return MIFID_CLASS if two_sided else ADVISOR_ONLY_CLASS


# ------------------------------------------------------------------------------------ rules


def info_of(rec: Recording, retention_class: str | None = None) -> RecordingInfo:
    """The plugin view of a recording (pseudonyms only)."""
    return RecordingInfo(
        id=rec.id or "", site=rec.site, source=rec.source, advisor_id=rec.advisor_id,
        direction=Direction(rec.direction), started_at=rec.started_at, ended_at=rec.ended_at,
        two_sided=bool(rec.two_sided), retention_class=retention_class or rec.retention_class or "",
        legal_hold=bool(rec.legal_hold), subject_pseudonyms=tuple(s.pseudonym for s in rec.subjects),
        state=rec.state or "archived")


def rules_for(app: Any, info: RecordingInfo, settings: Mapping[str, Any] | None = None) -> list[RetentionRule]:
    """Every duty the retention plugins see for ``info``."""
    settings = retention_settings(app) if settings is None else settings
    rules: list[RetentionRule] = []
    rules.extend(app.pm.retention_rules(info, settings))
    return rules


@attrs.frozen(kw_only=True)
class RetentionDecision:
    """Why a recording is kept until when."""

    until: datetime | None
    rule: str | None
    retention_class: str
    rules: tuple[RetentionRule, ...]
    #: The latest statutory duty: retention never goes below it; no Art. 17 erasure before it.
    floor: RetentionRule | None
    override: RetentionOverride | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "until": self.until, "rule": self.rule, "class": self.retention_class,
            "rules": [{"name": r.name, "keep_until": r.keep_until, "legal_basis": r.legal_basis,
                       "purpose": r.purpose, "statutory": r.statutory} for r in self.rules],
            "floor": self.floor.keep_until if self.floor else None,
            "override": ({"kind": self.override.kind, "until": self.override.until, "set_at": self.override.set_at,
                          "approval_id": self.override.approval_id} if self.override else None),
        }


def decide_retention(app: Any, rec: Recording, session: Session | None = None,
                     settings: Mapping[str, Any] | None = None) -> RetentionDecision:
    settings = retention_settings(app) if settings is None else settings
    cls = choose_class(settings, rec)
    rules = tuple(sorted(rules_for(app, info_of(rec, cls), settings), key=lambda r: (r.keep_until, r.name)))
    base = rules[-1] if rules else None
    statutory = [r for r in rules if r.statutory]
    floor = statutory[-1] if statutory else None
    until, rule = (base.keep_until, base.name) if base else (None, None)
    session = session or (object_session(rec) if rec.id else None)
    override = session.get(RetentionOverride, rec.id) if session is not None and rec.id else None
    if override is not None:
        if override.kind == "extend" and (until is None or override.until > until):
            until, rule = override.until, "extended"
        elif override.kind == "shorten":
            if floor is not None and floor.keep_until >= override.until:
                target, name = floor.keep_until, floor.name
            else:
                target, name = override.until, "shortened"
            if until is None or target < until:
                until, rule = target, name
    return RetentionDecision(until=until, rule=rule, retention_class=cls, rules=rules, floor=floor,
                             override=override)


def compute_retention(app: Any, rec: Recording | RecordingInfo) -> tuple[datetime | None, str | None]:
    """``(keep_until, rule name)`` for a recording (an ORM row, attached or not, or a RecordingInfo).

    ``(None, None)`` when no rule applies: such a recording is never purged automatically.
    """
    if isinstance(rec, RecordingInfo):
        rules = rules_for(app, rec)
        if not rules:
            return None, None
        best = max(rules, key=lambda r: (r.keep_until, r.name))
        return best.keep_until, best.name
    d = decide_retention(app, rec)
    return d.until, d.rule


def apply_retention(app: Any, session: Session, rec: Recording) -> tuple[datetime | None, str | None]:
    """Set ``retention_class``, ``retention_until`` and ``retention_rule`` on ``rec``.

    Ingest calls it inside its catalog transaction before computing ``row_digest``.
    """
    d = decide_retention(app, rec, session)
    rec.retention_class = d.retention_class
    rec.retention_until = d.until
    rec.retention_rule = d.rule
    return d.until, d.rule


# ------------------------------------------------------------------------------------ helpers


def recording_target(rec: Recording) -> AccessTarget:
    return AccessTarget(kind="recording", id=rec.id, owner_advisor_id=rec.advisor_id,
                        attributes={"two_sided": bool(rec.two_sided), "state": rec.state,
                                    "legal_hold": bool(rec.legal_hold)})


def _authorize(app: Any, ctx: RequestContext | None, action: str, target: AccessTarget) -> None:
    """Ask the access policy. Never call it inside an open catalog transaction: a denial is
    audited in a transaction of its own (SQLite would wait for our own write lock)."""
    from .access.guard import authorize

    authorize(app, ctx or system_context("retention"), action, target)


def _authorize_recording(app: Any, ctx: RequestContext | None, action: str, rec_id: str) -> None:
    with app.catalog.session() as s:
        target = recording_target(_load(s, rec_id))
    _authorize(app, ctx, action, target)


def _load(session: Session, rec_id: str, *, lock: bool = False) -> Recording:
    q = select(Recording).where(Recording.id == rec_id)
    if lock:
        q = q.with_for_update()
    rec = session.execute(q).scalar_one_or_none()
    if rec is None:
        raise NotFound(f"no recording {rec_id}", hint="check the id with 'cf recordings list'")
    return rec


def _digest(rec: Recording) -> str:
    from .archive import row_digest

    return row_digest(rec)


def _user(ctx: RequestContext | None) -> str:
    return ctx.actor.username if ctx else "system"


def _media_keys(rec: Recording) -> list[str]:
    return sorted({m.key for m in rec.media})


def _lock_media(app: Any, ctx: RequestContext | None, rec_id: str, keys: Iterable[str], *,
                until: datetime | None = None, legal_hold: bool | None = None) -> list[str]:
    """Extend object locks / set or release legal holds in the stores that support them. The
    catalog change stands; problems are returned and audited (``store.lock`` outcome ``error``),
    and ``cf store check`` / ``cf store repair`` find and fix the lock later."""
    problems = []
    for key in sorted(set(keys)):
        try:
            app.stores.lock(key, until, legal_hold)
        except Exception as exc:  # noqa: BLE001 - reported to the caller and audited
            log.warning("store lock of %s failed: %s", key, type(exc).__name__)
            problems.append(f"{key}: {exc}")
    if problems:
        app.audit.record(ctx, "store.lock", "recording", rec_id, "error",
                         {"until": until, "legal_hold": legal_hold, "problems": problems[:20]})
    return problems


def _crash_point(app: Any, name: str) -> None:
    """A crash point (``CRASH_POINTS``): only a test-only plugin acts on it (exit code 99)."""
    app.crash_point(name, 99)


def parse_date(value: str) -> datetime:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO timestamp with zone."""
    from datetime import UTC

    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"not a date: {value!r}", hint="use YYYY-MM-DD or an ISO timestamp") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


# ------------------------------------------------------------------------------------ extend / shorten


def precheck(app: Any, ctx: RequestContext | None, action: str, rec_id: str,
              check: Callable[[Session, Recording], RetentionDecision]) -> AccessTarget:
    """Run a state check before the access check. A refusal because of a legal duty, a hold or the
    recording's state is an attempt to delete or alter a protected recording: it is audited
    (outcome ``refused``, after the read transaction ended) so that the FIS sees it."""
    try:
        with app.catalog.session() as s:
            rec = _load(s, rec_id)
            check(s, rec)
            return recording_target(rec)
    except ConflictError as exc:
        app.audit.record(ctx, action, "recording", rec_id, "refused", {"reason": exc.message})
        raise


def check_change(app: Any, session: Session, rec: Recording, kind: str, until: datetime) -> RetentionDecision:
    """Refuse a change of retention that the rules do not allow (clear errors)."""
    if kind not in ("extend", "shorten"):
        raise InputError(f"unknown retention change {kind!r}")
    if rec.state not in LIVE_STATES:
        raise ConflictError(f"recording {rec.id} is {rec.state}; its retention can no longer change")
    settings = retention_settings(app)
    d = decide_retention(app, rec, session, settings)
    current = rec.retention_until or d.until
    if kind == "extend":
        cap = add_years(rec.ended_at, settings["mifid_max_years"])
        if current is not None and until <= current:
            raise InputError(f"recording {rec.id} is kept until {current:%Y-%m-%d} already; "
                             f"an extension must be later", hint="use 'cf retention shorten' to shorten")
        if until > cap:
            raise InputError(f"retention can be extended to at most {settings['mifid_max_years']} years after the call "
                             f"({cap:%Y-%m-%d})", hint="a longer keep needs a legal hold: cf hold set ID --reason TEXT")
    else:
        if current is not None and until >= current:
            raise InputError(f"recording {rec.id} is kept until {current:%Y-%m-%d}; a shortening must be earlier",
                             hint="use 'cf retention extend' to extend")
        if d.floor is not None and until < d.floor.keep_until:
            raise ConflictError(
                f"recording {rec.id} must be kept until {d.floor.keep_until:%Y-%m-%d} ({d.floor.name}, "
                f"{d.floor.legal_basis}); retention cannot be shortened below a legal duty",
                hint=f"choose a date on or after {d.floor.keep_until:%Y-%m-%d}")
    return d


def change_retention(app: Any, ctx: RequestContext | None, rec_id: str, kind: str, until: datetime,
                     reason: str) -> dict[str, Any]:
    """Extend or shorten the retention of one recording (four-eyes ``retention.extend`` /
    ``retention.shorten``; call it through the approval executor)."""
    if not reason or not reason.strip():
        raise InputError("a reason is required")
    action = f"retention.{kind}"
    target = precheck(app, ctx, action, rec_id, lambda s, rec: check_change(app, s, rec, kind, until))
    _authorize(app, ctx, action, target)
    with app.catalog.session() as s:
        rec = _load(s, rec_id, lock=True)
        check_change(app, s, rec, kind, until)
        old = rec.retention_until
        ov = s.get(RetentionOverride, rec.id)
        if ov is None:
            ov = RetentionOverride(recording_id=rec.id)
            s.add(ov)
        ov.kind, ov.until, ov.reason = kind, until, reason
        ov.set_at, ov.set_by, ov.approval_id = app.clock.now(), _user(ctx), ctx.approval_id if ctx else None
        s.flush()
        apply_retention(app, s, rec)
        s.flush()
        detail = {"old_until": old, "new_until": rec.retention_until, "rule": rec.retention_rule,
                  "reason": reason, "row_digest": _digest(rec)}
        app.audit.append(s, ctx, action, "recording", rec.id, "ok", detail)
        keys = _media_keys(rec)
        new_until = rec.retention_until
    problems = _lock_media(app, ctx, rec_id, keys, until=new_until) if kind == "extend" else []
    return {"recording_id": rec_id, "old_until": old, "new_until": new_until, "rule": detail["rule"],
            "lock_problems": problems}


def request_change(app: Any, ctx: RequestContext, rec_id: str, kind: str, reason: str, *,
                   until: str | None = None, years: int | None = None) -> str:
    """File the four-eyes request to extend or shorten a recording's retention to ``until``
    (a date) or to ``years`` after the call. What the rules forbid is refused (and audited) before
    anyone is asked to approve. Returns the approval id."""
    from .access import approvals

    if not reason or not reason.strip():
        raise InputError("a reason is required")
    if (until is None) == (years is None):
        raise InputError("give exactly one of --until DATE or --years N")
    chosen: list[datetime] = []

    def check(s: Session, rec: Recording) -> RetentionDecision:
        chosen.append(parse_date(until) if until else add_years(rec.ended_at, int(years or 0)))
        return check_change(app, s, rec, kind, chosen[-1])

    precheck(app, ctx, f"retention.{kind}", rec_id, check)
    return approvals.request(app, ctx, f"retention.{kind}", rec_id, reason,
                             {"until": chosen[-1].isoformat(), "reason": reason})


def request_erasure(app: Any, ctx: RequestContext, rec_id: str, reason: str) -> str:
    """File the four-eyes request for Art. 17 erasure; refused (and audited) at once for a
    recording under a legal duty or a legal hold. Returns the approval id."""
    from .access import approvals

    if not reason or not reason.strip():
        raise InputError("a reason is required")
    precheck(app, ctx, "recording.erase", rec_id, lambda s, rec: check_erasable(app, s, rec))
    return approvals.request(app, ctx, "recording.erase", rec_id, reason, {"reason": reason})


def _exec_extend(app: Any, ctx: RequestContext, target_id: str, params: dict[str, Any]) -> dict[str, Any]:
    return change_retention(app, ctx, target_id, "extend", parse_date(str(params["until"])),
                            str(params.get("reason") or "approved extension"))


def _exec_shorten(app: Any, ctx: RequestContext, target_id: str, params: dict[str, Any]) -> dict[str, Any]:
    return change_retention(app, ctx, target_id, "shorten", parse_date(str(params["until"])),
                            str(params.get("reason") or "approved shortening"))


# ------------------------------------------------------------------------------------ legal hold


def set_hold(app: Any, ctx: RequestContext | None, rec_id: str, reason: str) -> dict[str, Any]:
    """Put a recording on legal hold: it is never deleted until the hold is released."""
    if not reason or not reason.strip():
        raise InputError("a reason is required for a legal hold")
    _authorize_recording(app, ctx, "hold.set", rec_id)
    with app.catalog.session() as s:
        rec = _load(s, rec_id, lock=True)
        if rec.state not in LIVE_STATES:
            raise ConflictError(f"recording {rec_id} is {rec.state} and cannot be put on hold")
        if rec.legal_hold:
            raise ConflictError(f"recording {rec_id} is on legal hold already")
        rec.legal_hold = True
        hold = LegalHold(recording_id=rec.id, reason=reason, set_at=app.clock.now(), set_by=_user(ctx))
        s.add(hold)
        s.flush()
        app.audit.append(s, ctx, "hold.set", "recording", rec.id, "ok",
                         {"reason": reason, "hold_id": hold.id, "row_digest": _digest(rec)})
        keys = _media_keys(rec)
        hold_id = hold.id
    problems = _lock_media(app, ctx, rec_id, keys, legal_hold=True)
    return {"recording_id": rec_id, "hold_id": hold_id, "legal_hold": True, "lock_problems": problems}


def release_hold(app: Any, ctx: RequestContext | None, rec_id: str, reason: str = "") -> dict[str, Any]:
    """Release a legal hold (four-eyes ``hold.release``)."""
    _authorize_recording(app, ctx, "hold.release", rec_id)
    with app.catalog.session() as s:
        rec = _load(s, rec_id, lock=True)
        if not rec.legal_hold:
            raise ConflictError(f"recording {rec_id} is not on legal hold")
        now = app.clock.now()
        for hold in s.scalars(select(LegalHold).where(LegalHold.recording_id == rec.id,
                                                      LegalHold.released_at.is_(None))):
            hold.released_at, hold.released_by = now, _user(ctx)
            hold.release_approval_id = ctx.approval_id if ctx else None
        rec.legal_hold = False
        s.flush()
        app.audit.append(s, ctx, "hold.release", "recording", rec.id, "ok",
                         {"reason": reason, "row_digest": _digest(rec)})
        keys = _media_keys(rec)
    problems = _lock_media(app, ctx, rec_id, keys, legal_hold=False)
    return {"recording_id": rec_id, "legal_hold": False, "lock_problems": problems}


def list_holds(app: Any, ctx: RequestContext | None) -> list[dict[str, Any]]:
    _authorize(app, ctx, "hold.set", AccessTarget(kind="recording"))
    with app.catalog.session() as s:
        rows = s.scalars(select(LegalHold).where(LegalHold.released_at.is_(None)).order_by(LegalHold.set_at)).all()
        return [{"recording_id": h.recording_id, "hold_id": h.id, "reason": h.reason, "set_at": h.set_at,
                 "set_by": h.set_by} for h in rows]


def _exec_release(app: Any, ctx: RequestContext, target_id: str, params: dict[str, Any]) -> dict[str, Any]:
    return release_hold(app, ctx, target_id, str(params.get("reason") or ""))


# ------------------------------------------------------------------------------------ purge


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


def _mark(app: Any, ctx: RequestContext | None, s: Session, rec: Recording, reason: str, rule: str,
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
                     {"reason": reason, "rule": rule, "key_destroyed": shredded, "row_digest": _digest(rec)})
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
        _crash_point(app, "purge-after-store-delete")


def _shred(app: Any, ctx: RequestContext | None, rec_id: str) -> Tombstone | None:
    """Destroy the key, write the tombstone, drop the catalog rows: one transaction."""
    from . import outbox
    from .transcripts import drop as drop_transcript

    with app.catalog.session() as s:
        rec = _load(s, rec_id, lock=True)
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
            "row_digest": _digest(rec)})
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


def _finish(app: Any, ctx: RequestContext | None, rec_id: str, report: PurgeReport) -> bool:
    """Steps 2 and 3 for a recording in state ``purging``. False when it stays pending."""
    with app.catalog.session() as s:
        rec = _load(s, rec_id)
        keys = _media_keys(rec)
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
    _crash_point(app, "purge-after-shred")
    if tomb is not None:
        report.purged.append({"id": rec_id, "rule": tomb.rule, "reason": tomb.reason,
                              "deleted_at": tomb.deleted_at})
    return True


def _veto(app: Any, info: RecordingInfo) -> str | None:
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
                                 {"until": d.until, "rule": d.rule, "row_digest": _digest(rec)})
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
        rec = _load(s, rec_id)
        if not _unchanged(rec, now):
            return False  # changed since the candidate query
        d = decide_retention(app, rec, s, settings)
        info = info_of(rec)
        keys = _media_keys(rec)
        rule = rec.retention_rule or d.rule or "-"
        until = rec.retention_until
    if d.until is None or d.until > now:
        # the rules changed since archive (a class lengthened, a new plugin): keep, and say so
        report.kept.append({"id": rec_id, "until": d.until, "rule": d.rule})
        if not dry_run:
            with app.catalog.session() as s:
                rec = _load(s, rec_id, lock=True)
                if rec.state in LIVE_STATES:
                    old = rec.retention_until
                    rec.retention_class, rec.retention_until, rec.retention_rule = d.retention_class, d.until, d.rule
                    s.flush()
                    app.audit.append(s, ctx, "retention.apply", "recording", rec.id, "ok",
                                     {"old_until": old, "until": d.until, "rule": d.rule, "row_digest": _digest(rec)})
        return False
    veto = _veto(app, info)
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
        rec = _load(s, rec_id, lock=True)
        if not _unchanged(rec, now):
            return False  # held or changed meanwhile
        _mark(app, ctx, s, rec, REASON_EXPIRED, rule, None)
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
    _authorize(app, ctx, "retention.run", AccessTarget(kind="retention", attributes={"dry_run": dry_run}))

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
            _finish(app, ctx, rec_id, report)
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
                _crash_point(app, "purge-after-mark")
                _finish(app, ctx, rec_id, report)

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


# ------------------------------------------------------------------------------------ Art. 17 erasure


def check_erasable(app: Any, session: Session, rec: Recording) -> RetentionDecision:
    """Refuse (clear error) what a law requires us to keep or what is on legal hold."""
    if rec.state == "purging":
        raise ConflictError(f"recording {rec.id} is being deleted already", hint="cf retention run finishes it")
    if rec.state not in LIVE_STATES:
        raise ConflictError(f"recording {rec.id} is {rec.state} already")
    if rec.legal_hold:
        raise ConflictError(f"recording {rec.id} is on legal hold and cannot be erased",
                            hint="release the hold first: cf hold release ID --reason TEXT, four-eyes")
    d = decide_retention(app, rec, session)
    now = app.clock.now()
    if d.floor is not None and d.floor.keep_until > now:
        raise ConflictError(
            f"recording {rec.id} must be kept until {d.floor.keep_until:%Y-%m-%d} under {d.floor.legal_basis} "
            f"({d.floor.name}); GDPR Art. 17(3)(b) excludes erasure",
            hint="only recordings no law requires to keep can be erased (e.g. advisor-only recordings)")
    if d.override is not None and d.override.kind == "extend" and d.override.until > now and d.floor is not None:
        raise ConflictError(
            f"recording {rec.id} is kept until {d.override.until:%Y-%m-%d} on an approved extension of its "
            f"{d.floor.name} duty; GDPR Art. 17(3)(b) excludes erasure",
            hint="shorten the retention first (cf retention shorten, four-eyes)")
    return d


def erase_recording(app: Any, ctx: RequestContext | None, rec_id: str, reason: str = "") -> dict[str, Any]:
    """Art. 17 erasure of one recording (four-eyes ``recording.erase``): a tombstone like the purge,
    reason ``art17-erasure``. Refused under a statutory duty or a legal hold."""
    target = precheck(app, ctx, "recording.erase", rec_id, lambda s, rec: check_erasable(app, s, rec))
    _authorize(app, ctx, "recording.erase", target)
    with app.catalog.session() as s:
        rec = _load(s, rec_id, lock=True)
        check_erasable(app, s, rec)
        veto = _veto(app, info_of(rec))
        if veto:
            raise ConflictError(f"recording {rec_id} cannot be erased: {veto}")
        _mark(app, ctx, s, rec, REASON_ERASURE, rec.retention_rule or "-", ctx.approval_id if ctx else None)
    report = PurgeReport(now=app.clock.now(), dry_run=False)
    _crash_point(app, "purge-after-mark")
    done = _finish(app, ctx, rec_id, report)
    result: dict[str, Any] = {"recording_id": rec_id, "state": "purged" if done else "purging",
                              "reason": REASON_ERASURE, "request_reason": reason}
    if not done:
        result["pending"] = report.pending[0]["error"] if report.pending else "pending"
    return result


def _exec_erase(app: Any, ctx: RequestContext, target_id: str, params: dict[str, Any]) -> dict[str, Any]:
    return erase_recording(app, ctx, target_id, str(params.get("reason") or ""))


# ------------------------------------------------------------------------------------ status


def retention_status(app: Any, ctx: RequestContext | None, rec_id: str) -> dict[str, Any]:
    """Why a recording is kept until when (for ``cf retention show``)."""
    _authorize_recording(app, ctx, "recording.show", rec_id)
    with app.catalog.session() as s:
        rec = _load(s, rec_id)
        out: dict[str, Any] = {"recording_id": rec.id, "state": rec.state, "legal_hold": bool(rec.legal_hold),
                               "retention_until": rec.retention_until, "retention_rule": rec.retention_rule,
                               "retention_class": rec.retention_class}
        if rec.state in LIVE_STATES:
            out["decision"] = decide_retention(app, rec, s).as_dict()
        task = s.get(PurgeTask, rec.id)
        if task is not None:
            out["purge"] = {"state": task.state, "reason": task.reason, "rule": task.rule, "started_at": task.started_at,
                            "done_at": task.done_at, "attempts": task.attempts, "last_error": task.last_error}
        holds = s.scalars(select(LegalHold).where(LegalHold.recording_id == rec.id).order_by(LegalHold.set_at)).all()
        out["holds"] = [{"hold_id": h.id, "reason": h.reason, "set_at": h.set_at, "set_by": h.set_by,
                         "released_at": h.released_at} for h in holds]
    if ctx is not None:
        app.audit.record(ctx, "recording.show", "recording", rec_id, "ok", {"view": "retention"})
    return out


# ------------------------------------------------------------------------------------ four-eyes registry

APPROVAL_ACTIONS = {
    "retention.extend": _exec_extend,
    "retention.shorten": _exec_shorten,
    "hold.release": _exec_release,
    "recording.erase": _exec_erase,
}




#: How often the ``cf serve`` job looks whether a purge is due (``[retention] purge_interval_seconds``).
JOB_POLL_SECONDS = 900


def purge_job(app: Any) -> PurgeReport | None:
    """The scheduled purge of ``cf serve``: runs as the system when ``purge_interval_seconds``
    passed since the last disposal entry (of any run, also ``cf retention run``)."""
    from .db.models import AuditEntry

    interval = retention_settings(app)["purge_interval_seconds"]
    with app.catalog.session() as s:
        last = s.scalars(select(AuditEntry.at).where(AuditEntry.action == "retention.disposal")
                         .order_by(AuditEntry.seq.desc()).limit(1)).first()
    if last is not None and (app.clock.now() - last).total_seconds() < interval:
        return None
    return run_purge(app, None)


__all__ = [
    "CRASH_POINTS", "REASON_ERASURE", "REASON_EXPIRED", "PurgeReport", "RetentionDecision",
    "apply_retention", "change_retention", "check_erasable", "count_due", "precheck", "request_change", "request_erasure", "compute_retention", "decide_retention",
    "erase_recording", "release_hold", "retention_settings", "run_purge", "set_hold",
]
