"""Capture: PBX adapters and recorders."""

from __future__ import annotations

from ._markers import hookspec
from .types import CaptureSource, PluginContext


@hookspec
def cf_capture_sources(ctx: PluginContext) -> list[CaptureSource]:
    """Return the capture sources this plugin runs for the deployment.

    :param ctx: the plugin's config section (``[plugins.<name>]``), clock and data directory.
    :return: sources the core starts with ``run(sink)`` and steers with ``set_mode``; an empty list
        when the plugin is installed but not configured. All results are collected.

    Added in 1.0. Example::

        @hookimpl
        def cf_capture_sources(ctx):
            return [MyPbxSource(host=ctx.config["host"], clock=ctx.clock)]
    """
