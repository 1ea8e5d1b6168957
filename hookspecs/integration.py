"""Integration: events, CLI commands and web apps that plugins add."""

from __future__ import annotations

from typing import Any

from ._markers import hookspec
from .types import PluginContext, RecordingInfo, WebApp


@hookspec
def cf_recording_archived(recording: RecordingInfo) -> None:
    """Called once a recording is committed to the archive (transcript, CRM, replication).

    Results are ignored; an exception is logged and audited, never undoes the archive.

    Added in 1.0.
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
def cf_web_apps(ctx: PluginContext) -> list[WebApp]:
    """Return ASGI apps that ``cf serve`` mounts (e.g. the CRM SOAP endpoint). All collected.

    Added in 1.0.
    """
