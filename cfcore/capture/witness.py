"""Which capture sources the deployment trusts to witness the customer's consent.

A source may report the customer's own opt-in (a DTMF "1" after the announcement) with the call's
ANSWERED event; the core then records it as consent and keeps the customer's audio. A buggy or
hostile adapter could report that for any call, so the deployment names the sources it trusts
to do so, per source and off by default::

    [capture.sources.mobile]
    consent_witness = true

A source not listed may still capture calls; its opt-in reports are refused, audited
(``call.consent`` with outcome ``refused``) and raise an FIS alert (rule ``untrusted-consent``),
and the customer's audio of the call stays off at ingest unless an advisor's request backs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from hookspecs.options import OptionsError, parse_options

from ..errors import ConfigError


@attrs.frozen(kw_only=True)
class SourcePolicy:
    """``[capture.sources.<name>]``: what the deployment trusts a capture source with."""

    #: the source may report the customer's own opt-in, and the core records it as consent
    consent_witness: bool = False


def source_policies(config: Any) -> dict[str, SourcePolicy]:
    """Every ``[capture.sources.<name>]`` of the config, checked (``ConfigError`` names the key)."""
    sources = config.section("capture").get("sources", {})
    if not isinstance(sources, Mapping):
        raise ConfigError(f"{config.path}: [capture.sources] must be a table of [capture.sources.<name>]")
    out: dict[str, SourcePolicy] = {}
    for name, section in sources.items():
        where = f"capture.sources.{name}"
        if not isinstance(section, Mapping):
            raise ConfigError(f"{config.path}: [{where}] must be a table (e.g. consent_witness = true)")
        try:
            out[str(name)] = parse_options(SourcePolicy, section, where=where)
        except OptionsError as exc:
            raise ConfigError(f"{config.path}: {exc}") from None
    return out


def is_consent_witness(config: Any, source: str) -> bool:
    """Whether ``source`` may witness a customer's consent (``consent_witness = true``)."""
    policy = source_policies(config).get(source)
    return policy is not None and policy.consent_witness
