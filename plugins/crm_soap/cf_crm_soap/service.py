"""The SOAP 1.1 document/literal service (spyne): calls, links and four-eyes requests for the CRM.

Namespace ``urn:callfort:crm:1``. Every operation needs the ``ActingUser`` SOAP header (the CRM
user the request is for) next to the WS-Security UsernameToken; both are checked by the gate in
front (``gate.py``) before spyne sees the request, and the user must be on the CRM's allow-list.

No audio and no transcript text is ever in a body: only metadata and links. Faults
(``faultcode``): ``Client.NotFoundOrForbidden`` (an unknown call and a forbidden one answer the
same), ``Client.ApprovalRequired`` (the user may ``RequestAccess``), ``Client.Invalid``,
``Client.UnknownUser``, ``Client.Authentication``, ``Client.SchemaValidationError`` (spyne),
``Server.Unavailable``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from spyne import (
    Application,
    Boolean,
    ComplexModel,
    DateTime,
    Double,
    Fault,
    Integer,
    Iterable,
    ServiceBase,
    Unicode,
    rpc,
)
from spyne.protocol.soap import Soap11

from hookspecs.types import AccessRequestView, CallRecord, GatewayCaller, GatewayRefusal, LinkGrant

log = logging.getLogger(__name__)

TNS = "urn:callfort:crm:1"
ENV_KEY = "callfort.crm"

_FAULTS = {
    "unknown-or-forbidden": ("Client.NotFoundOrForbidden", "no such call, or not permitted"),
    "approval-required": ("Client.ApprovalRequired",
                          "this call is another advisor's: access needs four-eyes approval (RequestAccess)"),
    "invalid": ("Client.Invalid", None),
    "unknown-user": ("Client.UnknownUser", "the acting user is unknown, disabled or not allowed for this CRM"),
    "unavailable": ("Server.Unavailable", "the archive cannot answer now; try again later"),
}

CallId = Unicode(min_len=32, max_len=32, pattern="[0-9a-f]{32}", min_occurs=1, nillable=False)
RequestId = Unicode(min_len=32, max_len=32, pattern="[0-9a-f]{32}", min_occurs=1, nillable=False)
OptRequestId = Unicode(min_len=32, max_len=32, pattern="[0-9a-f]{32}", min_occurs=0, nillable=False)
CustomerId = Unicode(min_len=1, max_len=128, pattern=r"[A-Za-z0-9][A-Za-z0-9 ._/:-]*", min_occurs=0, nillable=False)
PhoneNumber = Unicode(min_len=3, max_len=32, pattern=r"\+?[0-9][0-9 ()/.-]*", min_occurs=0, nillable=False)
Reason = Unicode(min_len=3, max_len=500, pattern=r"[^<>]+", min_occurs=1, nillable=False)
Purpose = Unicode(values=["Playback", "Transcript"], min_occurs=1, nillable=False)
OptDateTime = DateTime(min_occurs=0, nillable=False)
Offset = Integer(ge=0, le=100000, min_occurs=0, nillable=False)
Limit = Integer(ge=1, le=100, min_occurs=0, nillable=False)


class ActingUser(ComplexModel):
    """SOAP header: the CRM user this request is for (on the CRM's allow-list)."""

    __namespace__ = TNS
    _type_info = [
        ("Username", Unicode(min_len=1, max_len=64, pattern=r"[A-Za-z0-9][A-Za-z0-9._@-]*", min_occurs=1,
                             nillable=False)),
        ("ClientHost", Unicode(min_len=1, max_len=255, pattern=r"[A-Za-z0-9][A-Za-z0-9._-]*", min_occurs=0,
                               nillable=False)),
    ]


class CallInfo(ComplexModel):
    __namespace__ = TNS
    _type_info = [
        ("CallId", Unicode(max_len=32)),
        ("AdvisorId", Unicode(max_len=64)),
        ("StartedAt", DateTime),
        ("EndedAt", DateTime),
        ("DurationSeconds", Double),
        ("Direction", Unicode(values=["in", "out", "internal"])),
        ("TwoSided", Boolean),
        ("HasTranscript", Boolean),
        ("OwnCall", Boolean),
    ]


class Link(ComplexModel):
    __namespace__ = TNS
    _type_info = [
        ("Url", Unicode(max_len=4096)),
        ("ExpiresAt", DateTime),
        ("Purpose", Unicode(values=["Playback", "Transcript"])),
        ("NeedsUserSession", Boolean),
    ]


class AccessRequest(ComplexModel):
    __namespace__ = TNS
    _type_info = [
        ("RequestId", Unicode(max_len=32)),
        ("CallId", Unicode(max_len=32)),
        ("Purpose", Unicode(values=["Playback", "Transcript"])),
        ("State", Unicode(values=["requested", "approved", "rejected", "expired", "executed"])),
        ("RequestedAt", DateTime),
        ("ExpiresAt", DateTime),
    ]


_PURPOSES = {"Playback": "play", "Transcript": "transcript"}
_NAMES = {v: k for k, v in _PURPOSES.items()}


def _call_info(r: CallRecord) -> CallInfo:
    return CallInfo(CallId=r.id, AdvisorId=r.advisor_id, StartedAt=r.started_at, EndedAt=r.ended_at,
                    DurationSeconds=r.duration, Direction=r.direction.value, TwoSided=r.two_sided,
                    HasTranscript=r.transcript, OwnCall=r.own)


def _link(g: LinkGrant) -> Link:
    return Link(Url=g.url, ExpiresAt=g.expires_at, Purpose=_NAMES[g.purpose], NeedsUserSession=True)


def _request(v: AccessRequestView) -> AccessRequest:
    return AccessRequest(RequestId=v.id, CallId=v.call_id, Purpose=_NAMES[v.purpose], State=v.state,
                         RequestedAt=v.requested_at, ExpiresAt=v.expires_at)


def _aware(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _invoke(ctx: Any, operation: str, fn: Any) -> Any:
    """Run ``fn(gateway, caller)`` for the request's acting user; refusals become faults."""
    env = ctx.transport.req_env.get(ENV_KEY)
    if not env:  # the gate always sets it; without it nothing runs
        raise Fault(faultcode="Client.Authentication", faultstring="authentication failed")
    caller = GatewayCaller(username=env["user"], host=env["host"], ip=env["ip"],
                           function=f"soap.crm.{operation}", via=f"crm:{env['crm']}")
    try:
        return fn(env["gateway"], caller)
    except GatewayRefusal as exc:
        code, text = _FAULTS[exc.kind]
        raise Fault(faultcode=code, faultstring=text or exc.message[:300]) from None
    except Fault:
        raise
    except Exception as exc:  # never a traceback to the CRM
        log.exception("SOAP operation %s failed", operation)
        raise Fault(faultcode="Server.Unavailable", faultstring=_FAULTS["unavailable"][1]) from exc


class CrmService(ServiceBase):
    """CallFort for the advisors' CRM: metadata and links only, never audio or text."""

    __in_header__ = ActingUser

    @rpc(CustomerId, PhoneNumber, OptDateTime, OptDateTime, Offset, Limit,
         _returns=Iterable(CallInfo), _out_variable_name="Calls",
         _in_variable_names={"customer_id": "CustomerId", "phone_number": "PhoneNumber", "since": "From",
                             "until": "To", "offset": "Offset", "limit": "Limit"})
    def SearchCalls(ctx, customer_id, phone_number, since, until, offset, limit):  # noqa: N802,N805
        """Calls with a customer (by customer id and/or phone number) in a period, newest first,
        ``Limit`` (1..100, default 50) from ``Offset``. An advisor sees their own calls."""
        if not customer_id and not phone_number:
            raise Fault(faultcode="Client.Invalid", faultstring="give CustomerId or PhoneNumber")

        def run(gw: Any, caller: GatewayCaller) -> list[CallInfo]:
            found = gw.search_calls(caller, customer_id=customer_id, customer_number=phone_number,
                                    since=_aware(since), until=_aware(until), offset=offset or 0,
                                    limit=limit or 50)
            return [_call_info(r) for r in found]

        return _invoke(ctx, "SearchCalls", run)

    @rpc(CallId, _returns=CallInfo, _out_variable_name="Call", _in_variable_names={"call_id": "CallId"})
    def GetCallMetadata(ctx, call_id):  # noqa: N802,N805
        return _invoke(ctx, "GetCallMetadata", lambda gw, c: _call_info(gw.call_metadata(c, call_id)))

    @rpc(CallId, OptRequestId, _returns=Link, _out_variable_name="Link",
         _in_variable_names={"call_id": "CallId", "request_id": "RequestId"})
    def GetPlaybackLink(ctx, call_id, request_id):  # noqa: N802,N805
        """A streaming link for the acting user (their own call, or with an approved RequestId)."""
        return _invoke(ctx, "GetPlaybackLink", lambda gw, c: _link(gw.playback_link(c, call_id, request_id)))

    @rpc(CallId, OptRequestId, _returns=Link, _out_variable_name="Link",
         _in_variable_names={"call_id": "CallId", "request_id": "RequestId"})
    def GetTranscriptLink(ctx, call_id, request_id):  # noqa: N802,N805
        """A link to the transcript view (opened with the user's own CallFort session)."""
        return _invoke(ctx, "GetTranscriptLink", lambda gw, c: _link(gw.transcript_link(c, call_id, request_id)))

    @rpc(CallId, Purpose, Reason, _returns=AccessRequest, _out_variable_name="Request",
         _in_variable_names={"call_id": "CallId", "purpose": "Purpose", "reason": "Reason"})
    def RequestAccess(ctx, call_id, purpose, reason):  # noqa: N802,N805
        """Ask for four-eyes access to another advisor's call (a supervisor approves in CallFort)."""
        return _invoke(ctx, "RequestAccess",
                       lambda gw, c: _request(gw.request_access(c, call_id, _PURPOSES[purpose], reason)))

    @rpc(RequestId, _returns=AccessRequest, _out_variable_name="Request",
         _in_variable_names={"request_id": "RequestId"})
    def GetAccessRequestStatus(ctx, request_id):  # noqa: N802,N805
        return _invoke(ctx, "GetAccessRequestStatus", lambda gw, c: _request(gw.access_request_status(c, request_id)))


def application() -> Application:
    """The spyne application: SOAP 1.1 in (validated against the schema by lxml) and out."""
    return Application([CrmService], tns=TNS, name="CallFortCrm",
                       in_protocol=Soap11(validator="lxml"), out_protocol=Soap11())
