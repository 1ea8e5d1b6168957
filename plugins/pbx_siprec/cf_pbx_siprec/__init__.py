"""CallFort plugin pbx_siprec: a SIPREC recording server (RFC 7865/7866).

Configured by ``[plugins.pbx_siprec]`` (see ``cf_pbx_siprec.config`` and docs/siprec.md). Without a
``[[plugins.pbx_siprec.src]]`` entry the plugin is installed but idle and returns no source.
"""

from __future__ import annotations

from hookspecs import hookimpl
from hookspecs.types import CaptureSource, CaptureSourceType, PluginContext

from .config import SiprecConfigError, SiprecOptions, SiprecSettings

__all__ = ["SiprecConfigError", "SiprecOptions", "SiprecSettings", "cf_capture_sources"]


def create_sources(options: SiprecOptions, ctx: PluginContext) -> list[CaptureSource]:
    if not options.src:
        return []
    from .server import SiprecSource

    return [SiprecSource(SiprecSettings.from_options(options), clock=ctx.clock)]


@hookimpl
def cf_capture_sources() -> list[CaptureSourceType]:
    return [CaptureSourceType(name="siprec", create=create_sources, options=SiprecOptions,
                              description="SIPREC recording sessions from an SBC (RFC 7866)")]
