"""Asking the access policies (the ``cf_access_decision`` hook) and combining their answers.

Only asks: neither audits nor consumes an approval. The guard (``guard.authorize``) and the
four-eyes module (``approvals``) both build on it, so neither needs the other at import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hookspecs.types import AccessDecision, AccessTarget, Decision, RequestContext

if TYPE_CHECKING:
    from ..app import App


def decide(app: App, ctx: RequestContext, action: str, target: AccessTarget) -> AccessDecision:
    """Combine all policy answers: any DENY wins, then NEEDS_APPROVAL, then ALLOW; no ALLOW = DENY.

    Only asks; neither audits nor consumes an approval."""
    answers = app.pm.access_decisions(ctx.actor, action, target, ctx)
    for wanted in (Decision.DENY, Decision.NEEDS_APPROVAL, Decision.ALLOW):
        hit = next((a for a in answers if a.decision is wanted), None)
        if hit is not None:
            return hit
    return AccessDecision(decision=Decision.DENY, reason="no policy allows this", by="default")
