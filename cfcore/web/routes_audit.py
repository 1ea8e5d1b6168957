"""Audit queries (audit.read) and verification of the chain."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from hookspecs.types import RequestContext

from ..access import auditlog
from .deps import get_app, request_context
from .routes_recordings import _time

router = APIRouter(prefix="/api/audit", tags=["audit"])


@router.get("", summary="Audit entries, oldest first (audit.read)")
def list_entries(
    request: Request,
    since_seq: int = Query(default=0, ge=0),
    action: str | None = Query(default=None, max_length=64),
    target_id: str | None = Query(default=None, max_length=128),
    user: str | None = Query(default=None, max_length=64),
    since: str | None = Query(default=None, description="at or after (ISO-8601)"),
    limit: int = Query(default=1000, ge=1, le=auditlog.MAX_LIMIT),
    ctx: RequestContext = Depends(request_context("api.audit.list")),
) -> list[dict[str, Any]]:
    return auditlog.query(get_app(request), ctx, since_seq=since_seq, action=action, target_id=target_id,
                          user=user, since=_time("since", since), limit=limit)


@router.get("/verify", summary="Verify the hash chain and signed checkpoints (audit.read)")
def verify(request: Request, ctx: RequestContext = Depends(request_context("api.audit.verify"))) -> dict[str, Any]:
    return auditlog.verify(get_app(request), ctx)
