"""Legal holds: a held recording is never deleted until the hold is released (four-eyes)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from hookspecs.types import AccessTarget, RequestContext

from ..db.models_retention import LegalHold
from ..errors import ConflictError, InputError
from .common import (
    LIVE_STATES,
    as_context,
    authorize_recording,
    authorize_retention,
    digest,
    load_recording,
    lock_media,
    media_keys,
    username,
)

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger(__name__)




def set_hold(app: App, ctx: RequestContext | None, rec_id: str, reason: str) -> dict[str, Any]:
    """Put a recording on legal hold: it is never deleted until the hold is released."""
    ctx = as_context(ctx, "hold.set")
    if not reason or not reason.strip():
        raise InputError("a reason is required for a legal hold")
    authorize_recording(app, ctx, "hold.set", rec_id)
    with app.catalog.session() as s:
        rec = load_recording(s, rec_id, lock=True)
        if rec.state not in LIVE_STATES:
            raise ConflictError(f"recording {rec_id} is {rec.state} and cannot be put on hold")
        if rec.legal_hold:
            raise ConflictError(f"recording {rec_id} is on legal hold already")
        rec.legal_hold = True
        hold = LegalHold(recording_id=rec.id, reason=reason, set_at=app.clock.now(), set_by=username(ctx))
        s.add(hold)
        s.flush()
        app.audit.append(s, ctx, "hold.set", "recording", rec.id, "ok",
                         {"reason": reason, "hold_id": hold.id, "row_digest": digest(rec)})
        keys = media_keys(rec)
        hold_id = hold.id
    problems = lock_media(app, ctx, rec_id, keys, legal_hold=True)
    return {"recording_id": rec_id, "hold_id": hold_id, "legal_hold": True, "lock_problems": problems}


def release_hold(app: App, ctx: RequestContext | None, rec_id: str, reason: str = "") -> dict[str, Any]:
    """Release a legal hold (four-eyes ``hold.release``)."""
    ctx = as_context(ctx, "hold.release")
    authorize_recording(app, ctx, "hold.release", rec_id)
    with app.catalog.session() as s:
        rec = load_recording(s, rec_id, lock=True)
        if not rec.legal_hold:
            raise ConflictError(f"recording {rec_id} is not on legal hold")
        now = app.clock.now()
        for hold in s.scalars(select(LegalHold).where(LegalHold.recording_id == rec.id,
                                                      LegalHold.released_at.is_(None))):
            hold.released_at, hold.released_by = now, username(ctx)
            hold.release_approval_id = ctx.approval_id
        rec.legal_hold = False
        s.flush()
        app.audit.append(s, ctx, "hold.release", "recording", rec.id, "ok",
                         {"reason": reason, "row_digest": digest(rec)})
        keys = media_keys(rec)
    problems = lock_media(app, ctx, rec_id, keys, legal_hold=False)
    return {"recording_id": rec_id, "legal_hold": False, "lock_problems": problems}


def list_holds(app: App, ctx: RequestContext | None) -> list[dict[str, Any]]:
    ctx = as_context(ctx, "hold.list")
    authorize_retention(app, ctx, "hold.set", AccessTarget(kind="recording"))
    with app.catalog.session() as s:
        rows = s.scalars(select(LegalHold).where(LegalHold.released_at.is_(None)).order_by(LegalHold.set_at)).all()
        return [{"recording_id": h.recording_id, "hold_id": h.id, "reason": h.reason, "set_at": h.set_at,
                 "set_by": h.set_by} for h in rows]


def exec_release(app: App, ctx: RequestContext, target_id: str, params: dict[str, Any]) -> dict[str, Any]:
    return release_hold(app, ctx, target_id, str(params.get("reason") or ""))
