"""Sync: shipping a site's recordings to the central archive."""

from __future__ import annotations

from ._markers import hookspec
from .types import SyncTargetType


@hookspec
def cf_sync_targets() -> list[SyncTargetType]:
    """Register sync target types (e.g. ``ssh``). All results are collected; two registrations
    of one name are an error.

    ``[sync.targets.<name>] type = "<registered name>"`` on a site builds a target with
    ``create(options, ctx)`` (``options``: the section without ``type``, built with the
    registration's ``options`` class when it has one, see ``hookspecs.parse_options``); ``cf sync`` calls ``await target.connect()`` and moves the batch
    through the returned ``SyncConnection`` (see ``hookspecs.types.SyncTarget``). The core owns
    the protocol (manifests, resuming, receipts, hand-over); the target only moves bytes and
    raises ``SyncUnavailable`` (transient) or ``SyncRefused`` (changed host key, refused client
    key).

    :return: ``SyncTargetType`` registrations; duplicate names are an error.

    Added in 1.0. Example::

        @hookimpl
        def cf_sync_targets():
            return [SyncTargetType(name="ssh", create=SshTarget, options=SshOptions)]
    """
