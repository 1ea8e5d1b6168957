"""The transcript view behind a signed link: ``GET /api/transcripts/{recording id}?t=<token>``.

A CRM gets such links through SOAP (``GetTranscriptLink``), never the text. Opening one needs
the link (signed, short-lived, purpose ``transcript``, bound to a user) *and* that user's own
session (bearer token or session cookie), whatever ``[access] link_require_login`` says: a
compromised CRM holding links gets nothing without the advisor's log-in. Every unusable link gets
the same 403 body; every request is audited as ``transcript.read``.

The answer is JSON: ``{"recording_id", "language", "engine", "segments": [{"start", "end",
"role", "text"}]}``, times in seconds from the start of the call, both voices merged by time.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import attrs
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from hookspecs.types import Actor, RequestContext

from ..access import links
from ..errors import CallFortError
from .deps import authenticate, client_host, client_ip, get_app

if TYPE_CHECKING:
    from ..app import App

router = APIRouter(tags=["transcripts"])

_REC_ID = re.compile(r"^[0-9a-f]{32}$")


def _refused(app: App, request: Request, ctx: RequestContext | None, rec_id: str, reason: str) -> JSONResponse:
    if ctx is None:
        ctx = RequestContext(actor=Actor(user_id="unknown", username="unknown"), host=client_host(request),
                             ip=client_ip(request), function="api.transcripts")
    target_id = rec_id if _REC_ID.match(rec_id) else None
    app.audit.record(ctx, "transcript.read", "recording", target_id, "denied", {"reason": reason})
    return JSONResponse({"error": links.LINK_REFUSED}, status_code=403)


@router.get("/api/transcripts/{rec_id}", summary="A transcript through a signed link (needs your own session)",
            responses={403: {"description": "link invalid or expired, or no such transcript"}})
def read_transcript(rec_id: str, request: Request,
                    t: str | None = Query(default=None, max_length=2048, description="the link token")) -> Any:
    from .. import transcripts

    app = get_app(request)
    ctx = authenticate(request, "api.transcripts")  # always: the user's own session
    assert ctx is not None
    if not t:
        return _refused(app, request, ctx, rec_id, "no link token")
    claims, reason = links.check(app, t, recording_id=rec_id, user_id=ctx.actor.user_id,
                                 client_ip=client_ip(request), require_user=True)
    if claims is None:
        return _refused(app, request, ctx, rec_id, reason)
    if claims.purpose != "transcript":
        return _refused(app, request, ctx, rec_id, f"a {claims.purpose} link")
    ctx = attrs.evolve(ctx, approval_id=claims.approval_id)
    try:
        doc = transcripts.decrypt(app, rec_id)
    except CallFortError as exc:  # purged, shredded, none: like no transcript
        return _refused(app, request, ctx, rec_id, f"transcript not readable: {type(exc).__name__}")
    app.audit.record(ctx, "transcript.read", "recording", rec_id, "ok",
                     {"link": claims.nonce, "segments": len(doc.get("segments", []))})
    return {"recording_id": rec_id, "language": doc.get("language"), "engine": doc.get("engine"),
            "segments": doc.get("segments", [])}
