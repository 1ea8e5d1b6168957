"""The notification service a CRM implements to hear from CallFort (namespace
``urn:callfort:crm-notify:1``); ``reference_application`` builds it with spyne, so a CRM vendor
(and the tests' CRM simulator) gets the exact WSDL CallFort's client expects.

- ``NotifyCallRecorded(IdempotencyKey, CallId, AdvisorId, StartedAt, EndedAt, Direction,
  TwoSided) -> Accepted``
- ``NotifyRecordingPurged(IdempotencyKey, CallId, StartedAt, DeletedAt, Reason) -> Accepted``

``IdempotencyKey`` (32 hex) is the same on every retry of one event: a CRM that sees it twice
answers ``Accepted=true`` and does nothing. No customer identifier is sent; the CRM knows which
customer its advisor spoke to at that time, and finds calls later with ``SearchCalls``.
CallFort authenticates with a WS-Security UsernameToken (PasswordDigest) of the CRM's choosing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spyne import Application, Boolean, DateTime, ServiceBase, Unicode, rpc
from spyne.protocol.soap import Soap11

NOTIFY_TNS = "urn:callfort:crm-notify:1"

Key = Unicode(min_len=32, max_len=32, pattern="[0-9a-f]{32}", min_occurs=1, nillable=False)
Id = Unicode(min_len=32, max_len=32, pattern="[0-9a-f]{32}", min_occurs=1, nillable=False)
Advisor = Unicode(min_len=1, max_len=64, min_occurs=1, nillable=False)
When = DateTime(min_occurs=1, nillable=False)
Dir = Unicode(values=["in", "out", "internal"], min_occurs=1, nillable=False)
Flag = Boolean(min_occurs=1, nillable=False)
Why = Unicode(values=["retention-expired", "art17-erasure"], min_occurs=1, nillable=False)


def reference_application(handler: Callable[[str, dict[str, Any], Any], bool]) -> Application:
    """The CRM side: ``handler(operation, fields, spyne ctx) -> accepted``."""

    class CallFortNotifications(ServiceBase):
        @rpc(Key, Id, Advisor, When, When, Dir, Flag, _returns=Boolean, _out_variable_name="Accepted",
             _in_variable_names={"key": "IdempotencyKey", "call_id": "CallId", "advisor_id": "AdvisorId",
                                 "started_at": "StartedAt", "ended_at": "EndedAt", "direction": "Direction",
                                 "two_sided": "TwoSided"})
        def NotifyCallRecorded(ctx, key, call_id, advisor_id, started_at, ended_at, direction, two_sided):  # noqa: N802,N805
            return handler("NotifyCallRecorded", {
                "IdempotencyKey": key, "CallId": call_id, "AdvisorId": advisor_id, "StartedAt": started_at,
                "EndedAt": ended_at, "Direction": direction, "TwoSided": two_sided}, ctx)

        @rpc(Key, Id, When, When, Why, _returns=Boolean, _out_variable_name="Accepted",
             _in_variable_names={"key": "IdempotencyKey", "call_id": "CallId", "started_at": "StartedAt",
                                 "deleted_at": "DeletedAt", "reason": "Reason"})
        def NotifyRecordingPurged(ctx, key, call_id, started_at, deleted_at, reason):  # noqa: N802,N805
            return handler("NotifyRecordingPurged", {
                "IdempotencyKey": key, "CallId": call_id, "StartedAt": started_at, "DeletedAt": deleted_at,
                "Reason": reason}, ctx)

    return Application([CallFortNotifications], tns=NOTIFY_TNS, name="CallFortNotifications",
                       in_protocol=Soap11(validator="lxml"), out_protocol=Soap11())
