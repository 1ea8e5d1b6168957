"""Art. 15 reports over HTTP, and copies of a person's recordings (four-eyes ``dsar.export``).

The person's identifiers travel in the POST body, never in a URL (URLs end up in proxy logs).
An approved export is returned as the response body (a zip), never written on the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from hookspecs.types import RequestContext

from ..access import approvals
from ..dsar import produce_report
from ..dsar.export import build_copies, request_export
from ..errors import InputError
from .deps import get_app, request_context

if TYPE_CHECKING:
    from ..app import App

router = APIRouter(prefix="/api/dsar", tags=["dsar"])

MEDIA_TYPES = {"json": "application/json", "html": "text/html; charset=utf-8", "pdf": "application/pdf"}


class PersonIn(BaseModel):
    customer_ids: list[str] = Field(default_factory=list, max_length=20)
    numbers: list[str] = Field(default_factory=list, max_length=20)


class ReportIn(PersonIn):
    format: Literal["json", "html", "pdf"] = "pdf"
    lang: Literal["de", "en"] = "de"


class ExportIn(PersonIn):
    reason: str = Field(min_length=3, max_length=2000)


@router.post("/report", summary="The Art. 15 report on a person (JSON, HTML or PDF; German or English)",
             response_class=Response)
def report(body: ReportIn, request: Request,
           ctx: RequestContext = Depends(request_context("api.dsar.report"))) -> Response:
    data, _ = produce_report(get_app(request), ctx, customer_ids=body.customer_ids, numbers=body.numbers,
                             fmt=body.format, lang=body.lang)
    return Response(data, media_type=MEDIA_TYPES[body.format],
                    headers={"Content-Disposition": f'attachment; filename="art15-report-{body.lang}.{body.format}"'})


@router.post("/exports", status_code=201, summary="Request copies of a person's recordings (four-eyes)")
def request_copies(body: ExportIn, request: Request,
                   ctx: RequestContext = Depends(request_context("api.dsar.export"))) -> dict[str, Any]:
    app = get_app(request)
    approval_id = request_export(app, ctx, customer_ids=body.customer_ids, numbers=body.numbers, reason=body.reason)
    return approvals.get_request(app, ctx, approval_id).as_dict()


@router.post("/exports/{approval_id}", summary="Run an approved export: the zip is the response",
             response_class=Response)
def download_copies(approval_id: str, request: Request,
                    ctx: RequestContext = Depends(request_context("api.dsar.export.execute"))) -> Response:
    app = get_app(request)
    if approvals.get_request(app, ctx, approval_id).action != "dsar.export":
        raise InputError(f"request {approval_id} is not a dsar.export", hint="use /api/approvals/{id}/execute")
    return copies_response(app, ctx, approval_id)


def copies_response(app: App, ctx: RequestContext, approval_id: str) -> Response:
    """Execute the approved ``dsar.export`` ``approval_id`` (the requester only) and return the
    zip as the response: the only way a copy leaves; nothing is written to a file."""
    held: dict[str, bytes] = {}

    def executor(app: App, actx: RequestContext, target_id: str, params: dict[str, Any]) -> dict[str, Any]:
        data, summary = build_copies(app, actx, target_id, params)
        held["zip"] = data
        return {"recordings": summary["recordings"], "sha256": summary["sha256"]}

    approvals.execute(app, ctx, approval_id, executor=executor)
    return Response(held["zip"], media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="recordings-{approval_id}.zip"',
                             "Cache-Control": "no-store"})
