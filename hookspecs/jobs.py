"""Background work of ``cf serve``: jobs that run beside the API."""

from __future__ import annotations

from ._markers import hookspec
from .types import BackgroundJob


@hookspec
def cf_background_jobs() -> list[BackgroundJob]:
    """Register jobs that ``cf serve`` runs in its own process (purge, alert delivery, capture).

    :return: ``BackgroundJob`` registrations. All results are collected; duplicate names are an
        error. A job whose run raises is logged and retried at its next interval; it never stops
        the server or the other jobs. ``cf serve`` reports each job's runs and last error.

    Added in 1.1. Example::

        @hookimpl
        def cf_background_jobs():
            return [BackgroundJob(name="acme.resync", interval_seconds=3600, run=lambda app: resync())]
    """
