"""Extending and shortening the retention of one recording (four-eyes)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from hookspecs.types import AccessTarget, Decision, RequestContext

from ..db.models import Recording
from ..db.models_retention import RetentionOverride
from ..defaults.retention_rules import add_years
from ..errors import ConflictError, InputError
from .common import (
    LIVE_STATES,
    as_context,
    authorize_retention,
    digest,
    find_target,
    load_recording,
    lock_media,
    media_keys,
    parse_date,
    recording_target,
    unknown_target,
    username,
)
from .policy import RetentionDecision, apply_retention, decide_retention
from .settings import retention_settings

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger(__name__)




def precheck(app: App, ctx: RequestContext, action: str, rec_id: str,
              check: Callable[[Session, Recording], RetentionDecision]) -> AccessTarget:
    """Run a state check before the access check. A refusal because of a legal duty, a hold or the
    recording's state is an attempt to delete or alter a protected recording: it is audited
    (outcome ``refused``, after the read transaction ended) so that the FIS sees it."""
    from ..access.policy import decide
    from ..authority import is_system

    found = find_target(app, rec_id)
    if found is None or (ctx is not None and not is_system(ctx)
                         and decide(app, ctx, action, found).decision is Decision.DENY):
        # the access decision comes first for who may not act here (refused alike, audited, by
        # the caller's authorize / approvals.request), and for an unknown id (no id probing)
        return found or unknown_target(rec_id)
    try:
        with app.catalog.session() as s:
            rec = load_recording(s, rec_id)
            check(s, rec)
            return recording_target(rec)
    except ConflictError as exc:
        app.audit.record(ctx, action, "recording", rec_id, "refused", {"reason": exc.message})
        raise


def check_change(app: App, session: Session, rec: Recording, kind: str, until: datetime) -> RetentionDecision:
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


def change_retention(app: App, ctx: RequestContext | None, rec_id: str, kind: str, until: datetime,
                     reason: str) -> dict[str, Any]:
    """Extend or shorten the retention of one recording (four-eyes ``retention.extend`` /
    ``retention.shorten``; call it through the approval executor)."""
    ctx = as_context(ctx, f"retention.{kind}")
    if not reason or not reason.strip():
        raise InputError("a reason is required")
    action = f"retention.{kind}"
    target = precheck(app, ctx, action, rec_id, lambda s, rec: check_change(app, s, rec, kind, until))
    authorize_retention(app, ctx, action, target)
    with app.catalog.session() as s:
        rec = load_recording(s, rec_id, lock=True)
        check_change(app, s, rec, kind, until)
        old = rec.retention_until
        ov = s.get(RetentionOverride, rec.id)
        if ov is None:
            ov = RetentionOverride(recording_id=rec.id)
            s.add(ov)
        ov.kind, ov.until, ov.reason = kind, until, reason
        ov.set_at, ov.set_by, ov.approval_id = app.clock.now(), username(ctx), ctx.approval_id
        s.flush()
        apply_retention(app, s, rec)
        s.flush()
        detail = {"old_until": old, "new_until": rec.retention_until, "rule": rec.retention_rule,
                  "reason": reason, "row_digest": digest(rec)}
        app.audit.append(s, ctx, action, "recording", rec.id, "ok", detail)
        keys = media_keys(rec)
        new_until = rec.retention_until
    problems = lock_media(app, ctx, rec_id, keys, until=new_until) if kind == "extend" else []
    return {"recording_id": rec_id, "old_until": old, "new_until": new_until, "rule": detail["rule"],
            "lock_problems": problems}


def request_change(app: App, ctx: RequestContext, rec_id: str, kind: str, reason: str, *,
                   until: str | None = None, years: int | None = None) -> str:
    """File the four-eyes request to extend or shorten a recording's retention to ``until``
    (a date) or to ``years`` after the call. What the rules forbid is refused (and audited) before
    anyone is asked to approve. Returns the approval id."""
    from ..access import approvals

    if not reason or not reason.strip():
        raise InputError("a reason is required")
    if (until is None) == (years is None):
        raise InputError("give exactly one of --until DATE or --years N")
    chosen: list[datetime] = []

    def check(s: Session, rec: Recording) -> RetentionDecision:
        chosen.append(parse_date(until) if until else add_years(rec.ended_at, int(years or 0)))
        return check_change(app, s, rec, kind, chosen[-1])

    precheck(app, ctx, f"retention.{kind}", rec_id, check)
    # no date when the check did not run (refused or unknown id): request() refuses before it
    # would be stored
    return approvals.request(app, ctx, f"retention.{kind}", rec_id, reason,
                             {"until": chosen[-1].isoformat() if chosen else (until or ""), "reason": reason})


def exec_extend(app: App, ctx: RequestContext, target_id: str, params: dict[str, Any]) -> dict[str, Any]:
    return change_retention(app, ctx, target_id, "extend", parse_date(str(params["until"])),
                            str(params.get("reason") or "approved extension"))


def exec_shorten(app: App, ctx: RequestContext, target_id: str, params: dict[str, Any]) -> dict[str, Any]:
    return change_retention(app, ctx, target_id, "shorten", parse_date(str(params["until"])),
                            str(params.get("reason") or "approved shortening"))
