"""In-tree default plugin: the default access policy (RBAC + owner-only + four-eyes).

Until user management lands (issue 4) this allows administrators everything.
"""

from hookspecs import hookimpl
from hookspecs.types import AccessDecision, Decision


@hookimpl
def cf_access_decision(actor, action, target, context):  # type: ignore[no-untyped-def]
    if "administrator" in actor.roles:
        return AccessDecision(decision=Decision.ALLOW, reason="administrator", by="default")
    return None
