"""The role of a deployment and its ``[sync]`` settings.

``[deployment] role``: ``standalone`` (default: records and archives itself), ``site`` (records
locally, hands everything to the archive every night) or ``archive`` (the central catalog: after a
hand-over it is the one truth for access, retention and reports).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import time
from typing import Any

import attrs

from ..errors import ConfigError

ROLES = ("standalone", "site", "archive")
LOCAL_KEY_CHOICES = ("until-handover", "none")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def role(config: Any) -> str:
    value = config.get("deployment.role", str, "standalone")
    if value not in ROLES:
        raise ConfigError(f"{config.path}: deployment.role '{value}' is unknown", hint="choose one of: " + ", ".join(ROLES))
    return str(value)


def require_role(config: Any, wanted: str, command: str) -> None:
    actual = role(config)
    if actual != wanted:
        raise ConfigError(f"{command} needs a deployment with role '{wanted}'; this one is '{actual}'",
                          hint=f"set [deployment] role = \"{wanted}\" in {config.path}")


def _hhmm(value: str, where: str) -> time:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ConfigError(f"{where} must be HH:MM-HH:MM, got {value!r}")
    return time(int(m.group(1)), int(m.group(2)))


@attrs.frozen(kw_only=True)
class SiteSettings:
    site: str
    target: str
    target_options: Mapping[str, Any]
    archive_public_key: str
    archive_signing_key: str
    local_key: str
    batch_recordings: int
    bandwidth_bytes_per_s: int
    window: tuple[time, time]
    timezone: str
    chunk_size: int
    parallel_objects: int


@attrs.frozen(kw_only=True)
class ArchiveSettings:
    inbox: str
    site_keys: Mapping[str, str]  # site -> Ed25519 public key (hex) of its manifests
    overdue_nights: int


def _sync(config: Any) -> Mapping[str, Any]:
    return config.section("sync")


def site_local_key(config: Any) -> str:
    """``until-handover`` (the site keeps its own wrapped copy until the receipt) or ``none``."""
    value = config.get("sync.local_key", str, "until-handover")
    if value not in LOCAL_KEY_CHOICES:
        raise ConfigError(f"{config.path}: sync.local_key '{value}' is unknown",
                          hint="choose one of: " + ", ".join(LOCAL_KEY_CHOICES))
    return str(value)


def site_settings(config: Any) -> SiteSettings:
    require_role(config, "site", "sending to the archive")
    site = config.site
    if not NAME_RE.match(site):
        raise ConfigError(f"{config.path}: deployment.site '{site}' must be lower-case letters, digits, - or _")
    target = config.get("sync.target", str, "archive")
    targets = config.section("sync.targets")
    if target not in targets:
        raise ConfigError(f"{config.path}: sync.target '{target}' has no [sync.targets.{target}] section",
                          hint="choose one of: " + (", ".join(targets) or "(none defined)"))
    opts = targets[target]
    if not isinstance(opts, Mapping) or not isinstance(opts.get("type"), str):
        raise ConfigError(f"{config.path}: sync.targets.{target}.type is required (e.g. \"ssh\")")
    window_s = config.get("sync.window", str, "01:00-05:00")
    a, _, b = window_s.partition("-")
    window = (_hhmm(a, f"{config.path}: sync.window"), _hhmm(b or "x", f"{config.path}: sync.window"))
    kbps = config.get("sync.bandwidth_kbps", int, 0)
    batch = config.get("sync.batch_recordings", int, 500)
    if kbps < 0 or batch < 1:
        raise ConfigError(f"{config.path}: sync.bandwidth_kbps must be >= 0 and sync.batch_recordings >= 1")
    return SiteSettings(
        site=site, target=target, target_options=dict(opts),
        archive_public_key=config.get("sync.archive_public_key", str),
        archive_signing_key=config.get("sync.archive_signing_key", str),
        local_key=site_local_key(config), batch_recordings=batch, bandwidth_bytes_per_s=kbps * 1000 // 8,
        window=window, timezone=config.get("sync.timezone", str, "Europe/Berlin"),
        chunk_size=config.get("sync.chunk_size", int, 4 * 1024 * 1024),
        parallel_objects=max(1, config.get("sync.parallel_objects", int, 4)))


def archive_settings(config: Any) -> ArchiveSettings:
    require_role(config, "archive", "receiving from sites")
    inbox = str(config.resolve_path(config.get("sync.inbox", str)))
    sites = config.section("sync.sites")
    keys: dict[str, str] = {}
    for name, opts in sites.items():
        if not NAME_RE.match(name):
            raise ConfigError(f"{config.path}: [sync.sites.{name}]: a site name is lower-case letters, digits, - or _")
        if not isinstance(opts, Mapping) or not isinstance(opts.get("signing_key"), str):
            raise ConfigError(f"{config.path}: sync.sites.{name}.signing_key is required",
                              hint="the site's 'cf sync keys' prints it")
        keys[name] = opts["signing_key"]
    return ArchiveSettings(inbox=inbox, site_keys=keys, overdue_nights=config.get("sync.overdue_nights", int, 2))
