"""In-tree default plugin: the default access policy (RBAC + owner-only + four-eyes).

``MATRIX`` is the single source of truth: docs/access.md shows it as a table (a test compares
the two) and the authorisation tests are driven from it.

Cells:

- ``allow``: allowed.
- ``own``: allowed when the target belongs to the actor (``target.owner_advisor_id ==
  actor.advisor_id``), denied otherwise.
- ``own/four-eyes``: allowed on the actor's own call; anyone else's needs four-eyes.
- ``four-eyes``: NEEDS_APPROVAL; the guard allows it under an APPROVED request of the same
  requester, action and target (``cfcore.access.approvals``).
- ``deny``: denied.

A user with several roles gets the most permissive answer of their roles. Other policy plugins
can only tighten the result: the guard lets any DENY win, then any NEEDS_APPROVAL.
Actions this policy does not know are left to other plugins (with no ALLOW they are denied).
"""

from __future__ import annotations

from hookspecs import hookimpl
from hookspecs.types import AccessDecision, AccessTarget, Actor, Decision, RequestContext

ROLE_ORDER = ("advisor", "supervisor", "qa_reviewer", "compliance", "dpo", "auditor", "administrator")

ALLOW, OWN, FOUR_EYES, DENY = "allow", "own", "four-eyes", "deny"
#: Own calls allowed, anyone else's under four-eyes (an advisor asking for a colleague's call).
OWN_ELSE_FOUR_EYES = "own/four-eyes"


def _row(advisor: str = DENY, supervisor: str = DENY, qa_reviewer: str = DENY, compliance: str = DENY,
         dpo: str = DENY, auditor: str = DENY, administrator: str = DENY) -> dict[str, str]:
    return {"advisor": advisor, "supervisor": supervisor, "qa_reviewer": qa_reviewer, "compliance": compliance,
            "dpo": dpo, "auditor": auditor, "administrator": administrator}


#: action -> role -> cell
MATRIX: dict[str, dict[str, str]] = {
    "recording.list": _row(advisor=OWN, supervisor=ALLOW, qa_reviewer=ALLOW, compliance=ALLOW, dpo=ALLOW,
                           auditor=ALLOW),
    "recording.show": _row(advisor=OWN, supervisor=ALLOW, qa_reviewer=ALLOW, compliance=ALLOW, dpo=ALLOW,
                           auditor=ALLOW),
    "recording.play": _row(advisor=OWN_ELSE_FOUR_EYES, supervisor=FOUR_EYES, qa_reviewer=FOUR_EYES, compliance=FOUR_EYES,
                           dpo=FOUR_EYES),
    "transcript.read": _row(advisor=OWN_ELSE_FOUR_EYES, supervisor=FOUR_EYES, qa_reviewer=FOUR_EYES,
                            compliance=FOUR_EYES, dpo=FOUR_EYES),
    "recording.export": _row(compliance=FOUR_EYES, dpo=FOUR_EYES),
    "recording.delete": _row(compliance=FOUR_EYES, dpo=FOUR_EYES),
    "recording.erase": _row(dpo=FOUR_EYES),
    "retention.extend": _row(compliance=FOUR_EYES, dpo=FOUR_EYES),
    "retention.shorten": _row(compliance=FOUR_EYES, dpo=FOUR_EYES),
    "retention.run": _row(compliance=ALLOW, dpo=ALLOW, administrator=ALLOW),
    "hold.set": _row(compliance=ALLOW, dpo=ALLOW),
    "hold.release": _row(compliance=FOUR_EYES, dpo=FOUR_EYES),
    "dsar.report": _row(dpo=ALLOW),
    "dsar.export": _row(dpo=FOUR_EYES),
    "audit.read": _row(compliance=ALLOW, dpo=ALLOW, auditor=ALLOW, administrator=ALLOW),
    "audit.export": _row(compliance=FOUR_EYES, dpo=FOUR_EYES, auditor=FOUR_EYES),
    "approval.read": _row(compliance=ALLOW, dpo=ALLOW, auditor=ALLOW),
    "users.manage": _row(administrator=ALLOW),
    "roles.change": _row(administrator=FOUR_EYES),
    "keys.rotate": _row(administrator=FOUR_EYES),
    "call.record_both": _row(advisor=OWN),
    "fis.read": _row(compliance=ALLOW, dpo=ALLOW, auditor=ALLOW),
    "breach.manage": _row(dpo=ALLOW),
    "store.repair": _row(administrator=ALLOW),
    "recording.ingest": _row(administrator=ALLOW),
    "sync.run": _row(administrator=ALLOW),
}

