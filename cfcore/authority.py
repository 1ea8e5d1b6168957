"""The system's own authority, made explicit.

Work that no person started (the purge job, the capture runner archiving a call, alert delivery)
runs under ``SYSTEM``, a request context like a user's. The guard allows it exactly the actions in
``SYSTEM_RIGHTS`` and nothing else, so that a code path that forgets to pass the user's context
is refused (and audited) instead of silently allowed. ``None`` is no longer a context.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from hookspecs.types import Actor, RequestContext

SYSTEM_USER = "system"

#: What the system may do on its own, and why. Everything else needs a person.
SYSTEM_RIGHTS: Mapping[str, str] = MappingProxyType({
    "retention.run": "the retention.purge job of cf serve deletes what is due",
    "keys.rotate": "a scheduled rotation creates a new key-encryption key; no data is read",
})

SYSTEM_ACTOR = Actor(user_id=f"sys:{SYSTEM_USER}", username=SYSTEM_USER, roles=("system",))  # type: ignore[arg-type]

SYSTEM = RequestContext(actor=SYSTEM_ACTOR, host="localhost", ip="127.0.0.1", function="system")


def system_context(function: str = "system") -> RequestContext:
    """``SYSTEM`` with the function that runs (audited as such), e.g. ``retention.purge``."""
    return RequestContext(actor=SYSTEM_ACTOR, host="localhost", ip="127.0.0.1", function=function)


def is_system(ctx: RequestContext) -> bool:
    return ctx.actor == SYSTEM_ACTOR


def require_context(ctx: object, what: str) -> RequestContext:
    """``ctx`` if it is a request context; ``TypeError`` otherwise. A service function that audits
    in someone's name calls this first, so that a caller who forgot the context is an error, not
    work done anonymously (the system's own work passes ``system_context(...)``)."""
    if not isinstance(ctx, RequestContext):
        raise TypeError(f"{what} needs a request context (a person's, or cfcore.authority.system_context(...) "
                        f"for the system's own work), got {type(ctx).__name__}")
    return ctx
