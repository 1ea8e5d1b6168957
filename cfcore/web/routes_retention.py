"""Retention over HTTP: why a recording is kept, legal holds, the purge, and four-eyes requests for
extend / shorten / hold release / Art. 17 erasure (approved and executed under /api/approvals)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from hookspecs.types import Decision, RequestContext

from ..access import approvals
from ..access.policy import decide
from ..archive import get_recording
from ..errors import ConflictError
from ..retention import list_holds, request_change, request_erasure, retention_status, run_purge, set_hold
from .deps import get_app, request_context

if TYPE_CHECKING:
    from ..app import App

router = APIRouter(prefix="/api/retention", tags=["retention"])


class ReasonIn(BaseModel):
    reason: str = Field(min_length=3, max_length=2000)


class ChangeIn(BaseModel):
    reason: str = Field(min_length=3, max_length=2000)
    until: str | None = Field(default=None, max_length=40, description="YYYY-MM-DD or an ISO timestamp")
    years: int | None = Field(default=None, ge=0, le=10, description="years after the end of the call")


def _requested(app: App, ctx: RequestContext, approval_id: str) -> dict[str, Any]:
    return approvals.get_request(app, ctx, approval_id).as_dict()


@router.get("/recordings/{recording_id}", summary="Why a recording is kept until when")
def show(recording_id: str, request: Request,
         ctx: RequestContext = Depends(request_context("api.retention.show"))) -> dict[str, Any]:
    return retention_status(get_app(request), ctx, recording_id)


@router.post("/run", summary="Run the purge now (retention.run); dry_run lists what would go")
def run(request: Request, dry_run: bool = Query(default=False), limit: int | None = Query(default=None, ge=1),
        ctx: RequestContext = Depends(request_context("api.retention.run"))) -> dict[str, Any]:
    return run_purge(get_app(request), ctx, dry_run=dry_run, limit=limit).as_dict()


@router.get("/holds", summary="Active legal holds")
def holds(request: Request, ctx: RequestContext = Depends(request_context("api.holds.list"))) -> list[dict[str, Any]]:
    return list_holds(get_app(request), ctx)


@router.post("/holds/{recording_id}", status_code=201, summary="Put a recording on legal hold")
def hold(recording_id: str, body: ReasonIn, request: Request,
         ctx: RequestContext = Depends(request_context("api.holds.set"))) -> dict[str, Any]:
    return set_hold(get_app(request), ctx, recording_id, body.reason)


@router.post("/holds/{recording_id}/release", status_code=201, summary="Request the release of a hold (four-eyes)")
def release(recording_id: str, body: ReasonIn, request: Request,
            ctx: RequestContext = Depends(request_context("api.holds.release"))) -> dict[str, Any]:
    app = get_app(request)
    target = approvals.resolve_target(app, "recording", recording_id)
    # "not on hold" only for who may ask at all; the others get request()'s audited refusal, so
    # an unknown id and a colleague's recording answer alike (no id probing)
    if target.attributes.get("exists") and decide(app, ctx, "hold.release", target).decision is not Decision.DENY:
        with app.catalog.session() as s:
            if not get_recording(s, recording_id).legal_hold:
                raise ConflictError(f"recording {recording_id} is not on legal hold")
    approval_id = approvals.request(app, ctx, "hold.release", recording_id, body.reason, {"reason": body.reason})
    return _requested(app, ctx, approval_id)


def _change(kind: str, recording_id: str, body: ChangeIn, request: Request, ctx: RequestContext) -> dict[str, Any]:
    app = get_app(request)
    approval_id = request_change(app, ctx, recording_id, kind, body.reason, until=body.until, years=body.years)
    return _requested(app, ctx, approval_id)


@router.post("/recordings/{recording_id}/extend", status_code=201, summary="Request a longer retention (four-eyes)")
def extend(recording_id: str, body: ChangeIn, request: Request,
           ctx: RequestContext = Depends(request_context("api.retention.extend"))) -> dict[str, Any]:
    return _change("extend", recording_id, body, request, ctx)


@router.post("/recordings/{recording_id}/shorten", status_code=201, summary="Request a shorter retention (four-eyes)")
def shorten(recording_id: str, body: ChangeIn, request: Request,
            ctx: RequestContext = Depends(request_context("api.retention.shorten"))) -> dict[str, Any]:
    return _change("shorten", recording_id, body, request, ctx)


@router.post("/recordings/{recording_id}/erase", status_code=201,
             summary="Request Art. 17 erasure of a recording no law requires us to keep (four-eyes)")
def erase(recording_id: str, body: ReasonIn, request: Request,
          ctx: RequestContext = Depends(request_context("api.recording.erase"))) -> dict[str, Any]:
    app = get_app(request)
    approval_id = request_erasure(app, ctx, recording_id, body.reason)
    return _requested(app, ctx, approval_id)
