"""Art. 17 erasure of one recording: the purge machine with reason ``art17-erasure``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from hookspecs.types import RequestContext

from ..db.models import Recording
from ..errors import ConflictError, InputError
from .changes import precheck
from .common import LIVE_STATES, REASON_ERASURE, as_context, authorize_retention, crash_point, load_recording
from .policy import RetentionDecision, decide_retention, info_of
from .purge import PurgeReport, finish, mark, purge_veto

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger(__name__)




def check_erasable(app: App, session: Session, rec: Recording) -> RetentionDecision:
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


def erase_recording(app: App, ctx: RequestContext | None, rec_id: str, reason: str = "") -> dict[str, Any]:
    """Art. 17 erasure of one recording (four-eyes ``recording.erase``): a tombstone like the purge,
    reason ``art17-erasure``. Refused under a statutory duty or a legal hold."""
    ctx = as_context(ctx, "recording.erase")
    target = precheck(app, ctx, "recording.erase", rec_id, lambda s, rec: check_erasable(app, s, rec))
    authorize_retention(app, ctx, "recording.erase", target)
    with app.catalog.session() as s:
        rec = load_recording(s, rec_id, lock=True)
        check_erasable(app, s, rec)
        veto = purge_veto(app, info_of(rec))
        if veto:
            raise ConflictError(f"recording {rec_id} cannot be erased: {veto}")
        mark(app, ctx, s, rec, REASON_ERASURE, rec.retention_rule or "-", ctx.approval_id)
    report = PurgeReport(now=app.clock.now(), dry_run=False)
    crash_point(app, "purge-after-mark")
    done = finish(app, ctx, rec_id, report)
    result: dict[str, Any] = {"recording_id": rec_id, "state": "purged" if done else "purging",
                              "reason": REASON_ERASURE, "request_reason": reason}
    if not done:
        result["pending"] = report.pending[0]["error"] if report.pending else "pending"
    return result


def exec_erase(app: App, ctx: RequestContext, target_id: str, params: dict[str, Any]) -> dict[str, Any]:
    return erase_recording(app, ctx, target_id, str(params.get("reason") or ""))


def request_erasure(app: App, ctx: RequestContext, rec_id: str, reason: str) -> str:
    """File the four-eyes request for Art. 17 erasure; refused (and audited) at once for a
    recording under a legal duty or a legal hold. Returns the approval id."""
    from ..access import approvals

    if not reason or not reason.strip():
        raise InputError("a reason is required")
    precheck(app, ctx, "recording.erase", rec_id, lambda s, rec: check_erasable(app, s, rec))
    return approvals.request(app, ctx, "recording.erase", rec_id, reason, {"reason": reason})
