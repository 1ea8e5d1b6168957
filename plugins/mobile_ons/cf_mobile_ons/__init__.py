"""CallFort plugin mobile_ons: mobile advisors.

- **Dial-in mobile recording** through Asterisk ARI (a Stasis application): the advisor calls in,
  keys a PIN and the customer's number; the customer hears a versioned announcement and opts in by
  DTMF; both legs are recorded on separate channels (``cf_mobile_ons.stasis``, ``flow``).
- **ONS** (the mobile leg routed through the PBX) is recorded by ``pbx_asterisk`` and attributed by
  a dialplan-set channel variable (see docs/mobile.md).

Configured by ``[plugins.mobile_ons]`` (``cf_mobile_ons.config``); without ``ari_url`` the plugin
is installed but idle.
"""

from __future__ import annotations

from hookspecs import hookimpl
from hookspecs.types import CaptureSource, CaptureSourceType, FisRule, PluginContext

from .config import MobileConfigError, MobileOptions, MobileSettings
from .fis import RULES

__all__ = ["MobileConfigError", "MobileOptions", "MobileSettings", "cf_capture_sources", "cf_fis_rules", "create_sources"]


def create_sources(options: MobileOptions, ctx: PluginContext) -> list[CaptureSource]:
    """The dial-in source of ``[plugins.mobile_ons]`` (checked by ``MobileSettings``), or none
    without ``ari_url``."""
    if not options.ari_url:
        return []
    from .stasis import MobileSource

    return [MobileSource(MobileSettings.from_options(options), clock=ctx.clock, data_dir=ctx.data_dir)]


@hookimpl
def cf_capture_sources() -> list[CaptureSourceType]:
    return [CaptureSourceType(name="mobile_ons", create=create_sources, options=MobileOptions,
                              description="mobile advisors' dial-in recording through Asterisk ARI (Stasis)")]


@hookimpl
def cf_fis_rules() -> list[FisRule]:
    return list(RULES)