#: four-eyes action -> roles that may approve it (never the requester; see approvals.py).
APPROVERS: dict[str, frozenset[str]] = {
    "recording.play": frozenset({"supervisor", "compliance", "dpo"}),
    "transcript.read": frozenset({"supervisor", "compliance", "dpo"}),
    "recording.export": frozenset({"compliance", "dpo"}),
    "recording.delete": frozenset({"compliance", "dpo"}),
    "recording.erase": frozenset({"compliance", "dpo"}),
    "retention.extend": frozenset({"compliance", "dpo"}),
    "retention.shorten": frozenset({"compliance", "dpo"}),
    "hold.release": frozenset({"compliance", "dpo"}),
    "dsar.export": frozenset({"dpo", "compliance"}),
    "audit.export": frozenset({"dpo", "compliance"}),
    "roles.change": frozenset({"dpo", "compliance"}),
    "keys.rotate": frozenset({"compliance", "dpo"}),
}
#: Approvers of a four-eyes action a plugin adds and this table does not list.
DEFAULT_APPROVERS = frozenset({"compliance", "dpo"})

_RANK = {Decision.DENY: 0, Decision.NEEDS_APPROVAL: 1, Decision.ALLOW: 2}


def is_own(actor: Actor, target: AccessTarget) -> bool:
    return actor.advisor_id is not None and target.owner_advisor_id == actor.advisor_id


def cell_decision(cell: str, actor: Actor, target: AccessTarget) -> Decision:
    if cell == ALLOW:
        return Decision.ALLOW
    if cell == OWN:
        return Decision.ALLOW if is_own(actor, target) else Decision.DENY
    if cell == FOUR_EYES:
        return Decision.NEEDS_APPROVAL
    if cell == OWN_ELSE_FOUR_EYES:
        return Decision.ALLOW if is_own(actor, target) else Decision.NEEDS_APPROVAL
    return Decision.DENY


def approvers_for(action: str) -> frozenset[str]:
    return APPROVERS.get(action, DEFAULT_APPROVERS)


@hookimpl
def cf_access_decision(actor: Actor, action: str, target: AccessTarget,
                       context: RequestContext) -> AccessDecision | None:
    if action == "approval.approve":
        wanted = str(target.attributes.get("action", ""))
        roles = sorted(actor.roles & approvers_for(wanted))
        if roles:
            return AccessDecision(decision=Decision.ALLOW, reason=f"{roles[0]} approves {wanted}", by="default")
        return AccessDecision(decision=Decision.DENY, reason=f"no role that approves {wanted}", by="default")
    if action == "recording.delete" and target.kind == "retention":
        action = "retention.run"  # running the regular purge of expired recordings, not an early deletion
    row = MATRIX.get(action)
    if row is None:
        return None
    best: tuple[Decision, str] | None = None
    for role in sorted(actor.roles):
        if role not in row:
            continue
        d = cell_decision(row[role], actor, target)
        if best is None or _RANK[d] > _RANK[best[0]]:
            best = (d, f"{role}: {row[role]}")
    if best is None:
        return AccessDecision(decision=Decision.DENY, reason="no role", by="default")
    return AccessDecision(decision=best[0], reason=best[1], by="default")
