"""Outbound: ``NotifyCallRecorded`` / ``NotifyRecordingPurged`` to each CRM's own SOAP endpoint.

zeep (>= 4.3.3) loads the CRM's WSDL with DTDs, entities and external references forbidden
(``zeep.Settings(forbid_dtd=True, forbid_entities=True, forbid_external=True)``), signs in with a
WS-Security UsernameToken (PasswordDigest) and sends the event with its idempotency key. Any
failure raises: the core's outbox retries later with the same key (``docs/crm.md``).
"""

from __future__ import annotations

import threading
from typing import Any

from hookspecs.types import PluginContext, RecordingInfo, Tombstone

from .options import CrmClient, from_context

_clients: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


class NotRefused(Exception):
    """The CRM answered but did not accept the notification (``Accepted=false``)."""


def _zeep(crm: CrmClient, clock: Any) -> tuple[Any, Any]:
    import zeep
    from zeep.transports import Transport
    from zeep.wsse.username import UsernameToken

    assert crm.notify_wsdl is not None
    key = (crm.name, crm.notify_wsdl)
    with _lock:
        client = _clients.get(key)
        if client is None:
            settings = zeep.Settings(strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=True,
                                     xml_huge_tree=False)
            transport = Transport(timeout=crm.notify_timeout_seconds, operation_timeout=crm.notify_timeout_seconds)
            client = zeep.Client(crm.notify_wsdl, settings=settings, transport=transport)
            _clients[key] = client
    wsse = None
    if crm.notify_username and crm.notify_password:
        wsse = UsernameToken(crm.notify_username, crm.notify_password, use_digest=True, created=clock())
    return client, wsse


def _send(ctx: PluginContext, operation: str, fields: dict[str, Any]) -> int:
    options = from_context(ctx)
    sent = 0
    for crm in options.clients:
        if not crm.notify_wsdl:
            continue
        client, wsse = _zeep(crm, ctx.clock)
        with _lock:  # the cached client is shared: one request at a time carries the token
            client.wsse = wsse  # a fresh token (nonce, Created) per request
            try:
                accepted = getattr(client.service, operation)(**fields)
            finally:
                client.wsse = None
        if accepted is not True:
            raise NotRefused(f"CRM {crm.name} did not accept {operation}")
        sent += 1
    return sent


def notify_recorded(ctx: PluginContext, recording: RecordingInfo, event_id: str) -> int:
    return _send(ctx, "NotifyCallRecorded", {
        "IdempotencyKey": event_id, "CallId": recording.id, "AdvisorId": recording.advisor_id,
        "StartedAt": recording.started_at, "EndedAt": recording.ended_at, "Direction": recording.direction.value,
        "TwoSided": recording.two_sided})


def notify_purged(ctx: PluginContext, tombstone: Tombstone, event_id: str) -> int:
    return _send(ctx, "NotifyRecordingPurged", {
        "IdempotencyKey": event_id, "CallId": tombstone.recording_id, "StartedAt": tombstone.started_at,
        "DeletedAt": tombstone.deleted_at, "Reason": tombstone.reason})
