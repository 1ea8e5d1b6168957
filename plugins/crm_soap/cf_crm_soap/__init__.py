"""CallFort plugin crm_soap: the advisors' CRM over SOAP 1.1 (spyne), and notifications to it (zeep).

- ``cf_web_apps``: the service at ``/soap/crm`` (WSDL at ``/soap/crm?wsdl``): ``SearchCalls``,
  ``GetCallMetadata``, ``GetPlaybackLink``, ``GetTranscriptLink``, ``RequestAccess``,
  ``GetAccessRequestStatus``. Metadata and links only: no audio and no transcript text in any
  body. WS-Security UsernameToken (digest) per CRM, the acting user in a header on an allow-list.
- ``cf_recording_archived`` / ``cf_after_purge``: ``NotifyCallRecorded`` / ``NotifyRecordingPurged``
  to each CRM's own SOAP endpoint, delivered from the core's outbox (idempotency key, retries).

Configuration in ``[plugins.crm_soap]`` (``options.py``; the 1.0 name ``[crm]`` is still read, with
a deprecation warning); see docs/crm.md.
"""

from __future__ import annotations

from hookspecs import hookimpl
from hookspecs.types import ArchiveGateway, PluginContext, RecordingInfo, Tombstone, WebApp

PATH = "/soap/crm"


@hookimpl
def cf_plugin_options() -> type:
    from .options import CrmSoapOptions

    return CrmSoapOptions


@hookimpl
def cf_web_apps(ctx: PluginContext, archive: ArchiveGateway) -> list[WebApp]:
    from spyne.server.wsgi import WsgiApplication

    from .gate import SoapGate
    from .options import from_context
    from .service import application

    options = from_context(ctx)
    gate = SoapGate(WsgiApplication(application()), options, archive, ctx.clock)
    return [WebApp(path=PATH, app=gate, name="crm_soap")]


@hookimpl
def cf_recording_archived(recording: RecordingInfo, event_id: str, ctx: PluginContext) -> None:
    from .notify import notify_recorded

    notify_recorded(ctx, recording, event_id)


@hookimpl
def cf_after_purge(tombstone: Tombstone, event_id: str, ctx: PluginContext) -> None:
    from .notify import notify_purged

    notify_purged(ctx, tombstone, event_id)
