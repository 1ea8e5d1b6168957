"""Why a recording is kept until when (``cf retention show``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from hookspecs.types import RequestContext

from ..db.models_retention import LegalHold, PurgeTask
from .common import LIVE_STATES, as_context, authorize_recording, load_recording
from .policy import decide_retention

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger(__name__)




def retention_status(app: App, ctx: RequestContext | None, rec_id: str) -> dict[str, Any]:
    """Why a recording is kept until when (for ``cf retention show``)."""
    ctx = as_context(ctx, "retention.show")
    authorize_recording(app, ctx, "recording.show", rec_id)
    with app.catalog.session() as s:
        rec = load_recording(s, rec_id)
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
    app.audit.record(ctx, "recording.show", "recording", rec_id, "ok", {"view": "retention"})
    return out
