"""Reading and exporting the audit trail, access-checked and itself audited.

``audit.read`` (query, verify) is allowed to the roles in the matrix; ``audit.export`` (the
whole trail or a range, as data) is four-eyes: its executor returns the entries to the requester.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from hookspecs.types import AccessTarget, AuditView, RequestContext

from ..errors import InputError
from .guard import authorize

if TYPE_CHECKING:
    from ..app import App

MAX_LIMIT = 10000


def entry_dict(e: AuditView) -> dict[str, Any]:
    return {"seq": e.seq, "at": e.at.isoformat(), "user": e.user, "host": e.host, "ip": e.ip,
            "function": e.function, "action": e.action, "target_kind": e.target_kind, "target_id": e.target_id,
            "outcome": e.outcome, "detail": dict(e.detail)}


def query(app: App, ctx: RequestContext, *, since_seq: int = 0, action: str | None = None,
          target_id: str | None = None, user: str | None = None, since: datetime | None = None,
          limit: int = 1000) -> list[dict[str, Any]]:
    """Audit entries (oldest first) matching the filters; ``audit.read``. Audited ``audit.read``."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"limit must be 1 to {MAX_LIMIT}")
    if since_seq < 0:
        raise InputError("since_seq must not be negative")
    filters = {"since_seq": since_seq, "action": action, "target": target_id, "user": user,
               "since": since.isoformat() if since else None, "limit": limit}
    authorize(app, ctx, "audit.read", AccessTarget(kind="audit"), detail=filters)
    rows = [entry_dict(e) for e in app.audit.entries(since_seq, limit=limit, action=action, target_id=target_id,
                                                     user=user, since=since)]
    app.audit.record(ctx, "audit.read", "audit", None, "ok", {**filters, "count": len(rows)})
    return rows


def verify(app: App, ctx: RequestContext) -> dict[str, Any]:
    authorize(app, ctx, "audit.read", AccessTarget(kind="audit"), detail={"function": "audit.verify"})
    result = app.audit.verify().as_dict()
    app.audit.record(ctx, "audit.verify", "audit", None, "ok" if result["ok"] else "failed", result)
    return result


def _int_param(params: dict[str, Any], key: str, default: int) -> int:
    try:
        return int(params.get(key, default) or default)
    except (TypeError, ValueError):
        raise InputError(f"parameter {key} must be a whole number") from None


def _exec_export(app: App, ctx: RequestContext, target_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """Approved audit export: entries ``since_seq < seq <= until_seq`` (params; default all)."""
    authorize(app, ctx, "audit.export", AccessTarget(kind="audit", id=target_id or None))
    since_seq = _int_param(params, "since_seq", 0)
    until_seq = _int_param(params, "until_seq", 0)
    rows = []
    cursor = since_seq
    while True:
        batch = list(app.audit.entries(cursor, limit=5000))
        if not batch:
            break
        for e in batch:
            if until_seq and e.seq > until_seq:
                break
            rows.append(entry_dict(e))
        cursor = batch[-1].seq
        if until_seq and cursor >= until_seq:
            break
    app.audit.record(ctx, "audit.export", "audit", target_id or None, "ok",
                     {"since_seq": since_seq, "until_seq": until_seq or None, "count": len(rows)})
    return {"count": len(rows), "entries": rows}


