"""The ``[retention]`` section and the choice of a recording's retention class."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..db.models import Recording
from ..defaults.retention_rules import ADVISOR_ONLY_CLASS, MIFID_CLASS, class_kind
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger(__name__)


_CLASS_KINDS = ("mifid", "consent", "advisor-only")




def retention_settings(app: App) -> Mapping[str, Any]:
    """The validated ``[retention]`` section (defaults filled in)."""
    cfg = app.config
    section = dict(cfg.section("retention"))
    mifid_years = cfg.get("retention.mifid_years", int, 5)
    max_years = cfg.get("retention.mifid_max_years", int, 7)
    days = cfg.get("retention.advisor_only_days", int, 30)
    interval = cfg.get("retention.purge_interval_seconds", int, 86400)
    if mifid_years < 5:
        raise ConfigError(f"{cfg.path}: retention.mifid_years is {mifid_years}; MiFID II Art. 16(7) requires at least 5")
    if max_years < mifid_years:
        raise ConfigError(f"{cfg.path}: retention.mifid_max_years ({max_years}) is below mifid_years ({mifid_years})")
    if days < 0:
        raise ConfigError(f"{cfg.path}: retention.advisor_only_days must be 0 or more")
    if interval <= 0:
        raise ConfigError(f"{cfg.path}: retention.purge_interval_seconds must be positive")
    classes = section.get("classes", {})
    if not isinstance(classes, Mapping):
        raise ConfigError(f"{cfg.path}: [retention.classes] must be a table of classes")
    for name, opts in classes.items():
        where = f"{cfg.path}: retention.classes.{name}"
        if not isinstance(opts, Mapping):
            raise ConfigError(f"{where} must be a table")
        if len(name) > 32 or name in (MIFID_CLASS, ADVISOR_ONLY_CLASS):
            raise ConfigError(f"{where}: class names are at most 32 characters and not '{MIFID_CLASS}' or '{ADVISOR_ONLY_CLASS}'")
        kind = opts.get("kind", "mifid")
        if kind not in _CLASS_KINDS:
            raise ConfigError(f"{where}.kind must be one of: {', '.join(_CLASS_KINDS)}")
        for key in ("years", "days"):
            if key in opts and (not isinstance(opts[key], int) or isinstance(opts[key], bool) or opts[key] < 0):
                raise ConfigError(f"{where}.{key} must be a whole number of {key}")
        if kind == "mifid":
            if "days" in opts:
                raise ConfigError(f"{where}: a MiFID class is kept in years (years = {mifid_years}..{max_years})")
            years = opts.get("years", mifid_years)
            if not mifid_years <= years <= max_years:
                raise ConfigError(f"{where}.years must be between {mifid_years} and {max_years} (MiFID II Art. 16(7))")
        for key in ("advisors", "sites", "sources"):
            value = opts.get(key, [])
            if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                raise ConfigError(f"{where}.{key} must be a list of strings")
    section.update(mifid_years=mifid_years, mifid_max_years=max_years, advisor_only_days=days,
                   purge_interval_seconds=interval, classes=dict(classes))
    return section


def _fits(kind: str | None, two_sided: bool) -> bool:
    return kind in ("mifid", "consent") if two_sided else kind == "advisor-only"


def choose_class(settings: Mapping[str, Any], rec: Recording) -> str:
    """The retention class of a recording: its own when known and fitting, else the first
    configured class whose selectors (``advisors``, ``sites``, ``sources``) all match, else
    ``mifid`` (two-sided) or ``advisor-only``."""
    two_sided = bool(rec.two_sided)
    current = rec.retention_class
    if current and _fits(class_kind(settings, current), two_sided):
        return current
    for name, opts in settings.get("classes", {}).items():
        if not _fits(str(opts.get("kind", "mifid")), two_sided):
            continue
        selectors = {"advisors": rec.advisor_id, "sites": rec.site, "sources": rec.source}
        given = [(key, value) for key, value in selectors.items() if opts.get(key)]
        if given and all(value in opts[key] for key, value in given):
            return str(name)
    return MIFID_CLASS if two_sided else ADVISOR_ONLY_CLASS
