"""Notification: getting alerts to the data-protection officer."""

from __future__ import annotations

from ._markers import hookspec
from .types import NotifierType


@hookspec
def cf_notifiers() -> list[NotifierType]:
    """Register notifier types (e-mail, webhook, …). A ``[notify.<name>]`` section with
    ``type = "<type>"`` builds one; the core delivers every alert to each, retrying until it is
    delivered, and audits each delivery. All results are collected.

    Added in 1.0. Example::

        @hookimpl
        def cf_notifiers():
            return [NotifierType(name="smtp", create=lambda opts, ctx: SmtpNotifier(**opts))]
    """
