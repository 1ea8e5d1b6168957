"""Integrity: detectors of the fraud information system (FIS)."""

from __future__ import annotations

from ._markers import hookspec
from .types import FisRule


@hookspec
def cf_fis_rules() -> list[FisRule]:
    """Register irregularity detectors run over the audit stream by ``cf fis scan``.

    :return: ``FisRule`` registrations; ``[fis.rules.<name>]`` overrides ``default_options`` and
        ``enabled = false`` switches one off. All results are collected; duplicate names are an
        error.

    Added in 1.0. Example::

        @hookimpl
        def cf_fis_rules():
            return [FisRule(name="night-access", description="access at night", check=night)]
    """
