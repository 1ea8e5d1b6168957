"""Sync: shipping a site's recordings to the central archive."""

from __future__ import annotations

from ._markers import hookspec
from .types import SyncTargetType


@hookspec
def cf_sync_targets() -> list[SyncTargetType]:
    """Register sync target types (e.g. ``ssh``). All results are collected.

    :return: ``SyncTargetType`` registrations; duplicate names are an error.

    Provisional: the core does not call this hook yet (the site-sync issue makes it real).

    Added in 1.0. Example::

        @hookimpl
        def cf_sync_targets():
            return [SyncTargetType(name="ssh", create=lambda opts, ctx: SshTarget(**opts))]
    """
