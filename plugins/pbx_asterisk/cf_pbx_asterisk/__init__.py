"""CallFort plugin pbx_asterisk: Capture from Asterisk through the Asterisk Manager Interface (AMI).

Configured by ``[plugins.pbx_asterisk]`` (see ``cf_pbx_asterisk.config`` and docs/asterisk.md).
Without a ``host`` the plugin is installed but idle and returns no source.
"""

from __future__ import annotations

from hookspecs import hookimpl
from hookspecs.types import CaptureSource, CaptureSourceType, PluginContext

from .config import AsteriskConfigError, AsteriskOptions, AsteriskSettings

__all__ = ["AsteriskConfigError", "AsteriskOptions", "AsteriskSettings", "cf_capture_sources"]


def create_sources(options: AsteriskOptions, ctx: PluginContext) -> list[CaptureSource]:
    if not options.host:
        return []
    from .source import AsteriskSource

    settings = AsteriskSettings.from_options(options)
    return [AsteriskSource(settings, clock=ctx.clock, data_dir=ctx.data_dir)]


@hookimpl
def cf_capture_sources() -> list[CaptureSourceType]:
    return [CaptureSourceType(name="asterisk", create=create_sources, options=AsteriskOptions,
                              description="Asterisk through the Asterisk Manager Interface (AMI)")]
