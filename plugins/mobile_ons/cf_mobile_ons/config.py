"""``[plugins.mobile_ons]``: the dial-in (ARI) settings, validated (see docs/mobile.md)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .numbers import DEFAULT_ALLOWED, DEFAULT_BLOCKED, NumberPolicy
from .pins import is_pin_hash

if TYPE_CHECKING:
    from .flow import Announcement  # imported where used: flow's many classes cost every cf command


class MobileConfigError(ValueError):
    """The section is incomplete or wrong; the message names the key."""


_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _get(cfg: Mapping[str, Any], key: str, kind: type | tuple[type, ...], default: Any = None,
         required: bool = False) -> Any:
    if key not in cfg:
        if required:
            raise MobileConfigError(f"plugins.mobile_ons.{key} is required")
        return default
    value = cfg[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MobileConfigError(f"plugins.mobile_ons.{key} has the wrong type ({type(value).__name__})")
    return value


@attrs.frozen(kw_only=True)
class Advisor:
    advisor_id: str
    mobile: str | None
    pin_hash: str = attrs.field(repr=False)


@attrs.frozen(kw_only=True)
class MobileSettings:
    name: str
    ari_url: str
    ari_username: str
    ari_password: str = attrs.field(repr=False)
    app: str
    dial_endpoint: str
    caller_id: str | None
    dial_timeout: int
    advisors: Mapping[str, Advisor]
    numbers: NumberPolicy
    daily_cap: int
    unrecorded: str
    opt_in_digit: str
    decline_digit: str
    input_timeout: float
    optin_timeout: float
    lockout_failures: int
    lockout_seconds: float
    announcement: Announcement
    finish_timeout: float
    site: str | None

    @property
    def mobiles(self) -> dict[str, str]:
        return {a.mobile: a.advisor_id for a in self.advisors.values() if a.mobile}

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> MobileSettings:
        app = _get(cfg, "app", str, "callfort-mobile")
        if not _NAME.match(app):
            raise MobileConfigError("plugins.mobile_ons.app may hold letters, digits, '_', '.', '-' only")
        endpoint = _get(cfg, "dial_endpoint", str, required=True)
        if endpoint.count("{number}") != 1 or any(c in endpoint for c in " ,;&|()'\"\\\r\n"):
            raise MobileConfigError("plugins.mobile_ons.dial_endpoint must contain {number} once, e.g. "
                                    "'PJSIP/{number}@carrier', and no spaces, commas, quotes or brackets")
        advisors: dict[str, Advisor] = {}
        for adv_id, entry in _get(cfg, "advisors", Mapping, {}).items():
            if not isinstance(entry, Mapping) or not _NAME.match(str(adv_id)):
                raise MobileConfigError(f"plugins.mobile_ons.advisors.{adv_id} must be a table (mobile, pin_hash)")
            pin_hash = entry.get("pin_hash")
            if not isinstance(pin_hash, str) or not is_pin_hash(pin_hash):
                raise MobileConfigError(f"plugins.mobile_ons.advisors.{adv_id}.pin_hash must be an argon2id hash "
                                        "(make one with 'cf mobile hash-pin')")
            mobile = entry.get("mobile")
            if mobile is not None and (not isinstance(mobile, str) or not _E164.match(mobile)):
                raise MobileConfigError(f"plugins.mobile_ons.advisors.{adv_id}.mobile must be E.164 (+491701234567)")
            advisors[str(adv_id)] = Advisor(advisor_id=str(adv_id), mobile=mobile, pin_hash=pin_hash)
        ann = _get(cfg, "announcement", Mapping, required=True)
        from .flow import Announcement

        try:
            announcement = Announcement(id=str(ann["id"]), version=str(ann["version"]), media=str(ann["media"]),
                                        sha256=str(ann["sha256"]).lower())
        except KeyError as exc:
            raise MobileConfigError(f"plugins.mobile_ons.announcement.{exc.args[0]} is required") from None
        if not re.fullmatch(r"[0-9a-f]{64}", announcement.sha256):
            raise MobileConfigError("plugins.mobile_ons.announcement.sha256 must be the SHA-256 (hex) of the sound file")
        if not re.fullmatch(r"sound:[A-Za-z0-9_/.-]{1,120}", announcement.media) or ".." in announcement.media:
            raise MobileConfigError("plugins.mobile_ons.announcement.media must be 'sound:<name>'")
        caller_id = _get(cfg, "caller_id", str)
        if caller_id is not None and not _E164.match(caller_id):
            raise MobileConfigError("plugins.mobile_ons.caller_id must be E.164")
        try:
            numbers = NumberPolicy(country_code=_get(cfg, "country_code", str, "49"),
                                   allowed=tuple(_get(cfg, "allowed_prefixes", list, list(DEFAULT_ALLOWED))),
                                   blocked=tuple(_get(cfg, "blocked_prefixes", list, list(DEFAULT_BLOCKED))))
        except ValueError as exc:
            raise MobileConfigError(f"plugins.mobile_ons: {exc}") from None
        unrecorded = _get(cfg, "unrecorded", str, "hangup")
        if unrecorded not in ("hangup", "continue"):
            raise MobileConfigError("plugins.mobile_ons.unrecorded must be 'hangup' or 'continue'")
        return cls(
            name=_get(cfg, "name", str, "mobile"),
            ari_url=_get(cfg, "ari_url", str, required=True),
            ari_username=_get(cfg, "ari_username", str, required=True),
            ari_password=str(_get(cfg, "ari_password", str, required=True)),
            app=app, dial_endpoint=endpoint, caller_id=caller_id,
            dial_timeout=_get(cfg, "dial_timeout", int, 30),
            advisors=advisors, numbers=numbers,
            daily_cap=_get(cfg, "daily_cap", int, 20),
            unrecorded=unrecorded,
            opt_in_digit=_get(cfg, "opt_in_digit", str, "1"),
            decline_digit=_get(cfg, "decline_digit", str, "2"),
            input_timeout=_get(cfg, "input_timeout", float, 20.0),
            optin_timeout=_get(cfg, "optin_timeout", float, 20.0),
            lockout_failures=_get(cfg, "lockout_failures", int, 6),
            lockout_seconds=_get(cfg, "lockout_seconds", float, 3600.0),
            announcement=announcement,
            finish_timeout=_get(cfg, "finish_timeout", float, 10.0),
            site=_get(cfg, "site", str),
        )
