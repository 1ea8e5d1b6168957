"""Integration: events, CLI commands and web apps that plugins add."""

from __future__ import annotations

from typing import Any

from ._markers import hookspec
from .types import ArchiveGateway, PluginContext, RecordingInfo, WebApp


@hookspec
def cf_plugin_options() -> type:
    """Declare the options class of this plugin's own section ``[plugins.<plugin>]``.

    :return: a frozen attrs class (see ``hookspecs.options``). The core builds the section into it
        with ``parse_options`` when the deployment opens: a misspelt key, a wrong type or a secret
        written in clear stops start-up (and ``cf doctor``) with one line naming the section and
        the key. The built object reaches the plugin's hooks as ``ctx.options``. A plugin whose
        section is read by a registration (``CaptureSourceType(options=...)``) need not implement
        it; the registration's class is used.

    Added in 1.2. Example::

        @attrs.frozen(kw_only=True)
        class CrmOptions:
            endpoint: str
            password: Secret = attrs.field(repr=False)
            timeout: float = 10.0

        @hookimpl
        def cf_plugin_options():
            return CrmOptions

        @hookimpl
        def cf_recording_archived(recording, event_id, ctx):
            client(ctx.options.endpoint, ctx.options.password).notify(recording.id, key=event_id)
    """


@hookspec
def cf_recording_archived(recording: RecordingInfo, event_id: str, ctx: PluginContext) -> None:
    """Called once a recording is committed to the archive (CRM notification, replication).
    Results are ignored.

    Delivered through the core's outbox (``cfcore.outbox``): the event is committed with the
    archive, then each implementing plugin is called alone; an exception is audited and the call
    is retried later (also after a restart) with the same ``event_id`` — pass it on as the
    idempotency key so that the receiver ignores a repeat. Never undoes the archive.

    :param recording: the recording (no customer identifiers in clear).
    :param event_id: 32 hex characters, the same on every retry of this event for this plugin.
    :param ctx: the plugin's own context (config section, clock, data directory).
        Implementations may omit ``event_id`` and ``ctx``.

    Added in 1.0; ``event_id``, ``ctx`` and the outbox in 1.1. Example::

        @hookimpl
        def cf_recording_archived(recording, event_id, ctx):
            crm_client(ctx.config).notify(recording.id, idempotency_key=event_id)  # raise to retry
    """


@hookspec
def cf_cli_commands(cli: Any) -> None:
    """Add subcommands to the ``cf`` command (``cli`` is a ``click.Group``). Results are ignored.

    Added in 1.0. Example::

        @hookimpl
        def cf_cli_commands(cli):
            @cli.command("crm-ping")
            def crm_ping(): ...
    """


@hookspec
def cf_web_apps(ctx: PluginContext, archive: ArchiveGateway) -> list[WebApp]:
    """Return ASGI apps that ``cf serve`` mounts (e.g. the CRM SOAP endpoint at ``/soap/crm``).

    Called once per implementing plugin with that plugin's own ``ctx`` (its config section
    ``[plugins.<name>]``, built into ``ctx.options`` when the plugin declares
    ``cf_plugin_options``; the clock) and ``archive``, an ``ArchiveGateway`` acting for that
    plugin as a named user through the access decisions and the audit trail. All results are collected; each ``WebApp`` is mounted at its ``path``.
    Implementations may omit ``archive``.

    Added in 1.0; per-plugin context and ``archive`` in 1.1. Example::

        @hookimpl
        def cf_web_apps(ctx, archive):
            return [WebApp(path="/soap/crm", app=make_soap_app(archive, ctx.config))]
    """
