"""CallFort plugin pbx_asterisk: Capture from Asterisk through the Asterisk Manager Interface (AMI).

Configured by ``[plugins.pbx_asterisk]`` (see ``cf_pbx_asterisk.config`` and docs/asterisk.md).
Without a ``host`` the plugin is installed but idle and returns no source.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hookspecs import hookimpl
from hookspecs.types import CaptureSource, CaptureSourceType, PluginContext

from .config import AsteriskConfigError, AsteriskSettings

__all__ = ["AsteriskConfigError", "AsteriskSettings", "cf_capture_sources"]


def create_sources(options: Mapping[str, Any], ctx: PluginContext) -> list[CaptureSource]:
    if not options.get("host"):
        return []
    from .source import AsteriskSource

    settings = AsteriskSettings.from_mapping(options)
    return [AsteriskSource(settings, clock=ctx.clock, data_dir=ctx.data_dir)]


@hookimpl
def cf_capture_sources() -> list[CaptureSourceType]:
    return [CaptureSourceType(name="asterisk", create=create_sources,
                              description="Asterisk through the Asterisk Manager Interface (AMI)")]
