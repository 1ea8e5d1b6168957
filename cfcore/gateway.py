"""The archive as integration plugins (the CRM's SOAP service) see it: ``ArchiveGateway``.

Every method acts as the user the integration names (``GatewayCaller.username``), through the same
access decisions, four-eyes approvals, links and audit entries as the API. The integration is
recorded in the audit entry's function (``soap.crm.<Operation>``) and detail (``via``). Errors
become ``GatewayRefusal``: an unknown call and a forbidden one give the same
``unknown-or-forbidden`` refusal; "approval required" is its own kind so the user may ask.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from hookspecs.types import (
    AccessRequestView,
    CallRecord,
    Direction,
    GatewayCaller,
    GatewayRefusal,
    LinkGrant,
    RequestContext,
)

from .clock import utc
from .errors import (
    AccessDenied,
    ApprovalRequired,
    AuthenticationFailed,
    CallFortError,
    ConflictError,
    InputError,
    NotFound,
)

if TYPE_CHECKING:
    from .app import App

log = logging.getLogger(__name__)

LIVE = ("archived", "incomplete")
PURPOSE_ACTIONS = {"play": "recording.play", "transcript": "transcript.read"}
_ID = re.compile(r"^[0-9a-f]{32}$")
UNKNOWN = "no such call, or not permitted"


def _refusal(exc: Exception) -> GatewayRefusal:
    if isinstance(exc, ApprovalRequired):
        return GatewayRefusal("approval-required", "access to this call needs four-eyes approval")
    if isinstance(exc, NotFound | AccessDenied | ConflictError):
        return GatewayRefusal("unknown-or-forbidden", UNKNOWN)
    if isinstance(exc, AuthenticationFailed):
        return GatewayRefusal("unknown-user", "the acting user is unknown or disabled")
    if isinstance(exc, InputError):
        return GatewayRefusal("invalid", exc.message[:300])
    log.warning("gateway call failed: %s", type(exc).__name__)
    return GatewayRefusal("unavailable", "the archive cannot answer now")


class Gateway:
    """``ArchiveGateway`` for one integration plugin."""

    def __init__(self, app: App, plugin: str) -> None:
        self.app = app
        self.plugin = plugin

    # ------------------------------------------------------------------ helpers
    def _ctx(self, caller: GatewayCaller) -> RequestContext:
        from .access.users import actor_for
        from .db.models_access import User

        with self.app.catalog.session() as s:
            user = s.scalars(select(User).where(User.username == caller.username.strip().lower())).first()
            actor = actor_for(user) if user is not None and not user.disabled else None
        if actor is None:
            raise GatewayRefusal("unknown-user", "the acting user is unknown or disabled")
        return RequestContext(actor=actor, host=caller.host, ip=caller.ip, function=caller.function)

    def _run(self, caller: GatewayCaller, fn: Any) -> Any:
        ctx = self._ctx(caller)
        try:
            return fn(ctx)
        except GatewayRefusal:
            raise
        except CallFortError as exc:
            raise _refusal(exc) from None

    @staticmethod
    def _record(rec: Any, ctx: RequestContext, transcribed: set[str]) -> CallRecord:
        return CallRecord(id=rec.id, advisor_id=rec.advisor_id, started_at=utc(rec.started_at),
                          ended_at=utc(rec.ended_at), duration=round(float(rec.duration), 3),
                          direction=Direction(rec.direction), two_sided=bool(rec.two_sided),
                          transcript=rec.id in transcribed,
                          own=ctx.actor.advisor_id is not None and ctx.actor.advisor_id == rec.advisor_id)

    def _transcribed(self, s: Any, ids: list[str]) -> set[str]:
        from .db.models_integration import TranscriptRow

        if not ids:
            return set()
        return set(s.scalars(select(TranscriptRow.recording_id).where(
            TranscriptRow.recording_id.in_(ids), TranscriptRow.state == "done")))

    def _check_live(self, call_id: str) -> None:
        from .db.models import Recording

        with self.app.catalog.session() as s:
            rec = s.get(Recording, call_id)
            if rec is None or rec.state not in LIVE:
                raise NotFound(UNKNOWN)

    @staticmethod
    def _check_id(call_id: str) -> None:
        if not isinstance(call_id, str) or not _ID.match(call_id):
            raise NotFound("malformed call id")

    def audit_refusal(self, *, via: str, ip: str, function: str, reason: str) -> None:
        """Audit a request the integration refused before it reached the archive (bad token,
        replayed nonce, DTD, user not on the allow-list): ``crm.refused``, outcome ``denied``."""
        from hookspecs.types import Actor

        try:
            from ipaddress import ip_address

            ip = str(ip_address(ip))
        except ValueError:
            ip = "0.0.0.0"
        ctx = RequestContext(actor=Actor(user_id=via[:64], username=via[:64]), host=via[:255] or "unknown",
                             ip=ip, function=function)
        self.app.audit.record(ctx, "integration.refused", "integration", self.plugin, "denied",
                              {"reason": reason[:300], "via": via})

    # ------------------------------------------------------------------ ArchiveGateway
    def search_calls(self, caller: GatewayCaller, *, customer_id: str | None = None,
                     customer_number: str | None = None, since: datetime | None = None,
                     until: datetime | None = None, offset: int = 0, limit: int = 50) -> list[CallRecord]:
        from .access.guard import list_scope
        from .db.models import Recording, RecordingSubject
        from .subjects import pseudonym

        def run(ctx: RequestContext) -> list[CallRecord]:
            if not 0 <= offset <= 100_000 or not 1 <= limit <= 100:
                raise InputError("offset 0..100000 and limit 1..100")
            pseudonyms = []
            if customer_id:
                pseudonyms.append(pseudonym(self.app, "customer_id", customer_id))
            if customer_number:
                pseudonyms.append(pseudonym(self.app, "number", customer_number))
            filters = {"since": since.isoformat() if since else None, "until": until.isoformat() if until else None,
                       "offset": offset, "limit": limit, "customer_pseudonyms": pseudonyms, "via": self.plugin}
            scope = list_scope(self.app, ctx, "recording.list", detail=filters)
            with self.app.catalog.session() as s:
                q = (select(Recording).where(Recording.state.in_(LIVE)).options(selectinload(Recording.subjects))
                     .order_by(Recording.started_at.desc(), Recording.id).limit(limit).offset(offset))
                if scope is not None:
                    q = q.where(Recording.advisor_id == scope)
                if since:
                    q = q.where(Recording.started_at >= since)
                if until:
                    q = q.where(Recording.started_at < until)
                for p in pseudonyms:
                    q = q.where(Recording.id.in_(select(RecordingSubject.recording_id)
                                                 .where(RecordingSubject.pseudonym == p)))
                recs = list(s.scalars(q))
                transcribed = self._transcribed(s, [r.id for r in recs])
                out = [self._record(r, ctx, transcribed) for r in recs]
                self.app.audit.append(s, ctx, "recording.search" if pseudonyms else "recording.list", "recording",
                                      None, "ok", {**filters, "scope": scope or "all", "count": len(out),
                                                   "ids": [r.id for r in out]})
            return out

        return self._run(caller, run)

    def call_metadata(self, caller: GatewayCaller, call_id: str) -> CallRecord:
        from .access import approvals
        from .access.guard import authorize
        from .archive import get_recording

        def run(ctx: RequestContext) -> CallRecord:
            self._check_id(call_id)
            target = approvals.resolve_target(self.app, "recording", call_id)
            authorize(self.app, ctx, "recording.show", target, detail={"via": self.plugin})
            if not target.attributes.get("exists"):
                raise NotFound(UNKNOWN)
            with self.app.catalog.session() as s:
                rec = get_recording(s, call_id)
                if rec.state not in LIVE:
                    raise NotFound(UNKNOWN)
                record = self._record(rec, ctx, self._transcribed(s, [call_id]))
                self.app.audit.append(s, ctx, "recording.show", "recording", call_id, "ok", {"via": self.plugin})
            return record

        return self._run(caller, run)

    def _link(self, caller: GatewayCaller, call_id: str, purpose: str, request_id: str | None) -> LinkGrant:
        from . import transcripts
        from .access import approvals, links

        def run(ctx: RequestContext) -> LinkGrant:
            self._check_id(call_id)
            self._check_live(call_id)  # unknown or deleted: the same answer as forbidden
            if request_id:
                a = approvals.get_request(self.app, ctx, request_id)
                if a.target_id != call_id or a.action != PURPOSE_ACTIONS[purpose]:
                    raise NotFound("the request is for another call or purpose")
                if a.state == "requested":
                    raise ApprovalRequired("the request is not approved yet")
                result = approvals.execute(self.app, ctx, request_id)
            elif purpose == "play":
                result = links.create_link(self.app, ctx, call_id)
            else:
                result = transcripts.create_link(self.app, ctx, call_id)
            return LinkGrant(url=result["url"], expires_at=datetime.fromisoformat(result["expires_at"]),
                             purpose=purpose)

        return self._run(caller, run)

    def playback_link(self, caller: GatewayCaller, call_id: str, request_id: str | None = None) -> LinkGrant:
        return self._link(caller, call_id, "play", request_id)

    def transcript_link(self, caller: GatewayCaller, call_id: str, request_id: str | None = None) -> LinkGrant:
        return self._link(caller, call_id, "transcript", request_id)

    @staticmethod
    def _view(a: Any, purpose: str) -> AccessRequestView:
        return AccessRequestView(id=a.id, call_id=a.target_id or "", purpose=purpose, state=a.state,
                                 requested_at=utc(a.requested_at), expires_at=utc(a.expires_at))

    def request_access(self, caller: GatewayCaller, call_id: str, purpose: str, reason: str) -> AccessRequestView:
        from .access import approvals

        def run(ctx: RequestContext) -> AccessRequestView:
            if purpose not in PURPOSE_ACTIONS:
                raise InputError(f"purpose must be one of: {', '.join(PURPOSE_ACTIONS)}")
            self._check_id(call_id)
            self._check_live(call_id)
            aid = approvals.request(self.app, ctx, PURPOSE_ACTIONS[purpose], call_id, reason,
                                    {"via": self.plugin})
            return self._view(approvals.get_request(self.app, ctx, aid), purpose)

        return self._run(caller, run)

    def access_request_status(self, caller: GatewayCaller, request_id: str) -> AccessRequestView:
        from .access import approvals

        def run(ctx: RequestContext) -> AccessRequestView:
            approvals.expire(self.app)
            a = approvals.get_request(self.app, ctx, request_id)
            purpose = next((p for p, act in PURPOSE_ACTIONS.items() if act == a.action), None)
            if purpose is None:
                raise NotFound("no such request")
            return self._view(a, purpose)

        return self._run(caller, run)


def plugin_context(app: App, plugin: str) -> Any:
    """The context an integration plugin's hooks get: its own config section, the clock and its
    data directory (the gateway acting for it is ``archive_for``)."""
    return app.integration_context(plugin)


def archive_for(app: App, plugin: str) -> Gateway:
    """The ``ArchiveGateway`` acting for ``plugin`` (handed to its ``cf_web_apps``)."""
    return Gateway(app, plugin)


__all__ = ["Gateway", "archive_for", "plugin_context"]
