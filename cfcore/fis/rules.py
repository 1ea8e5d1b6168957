"""The irregularity rules in force: ``cf_fis_rules`` registrations merged with ``[fis.rules.<name>]``.

Each config section may set ``enabled`` (bool), ``severity`` (overrides what the rule reports:
info, warning, high, critical) and any of the rule's own options, with the type of its default.
A section naming no registered rule, or an option the rule does not have, is an error that lists
the choices.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import attrs

from hookspecs.types import FisRule, Severity

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..app import App

_CORE_KEYS = ("enabled", "severity")


@attrs.frozen(kw_only=True)
class ActiveRule:
    rule: FisRule
    options: Mapping[str, Any]
    enabled: bool
    severity: Severity | None = None

    @property
    def name(self) -> str:
        return self.rule.name

    @property
    def lookback(self) -> timedelta:
        """How far before the first new entry the rule needs to look (sliding windows)."""
        secs = max(float(self.options.get("lookback_seconds", 0) or 0),
                   2 * float(self.options.get("window_seconds", 0) or 0))
        return timedelta(seconds=secs)

    @property
    def lookback_entries(self) -> int:
        return int(self.options.get("lookback_entries", 0) or 0)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.rule.description, "enabled": self.enabled,
                "severity": self.severity.value if self.severity else None, "options": dict(self.options)}


def _same_kind(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def active_rules(app: App) -> list[ActiveRule]:
    """All registered rules with their effective options, in name order."""
    regs: dict[str, FisRule] = app.pm.fis_rules()
    section = app.config.section("fis.rules")
    path = app.config.path
    unknown = sorted(set(section) - set(regs))
    if unknown:
        raise ConfigError(f"{path}: [fis.rules.{unknown[0]}] names no FIS rule",
                          hint="choose one of: " + ", ".join(sorted(regs)))
    out = []
    for name in sorted(regs):
        rule = regs[name]
        cfg = section.get(name, {})
        if not isinstance(cfg, Mapping):
            raise ConfigError(f"{path}: [fis.rules.{name}] must be a table")
        opts = dict(rule.default_options)
        for key, value in cfg.items():
            if key in _CORE_KEYS:
                continue
            if key not in opts:
                raise ConfigError(f"{path}: fis.rules.{name}.{key} is not an option of rule {name}",
                                  hint="choose one of: " + ", ".join(sorted([*opts, *_CORE_KEYS])))
            if not _same_kind(opts[key], value):
                raise ConfigError(f"{path}: fis.rules.{name}.{key} must be {type(opts[key]).__name__}, "
                                  f"got {type(value).__name__}")
            opts[key] = value
        enabled = cfg.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{path}: fis.rules.{name}.enabled must be true or false")
        severity = None
        if "severity" in cfg:
            try:
                severity = Severity(cfg["severity"])
            except ValueError:
                raise ConfigError(f"{path}: fis.rules.{name}.severity is not a severity",
                                  hint="choose one of: " + ", ".join(s.value for s in Severity)) from None
        out.append(ActiveRule(rule=rule, options=opts, enabled=enabled, severity=severity))
    return out
