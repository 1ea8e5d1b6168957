"""Calls in progress and the advisor's recording controls (record both sides, pause, resume).

``POST /api/calls/{call_id}/record-both`` is what the advisor's desktop (CRM, CTI client) calls
after informing the customer. Only the call's own advisor may do it (``call.record_both``, owner
only); a refusal is 403 and audited. The request waits until the capture runner confirmed the
switch at the PBX (503 when no runner answers, 409 when the call has ended).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from hookspecs.types import ConsentMethod, RequestContext

from .deps import get_app, request_context

if TYPE_CHECKING:
    from ..app import App

router = APIRouter(prefix="/api/calls", tags=["calls"])


class ControlIn(BaseModel):
    method: str = Field(default="web", description="how the advisor triggered it: web, api, cti or dtmf")
    timeout: float = Field(default=15.0, ge=0.5, le=60.0, description="seconds to wait for the PBX")
    acted_at: datetime | None = Field(default=None, description="when the advisor clicked (ISO-8601 with time "
                                      "zone); kept with the consent; at most 120 s before the request, default now")


def _control(app: App, ctx: RequestContext, call_id: str, action: str, body: ControlIn | None) -> dict[str, Any]:
    from ..capture import controller

    body = body or ControlIn()
    method = body.method if body.method in controller.API_METHODS else ConsentMethod.API.value
    return controller.trigger(app, ctx, call_id, action, method=method, timeout=body.timeout,
                              acted_at=body.acted_at).as_dict()


@router.get("", summary="Calls in progress (advisors: their own)")
def list_calls(all_calls: bool = Query(False, alias="all", description="include ended and archived calls"),
               limit: int = Query(200, ge=1, le=1000), app: App = Depends(get_app),
               ctx: RequestContext = Depends(request_context("api.calls.list"))) -> list[dict[str, Any]]:
    from ..capture import controller

    return [c.as_dict() for c in controller.list_calls(app, ctx, active_only=not all_calls, limit=limit)]


@router.post("/{call_id}/record-both", summary="Record the customer's side too (after informing the customer)")
def record_both(call_id: str, body: ControlIn | None = None, app: App = Depends(get_app),
                ctx: RequestContext = Depends(request_context("api.calls.record_both"))) -> dict[str, Any]:
    return _control(app, ctx, call_id, "record_both", body)


@router.post("/{call_id}/pause", summary="Pause recording (e.g. card data)")
def pause(call_id: str, body: ControlIn | None = None, app: App = Depends(get_app),
          ctx: RequestContext = Depends(request_context("api.calls.pause"))) -> dict[str, Any]:
    return _control(app, ctx, call_id, "pause", body)


@router.post("/{call_id}/resume", summary="Resume recording in the mode before the pause")
def resume(call_id: str, body: ControlIn | None = None, app: App = Depends(get_app),
           ctx: RequestContext = Depends(request_context("api.calls.resume"))) -> dict[str, Any]:
    return _control(app, ctx, call_id, "resume", body)
