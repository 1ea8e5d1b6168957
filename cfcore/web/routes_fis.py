"""FIS alerts and scans (fis.read) and Art. 33 breach cases (breach.manage)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from hookspecs.types import RequestContext, Severity

from ..fis import breach
from ..fis.alerts import alert_dict, authorize_read, get_alert, list_alerts
from .deps import get_app, request_context

router = APIRouter(prefix="/api", tags=["fis"])


@router.get("/fis/alerts", summary="FIS alerts, newest first (fis.read)")
def alerts(request: Request, rule: str | None = Query(default=None, max_length=64),
           severity: Literal["info", "warning", "high", "critical"] | None = None,
           undelivered: bool = False, limit: int = Query(default=200, ge=1, le=5000),
           ctx: RequestContext = Depends(request_context("api.fis.alerts"))) -> list[dict[str, Any]]:
    app = get_app(request)
    authorize_read(app, ctx, "alerts")
    rows = list_alerts(app, rule=rule, min_severity=Severity(severity) if severity else None,
                       undelivered=undelivered, limit=limit)
    return [alert_dict(r) for r in rows]


@router.get("/fis/alerts/{alert_id}", summary="One alert with evidence and deliveries (fis.read)")
def alert(alert_id: str, request: Request,
          ctx: RequestContext = Depends(request_context("api.fis.alert"))) -> dict[str, Any]:
    app = get_app(request)
    authorize_read(app, ctx, f"alert {alert_id}")
    with app.catalog.session() as s:
        return alert_dict(get_alert(s, alert_id))


@router.post("/fis/scan", summary="Run a scan now (fis.read); scrub=false for the rules only")
def run_scan(request: Request, scrub: bool = True,
             ctx: RequestContext = Depends(request_context("api.fis.scan"))) -> dict[str, Any]:
    from ..fis.scan import scan

    app = get_app(request)
    authorize_read(app, ctx, "scan")
    return scan(app, ctx, scrub=scrub).as_dict()


class CaseIn(BaseModel):
    alerts: list[str] = Field(min_length=1, max_length=100)
    aware_at: str | None = Field(default=None, description="ISO-8601 with zone; default now")


class CaseUpdate(BaseModel):
    fields: dict[str, str | int | None] = Field(default_factory=dict, description="Art. 33(3) fields; null clears")
    status: Literal["open", "notified", "closed"] | None = None
    notified_at: str | None = None
    aware_at: str | None = None
    add_alerts: list[str] = Field(default_factory=list, max_length=100)


@router.get("/breach", summary="Breach cases with their deadlines (breach.manage)")
def cases(request: Request, status: Literal["open", "notified", "closed"] | None = None,
          ctx: RequestContext = Depends(request_context("api.breach.list"))) -> list[dict[str, Any]]:
    return breach.list_cases(get_app(request), ctx, status=status)


@router.post("/breach", status_code=201, summary="Open a breach case from alerts (breach.manage)")
def open_case(body: CaseIn, request: Request,
              ctx: RequestContext = Depends(request_context("api.breach.open"))) -> dict[str, Any]:
    app = get_app(request)
    case_id = breach.open_case(app, ctx, body.alerts, body.aware_at)
    return breach.show_case(app, ctx, case_id, audit=False)


@router.get("/breach/{case_id}", summary="A case: deadline, Art. 33(3) fields, alerts (breach.manage)")
def show(case_id: str, request: Request,
         ctx: RequestContext = Depends(request_context("api.breach.show"))) -> dict[str, Any]:
    return breach.show_case(get_app(request), ctx, case_id)


@router.patch("/breach/{case_id}", summary="Record Art. 33(3) particulars and the case's state (breach.manage)")
def update(case_id: str, body: CaseUpdate, request: Request,
           ctx: RequestContext = Depends(request_context("api.breach.update"))) -> dict[str, Any]:
    return breach.update_case(get_app(request), ctx, case_id, body.fields, status=body.status,
                              notified_at=body.notified_at, aware_at=body.aware_at, add_alerts=tuple(body.add_alerts))


@router.get("/breach/{case_id}/draft", summary="The notification draft, German or English (breach.manage)",
            response_class=PlainTextResponse)
def draft(case_id: str, request: Request, lang: Literal["de", "en"] = "de", format: Literal["md", "html"] = "md",
          ctx: RequestContext = Depends(request_context("api.breach.draft"))) -> PlainTextResponse:
    text = breach.render_case(get_app(request), ctx, case_id, lang, format)
    media = "text/html" if format == "html" else "text/markdown"
    return PlainTextResponse(text, media_type=f"{media}; charset=utf-8")
