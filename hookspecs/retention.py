"""Retention: how long a recording is kept, and the last word before it goes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._markers import hookspec
from .types import PluginContext, RecordingInfo, RetentionRule, Tombstone


@hookspec
def cf_retention_rules(recording: RecordingInfo, settings: Mapping[str, Any]) -> list[RetentionRule]:
    """Return the duties to keep ``recording``. All results are collected; the recording is kept
    until the latest ``keep_until`` (see ``docs/retention.md``).

    :param recording: the recording (no customer identifiers in clear).
    :param settings: the deployment's ``[retention]`` config section (read-only); a plugin keeps
        its own options in a sub-table ``[retention.<plugin>]``. Implementations may omit it.
    :return: a list of ``RetentionRule`` (empty: no duty from this plugin). A rule with
        ``statutory=True`` is a legal obligation: retention is never shortened below it and
        Art. 17 erasure is refused while it runs.

    Added in 1.0. Example::

        @hookimpl
        def cf_retention_rules(recording):
            if recording.retention_class == "mifid":
                return [RetentionRule(name="mifid-5y", keep_until=recording.ended_at + FIVE_YEARS,
                                      legal_basis="MiFID II Art. 16(7)", statutory=True)]
            return []
    """


@hookspec(firstresult=True)
def cf_before_purge(recording: RecordingInfo) -> str | None:
    """Veto a purge: return a reason to keep the recording, or ``None``.

    firstresult: the first non-None reason stops the purge of this recording (it is logged).

    Added in 1.0.
    """



@hookspec
def cf_after_purge(tombstone: Tombstone, event_id: str, ctx: PluginContext) -> None:
    """Called after a recording was purged and its key destroyed. Results are ignored.

    Delivered through the core's outbox like ``cf_recording_archived``: committed with the purge,
    each plugin called alone with its own ``ctx``; an exception is audited and retried later with
    the same ``event_id`` (the idempotency key). Implementations may omit ``event_id`` and ``ctx``.

    Added in 1.0; ``event_id``, ``ctx`` and the outbox in 1.1.
    """
