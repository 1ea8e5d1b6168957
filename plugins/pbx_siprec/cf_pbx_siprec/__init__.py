"""CallFort plugin pbx_siprec: a SIPREC recording server (RFC 7865/7866).

Configured by ``[plugins.pbx_siprec]`` (see ``cf_pbx_siprec.config`` and docs/siprec.md). Without a
``[[plugins.pbx_siprec.src]]`` entry the plugin is installed but idle and returns no source.
"""

from __future__ import annotations

from hookspecs import hookimpl
from hookspecs.types import CaptureSource, PluginContext

from .config import SiprecConfigError, SiprecSettings

__all__ = ["SiprecConfigError", "SiprecSettings", "cf_capture_sources"]


@hookimpl
def cf_capture_sources(ctx: PluginContext) -> list[CaptureSource]:
    if not ctx.config.get("src"):
        return []
    from .server import SiprecSource

    return [SiprecSource(SiprecSettings.from_mapping(ctx.config), clock=ctx.clock)]
