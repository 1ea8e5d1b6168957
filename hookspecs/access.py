"""Access policy: who may do what to which target."""

from __future__ import annotations

from ._markers import hookspec
from .types import AccessDecision, AccessTarget, Actor, ApprovalAction, RequestContext


@hookspec
def cf_access_decision(
    actor: Actor, action: str, target: AccessTarget, context: RequestContext
) -> AccessDecision | None:
    """Decide one access. All results are collected and combined: any DENY wins, then any
    NEEDS_APPROVAL, then ALLOW; ``None`` abstains. With no ALLOW at all the access is denied.

    :param actor: the user, with roles.
    :param action: e.g. ``recording.play``, ``recording.export``, ``retention.shorten``.
    :param target: what is accessed, with its owner advisor where it has one.
    :param context: host, IP, function and the approval the request runs under, if any.

    Added in 1.0. Example (a works-council rule)::

        @hookimpl
        def cf_access_decision(actor, action, target, context):
            if action == "recording.play" and "supervisor" in actor.roles:
                return AccessDecision(decision=Decision.NEEDS_APPROVAL, reason="works agreement §4")
            return None

    A failing implementation counts as a DENY in its name (fail closed) and is audited.
    """


@hookspec
def cf_approval_actions() -> list[ApprovalAction]:
    """Register four-eyes actions and what runs once one is approved.

    :return: ``ApprovalAction`` registrations. All results are collected; two registrations of one
        name are an error unless one of them is a ``fallback``. ``cf approvals request <action>``
        accepts only registered actions.

    Added in 1.1. Example::

        @hookimpl
        def cf_approval_actions():
            return [ApprovalAction(name="crm.unlink", target_kind="recording", execute=unlink)]
    """
