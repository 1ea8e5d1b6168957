"""CallFort plugin pbx_asterisk: Capture from Asterisk through the Asterisk Manager Interface (AMI).

Configured by ``[plugins.pbx_asterisk]`` (see ``cf_pbx_asterisk.config`` and docs/asterisk.md).
Without a ``host`` the plugin is installed but idle and returns no source.
"""

from __future__ import annotations

from hookspecs import hookimpl
from hookspecs.types import CaptureSource, PluginContext

from .config import AsteriskConfigError, AsteriskSettings

__all__ = ["AsteriskConfigError", "AsteriskSettings", "cf_capture_sources"]


@hookimpl
def cf_capture_sources(ctx: PluginContext) -> list[CaptureSource]:
    if not ctx.config.get("host"):
        return []
    from .source import AsteriskSource

    settings = AsteriskSettings.from_mapping(ctx.config)
    return [AsteriskSource(settings, clock=ctx.clock, data_dir=ctx.data_dir)]
