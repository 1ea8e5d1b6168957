"""Capture: PBX adapters and recorders."""

from __future__ import annotations

from ._markers import hookspec
from .types import CaptureSourceType


@hookspec
def cf_capture_sources() -> list[CaptureSourceType]:
    """Register capture source kinds (a PBX adapter, a recorder) by name.

    :return: ``CaptureSourceType`` registrations. At start of ``cf serve`` / ``cf capture run`` the
        core calls each registration's ``create(options, ctx)`` with the registering plugin's
        section ``[plugins.<plugin>]`` (an ``options`` object when the registration names its
        class); ``create`` returns the sources to run, or ``[]`` when the plugin is installed but
        not configured. All results are collected; duplicate names are an error.

    Added in 1.0; changed in 1.1 (1.0: ``cf_capture_sources(ctx)`` returned the sources). Example::

        @attrs.frozen(kw_only=True)
        class AcmeOptions:
            host: str | None = None

        @hookimpl
        def cf_capture_sources():
            return [CaptureSourceType(
                name="acme", options=AcmeOptions,
                create=lambda opts, ctx: [AcmeSource(opts.host, clock=ctx.clock)] if opts.host else [])]
    """
