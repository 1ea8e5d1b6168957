"""Recording search and details, and streaming-link creation.

Listing is ``recording.list`` (an advisor sees only their own calls); a search by customer is
audited as ``recording.search`` with the customer's pseudonym, never the number or id in clear.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from hookspecs.types import RequestContext

from ..access import approvals, links
from ..access.guard import authorize, list_scope
from ..db.models import Recording, RecordingSubject
from ..errors import InputError, NotFound
from ..states import LIVE_RECORDING_STATES
from .deps import get_app, request_context

if TYPE_CHECKING:
    from ..app import App

router = APIRouter(prefix="/api/recordings", tags=["recordings"])

LIVE = LIVE_RECORDING_STATES


class LinkIn(BaseModel):
    bind_ip: bool | None = Field(default=None, description="bind the link to the caller's IP "
                                                           "(default [access] link_bind_ip)")


def summary(rec: Recording) -> dict[str, Any]:
    return {
        "id": rec.id, "site": rec.site, "source": rec.source, "advisor_id": rec.advisor_id,
        "direction": rec.direction, "started_at": rec.started_at.isoformat(), "ended_at": rec.ended_at.isoformat(),
        "duration": round(float(rec.duration), 3), "two_sided": bool(rec.two_sided), "state": rec.state,
        "retention_class": rec.retention_class, "legal_hold": bool(rec.legal_hold),
        "retention_until": rec.retention_until.isoformat() if rec.retention_until else None,
        "subject_pseudonyms": sorted({s.pseudonym for s in rec.subjects}),
    }


def details(rec: Recording) -> dict[str, Any]:
    from ..archive import row_digest

    d = summary(rec)
    d.update({
        "pbx_call_id": rec.pbx_call_id, "channels": rec.channels, "sample_rate": rec.sample_rate,
        "codec": rec.codec, "retention_rule": rec.retention_rule, "created_at": rec.created_at.isoformat(),
        "segments": [{"start": s.start, "end": s.end, "mode": s.mode,
                      "start_window": [s.start_lo, s.start_hi] if s.start_lo is not None else None}
                     for s in rec.segments],
        "consents": [{"given_at": c.given_at.isoformat(), "offset": c.offset, "by_user": c.by_user,
                      "method": c.method, "applied_at": c.applied_at.isoformat() if c.applied_at else None}
                     for c in rec.consents],
        "row_digest": row_digest(rec),
    })
    return d


def _time(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"{name} {value!r} is not an ISO-8601 date or time") from None
    if dt.tzinfo is None:
        from datetime import UTC

        dt = dt.replace(tzinfo=UTC)
    return dt


#: query parameters that would carry personal data in a URL (and so into access logs, proxies,
#: browser history): refused; search by request body instead (``POST /api/recordings/search``)
PERSONAL_QUERY = ("customer_id", "customer_number", "customer", "number", "customer_ids", "numbers")


class SearchIn(BaseModel):
    """A recording search; the customer is given in the body, never in the URL."""

    advisor_id: str | None = Field(default=None, max_length=64)
    since: str | None = Field(default=None, max_length=64, description="started at or after (ISO-8601)")
    until: str | None = Field(default=None, max_length=64, description="started before (ISO-8601)")
    customer_ids: list[str] = Field(default_factory=list, max_length=20,
                                    description="CRM customer ids (searched by pseudonym)")
    numbers: list[str] = Field(default_factory=list, max_length=20, description="phone numbers (searched by pseudonym)")
    site: str | None = Field(default=None, max_length=64)
    source: str | None = Field(default=None, max_length=64, description="the PBX / capture source")
    mode: str | None = Field(default=None, max_length=16, description="both or advisor_only")
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)


@router.get("", summary="List recordings (recording.list; advisors: own calls only); "
                        "search by customer with POST /api/recordings/search")
def list_recordings(
    request: Request,
    advisor_id: str | None = Query(default=None, max_length=64),
    since: str | None = Query(default=None, description="started at or after (ISO-8601)"),
    until: str | None = Query(default=None, description="started before (ISO-8601)"),
    limit: int = Query(default=100, ge=1, le=1000),
    offset: int = Query(default=0, ge=0),
    ctx: RequestContext = Depends(request_context("api.recordings.list")),
) -> dict[str, Any]:
    personal = sorted({k for k in request.query_params if k.lower() in PERSONAL_QUERY})
    if personal:
        # the value is not echoed, not audited, and redacted in the access log
        get_app(request).audit.record(ctx, "recording.list", "recording", None, "refused",
                                      {"reason": "personal data in the URL", "params": personal})
        raise InputError(f"'{personal[0]}' is personal data and never goes into a URL",
                         hint="search with POST /api/recordings/search and the customer in the JSON body")
    return find_recordings(get_app(request), ctx, advisor_id=advisor_id, since=since, until=until, customer_ids=[],
                           numbers=[], limit=limit, offset=offset)


@router.post("/search", summary="Search recordings by customer (recording.list; advisors: own calls only)")
def search_recordings(body: SearchIn, request: Request,
                      ctx: RequestContext = Depends(request_context("api.recordings.search"))) -> dict[str, Any]:
    return find_recordings(get_app(request), ctx, advisor_id=body.advisor_id, since=body.since, until=body.until,
                           customer_ids=body.customer_ids, numbers=body.numbers, site=body.site,
                           source=body.source, mode=body.mode, limit=body.limit, offset=body.offset)


def find_recordings(app: App, ctx: RequestContext, *, advisor_id: str | None, since: str | None, until: str | None,
            customer_ids: list[str], numbers: list[str], site: str | None = None, source: str | None = None,
            mode: str | None = None, limit: int, offset: int) -> dict[str, Any]:
    """List or search recordings in the caller's scope (the API and the web UI). ``mode``:
    ``both`` (two-sided) or ``advisor_only``. Customers are searched by pseudonym only."""
    if mode not in (None, "", "both", "advisor_only"):
        raise InputError(f"mode {mode!r} is unknown", hint="choose both or advisor_only")
    since_dt, until_dt = _time("since", since), _time("until", until)
    pseudonyms: list[str] = []
    if customer_ids or numbers:
        from ..subjects import pseudonym

        pseudonyms += [pseudonym(app, "customer_id", c) for c in customer_ids]
        pseudonyms += [pseudonym(app, "number", n) for n in numbers]
    search = bool(pseudonyms)
    filters: dict[str, Any] = {"advisor_id": advisor_id, "since": since, "until": until, "limit": limit,
                               "offset": offset, "customer_pseudonyms": pseudonyms}
    for key, value in (("site", site), ("source", source), ("mode", mode)):
        if value:
            filters[key] = value
    scope = list_scope(app, ctx, "recording.list", detail=filters)
    with app.catalog.session() as s:
        q = (select(Recording).where(Recording.state.in_(LIVE)).options(selectinload(Recording.subjects))
             .order_by(Recording.started_at.desc(), Recording.id).limit(limit).offset(offset))
        if scope is not None:
            q = q.where(Recording.advisor_id == scope)
        if advisor_id:
            q = q.where(Recording.advisor_id == advisor_id)
        if since_dt:
            q = q.where(Recording.started_at >= since_dt)
        if until_dt:
            q = q.where(Recording.started_at < until_dt)
        if site:
            q = q.where(Recording.site == site)
        if source:
            q = q.where(Recording.source == source)
        if mode:
            q = q.where(Recording.two_sided.is_(mode == "both"))
        for p in pseudonyms:
            q = q.where(Recording.id.in_(select(RecordingSubject.recording_id).where(RecordingSubject.pseudonym == p)))
        rows = [summary(r) for r in s.scalars(q)]
        app.audit.append(s, ctx, "recording.search" if search else "recording.list", "recording", None, "ok",
                         {**filters, "scope": scope or "all", "count": len(rows), "ids": [r["id"] for r in rows][:200]})
    return {"recordings": rows, "count": len(rows), "scope": "own" if scope else "all"}


def _target(app: App, rec_id: str) -> Any:
    return approvals.resolve_target(app, "recording", rec_id)


@router.get("/{rec_id}", summary="One recording's metadata (recording.show; customers by pseudonym only)")
def show_recording(rec_id: str, request: Request,
                   ctx: RequestContext = Depends(request_context("api.recordings.show"))) -> dict[str, Any]:
    from ..archive import get_recording

    app = get_app(request)
    target = _target(app, rec_id)
    authorize(app, ctx, "recording.show", target)
    if not target.attributes.get("exists"):
        raise NotFound(f"no recording {rec_id}")
    with app.catalog.session() as s:
        data = details(get_recording(s, rec_id))
        app.audit.append(s, ctx, "recording.show", "recording", rec_id, "ok", {"row_digest": data["row_digest"]})
    return data


@router.post("/{rec_id}/link", status_code=201,
             summary="A short-lived streaming link (recording.play; another advisor's call needs four-eyes)")
def create_link(rec_id: str, request: Request, body: LinkIn | None = None,
                ctx: RequestContext = Depends(request_context("api.recordings.link"))) -> dict[str, Any]:
    return links.create_link(get_app(request), ctx, rec_id, bind_ip=body.bind_ip if body else None)
