"""Four-eyes requests and approvals: request, list, show, approve, reject, execute."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from hookspecs.types import RequestContext

from ..access import approvals
from ..access.links import API_EXECUTORS
from ..errors import InputError
from .deps import get_app, request_context

router = APIRouter(prefix="/api/approvals", tags=["four-eyes"])


class ApprovalIn(BaseModel):
    action: str = Field(max_length=64, description="e.g. recording.export, recording.play, retention.shorten")
    target: str | None = Field(default=None, max_length=128, description="the recording id, user name, …")
    reason: str = Field(min_length=3, max_length=2000)
    params: dict[str, str | int | float | bool | None] = Field(default_factory=dict)


class RejectIn(BaseModel):
    note: str | None = Field(default=None, max_length=2000)


@router.post("", status_code=201, summary="Request a four-eyes function")
def request_approval(body: ApprovalIn, request: Request,
                     ctx: RequestContext = Depends(request_context("api.approvals.request"))) -> dict[str, Any]:
    app = get_app(request)
    approval_id = approvals.request(app, ctx, body.action, body.target, body.reason, dict(body.params))
    return approvals.get_request(app, ctx, approval_id).as_dict()


@router.get("", summary="Requests you made, may approve, or (approval.read) all")
def list_approvals(request: Request, state: str | None = Query(default=None, max_length=16),
                   limit: int = Query(default=200, ge=1, le=1000),
                   ctx: RequestContext = Depends(request_context("api.approvals.list"))) -> list[dict[str, Any]]:
    return [a.as_dict() for a in approvals.list_requests(get_app(request), ctx, state, limit)]


@router.get("/{approval_id}", summary="One request")
def show_approval(approval_id: str, request: Request,
                  ctx: RequestContext = Depends(request_context("api.approvals.show"))) -> dict[str, Any]:
    return approvals.get_request(get_app(request), ctx, approval_id).as_dict()


@router.post("/{approval_id}/approve", summary="Approve as the second person (counted once per person)")
def approve(approval_id: str, request: Request,
            ctx: RequestContext = Depends(request_context("api.approvals.approve"))) -> dict[str, Any]:
    return approvals.approve(get_app(request), ctx, approval_id).as_dict()


@router.post("/{approval_id}/reject", summary="Reject (approving role) or withdraw (requester)")
def reject(approval_id: str, request: Request, body: RejectIn | None = None,
           ctx: RequestContext = Depends(request_context("api.approvals.reject"))) -> dict[str, Any]:
    return approvals.reject(get_app(request), ctx, approval_id, body.note if body else None).as_dict()


@router.post("/{approval_id}/execute", response_model=None,
             summary="Run an approved request (the requester only); a dsar.export answers with the zip")
def execute(approval_id: str, request: Request,
            ctx: RequestContext = Depends(request_context("api.approvals.execute"))) -> dict[str, Any] | Response:
    app = get_app(request)
    view = approvals.get_request(app, ctx, approval_id)
    action = view.action
    if action == "dsar.export":
        # copies for a person leave only as this response to the requester, never as a file
        from .routes_dsar import copies_response

        return copies_response(app, ctx, approval_id)
    if action not in API_EXECUTORS and "out" in view.params:
        # the executor would write a file on the server, at a path the requester chose
        raise InputError(f"request {approval_id} writes the file {view.params['out']!r}: run it on your PC",
                         hint=f"cf execute {approval_id}")
    result = approvals.execute(app, ctx, approval_id, executor=API_EXECUTORS.get(action))
    return {"approval_id": approval_id, "action": action, "result": result}
