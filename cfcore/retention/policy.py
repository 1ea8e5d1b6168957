"""How long a recording is kept: the rules of the plugins, overrides and the statutory floor."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy.orm import Session, object_session

from hookspecs.types import Direction, RecordingInfo, RetentionRule

from ..db.models import Recording
from ..db.models_retention import RetentionOverride
from .settings import choose_class, retention_settings

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger(__name__)

_LOOK_UP = object()




def info_of(rec: Recording, retention_class: str | None = None) -> RecordingInfo:
    """The plugin view of a recording (pseudonyms only)."""
    return RecordingInfo(
        id=rec.id or "", site=rec.site, source=rec.source, advisor_id=rec.advisor_id,
        direction=Direction(rec.direction), started_at=rec.started_at, ended_at=rec.ended_at,
        two_sided=bool(rec.two_sided), retention_class=retention_class or rec.retention_class or "",
        legal_hold=bool(rec.legal_hold), subject_pseudonyms=tuple(s.pseudonym for s in rec.subjects),
        state=rec.state or "archived")


def rules_for(app: App, info: RecordingInfo, settings: Mapping[str, Any] | None = None) -> list[RetentionRule]:
    """Every duty the retention plugins see for ``info``."""
    settings = retention_settings(app) if settings is None else settings
    rules: list[RetentionRule] = []
    rules.extend(app.pm.retention_rules(info, settings))
    return rules


@attrs.frozen(kw_only=True)
class RetentionDecision:
    """Why a recording is kept until when."""

    until: datetime | None
    rule: str | None
    retention_class: str
    rules: tuple[RetentionRule, ...]
    #: The latest statutory duty: retention never goes below it; no Art. 17 erasure before it.
    floor: RetentionRule | None
    override: RetentionOverride | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "until": self.until, "rule": self.rule, "class": self.retention_class,
            "rules": [{"name": r.name, "keep_until": r.keep_until, "legal_basis": r.legal_basis,
                       "purpose": r.purpose, "statutory": r.statutory} for r in self.rules],
            "floor": self.floor.keep_until if self.floor else None,
            "override": ({"kind": self.override.kind, "until": self.override.until, "set_at": self.override.set_at,
                          "approval_id": self.override.approval_id} if self.override else None),
        }


def decide_retention(app: App, rec: Recording, session: Session | None = None,
                     settings: Mapping[str, Any] | None = None, *,
                     override: RetentionOverride | None | object = _LOOK_UP) -> RetentionDecision:
    """Why ``rec`` is kept until when. ``override``: the recording's override when the caller
    loaded those of a batch already (None: it has none); else it is looked up in ``session``."""
    settings = retention_settings(app) if settings is None else settings
    cls = choose_class(settings, rec)
    rules = tuple(sorted(rules_for(app, info_of(rec, cls), settings), key=lambda r: (r.keep_until, r.name)))
    base = rules[-1] if rules else None
    statutory = [r for r in rules if r.statutory]
    floor = statutory[-1] if statutory else None
    until, rule = (base.keep_until, base.name) if base else (None, None)
    if override is _LOOK_UP:
        session = session or (object_session(rec) if rec.id else None)
        override = session.get(RetentionOverride, rec.id) if session is not None and rec.id else None
    assert override is None or isinstance(override, RetentionOverride)
    if override is not None:
        if override.kind == "extend" and (until is None or override.until > until):
            until, rule = override.until, "extended"
        elif override.kind == "shorten":
            if floor is not None and floor.keep_until >= override.until:
                target, name = floor.keep_until, floor.name
            else:
                target, name = override.until, "shortened"
            if until is None or target < until:
                until, rule = target, name
    return RetentionDecision(until=until, rule=rule, retention_class=cls, rules=rules, floor=floor,
                             override=override)


def compute_retention(app: App, rec: Recording | RecordingInfo) -> tuple[datetime | None, str | None]:
    """``(keep_until, rule name)`` for a recording (an ORM row, attached or not, or a RecordingInfo).

    ``(None, None)`` when no rule applies: such a recording is never purged automatically.
    """
    if isinstance(rec, RecordingInfo):
        rules = rules_for(app, rec)
        if not rules:
            return None, None
        best = max(rules, key=lambda r: (r.keep_until, r.name))
        return best.keep_until, best.name
    d = decide_retention(app, rec)
    return d.until, d.rule


def apply_retention(app: App, session: Session, rec: Recording) -> tuple[datetime | None, str | None]:
    """Set ``retention_class``, ``retention_until`` and ``retention_rule`` on ``rec``.

    Ingest calls it inside its catalog transaction before computing ``row_digest``.
    """
    d = decide_retention(app, rec, session)
    rec.retention_class = d.retention_class
    rec.retention_until = d.until
    rec.retention_rule = d.rule
    return d.until, d.rule
