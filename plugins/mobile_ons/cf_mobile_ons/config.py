"""``[plugins.mobile_ons]``: the dial-in (ARI) settings, validated (see docs/mobile.md)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from hookspecs.options import OptionsError, Secret, parse_options

from .numbers import DEFAULT_ALLOWED, DEFAULT_BLOCKED, NumberPolicy
from .pins import is_pin_hash

if TYPE_CHECKING:
    from .flow import Announcement  # imported where used: flow's many classes cost every cf command


class MobileConfigError(ValueError):
    """The section is incomplete or wrong; the message names the key."""


_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


WHERE = "plugins.mobile_ons"


@attrs.frozen(kw_only=True)
class AdvisorOptions:
    """``[plugins.mobile_ons.advisors.<advisor id>]``."""

    pin_hash: str = attrs.field(repr=False)
    mobile: str | None = None


@attrs.frozen(kw_only=True)
class AnnouncementOptions:
    """``[plugins.mobile_ons.announcement]``: the versioned text the customer hears."""

    id: str
    version: str
    media: str
    sha256: str


@attrs.frozen(kw_only=True)
class MobileOptions:
    """``[plugins.mobile_ons]`` as written, typed; the core builds it with
    ``hookspecs.parse_options`` (unknown keys, wrong types and secrets in clear refused with the
    key named). ``MobileSettings.from_options`` adds the checks of each value's form."""

    name: str = "mobile"
    #: without it the plugin is installed but idle
    ari_url: str | None = None
    ari_username: str | None = None
    ari_password: Secret | None = attrs.field(default=None, repr=False)
    app: str = "callfort-mobile"
    dial_endpoint: str | None = None
    caller_id: str | None = None
    dial_timeout: int = 30
    advisors: Mapping[str, AdvisorOptions] = attrs.field(factory=dict)
    country_code: str = "49"
    allowed_prefixes: list[str] = attrs.field(factory=lambda: list(DEFAULT_ALLOWED))
    blocked_prefixes: list[str] = attrs.field(factory=lambda: list(DEFAULT_BLOCKED))
    daily_cap: int = 20
    unrecorded: str = "hangup"
    opt_in_digit: str = "1"
    decline_digit: str = "2"
    input_timeout: float = 20.0
    optin_timeout: float = 20.0
    lockout_failures: int = 6
    lockout_seconds: float = 3600.0
    announcement: AnnouncementOptions | None = None
    finish_timeout: float = 10.0
    site: str | None = None


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
        """Settings from a section as a mapping (what ``[plugins.mobile_ons]`` holds)."""
        try:
            return cls.from_options(parse_options(MobileOptions, cfg, where=WHERE))
        except OptionsError as exc:
            raise MobileConfigError(str(exc)) from None

    @classmethod
    def from_options(cls, o: MobileOptions) -> MobileSettings:
        """The checks of each value's form and of keys that go together; each message names the key."""
        for key in ("ari_url", "ari_username", "ari_password", "dial_endpoint", "announcement"):
            if not getattr(o, key):
                raise MobileConfigError(f"{WHERE}.{key} is required")
        assert o.ari_url and o.ari_username and o.ari_password and o.dial_endpoint and o.announcement
        if not _NAME.match(o.app):
            raise MobileConfigError(f"{WHERE}.app may hold letters, digits, '_', '.', '-' only")
        endpoint = o.dial_endpoint
        if endpoint.count("{number}") != 1 or any(c in endpoint for c in " ,;&|()'\"\\\r\n"):
            raise MobileConfigError(f"{WHERE}.dial_endpoint must contain {{number}} once, e.g. "
                                    "'PJSIP/{number}@carrier', and no spaces, commas, quotes or brackets")
        advisors: dict[str, Advisor] = {}
        for adv_id, entry in o.advisors.items():
            if not _NAME.match(adv_id):
                raise MobileConfigError(f"{WHERE}.advisors.{adv_id} is not an advisor id (letters, digits, '_.-')")
            if not is_pin_hash(entry.pin_hash):
                raise MobileConfigError(f"{WHERE}.advisors.{adv_id}.pin_hash must be an argon2id hash "
                                        "(make one with 'cf mobile hash-pin')")
            if entry.mobile is not None and not _E164.match(entry.mobile):
                raise MobileConfigError(f"{WHERE}.advisors.{adv_id}.mobile must be E.164 (+491701234567)")
            advisors[adv_id] = Advisor(advisor_id=adv_id, mobile=entry.mobile, pin_hash=entry.pin_hash)
        ann = o.announcement
        from .flow import Announcement

        announcement = Announcement(id=ann.id, version=ann.version, media=ann.media, sha256=ann.sha256.lower())
        if not re.fullmatch(r"[0-9a-f]{64}", announcement.sha256):
            raise MobileConfigError(f"{WHERE}.announcement.sha256 must be the SHA-256 (hex) of the sound file")
        if not re.fullmatch(r"sound:[A-Za-z0-9_/.-]{1,120}", announcement.media) or ".." in announcement.media:
            raise MobileConfigError(f"{WHERE}.announcement.media must be 'sound:<name>'")
        if o.caller_id is not None and not _E164.match(o.caller_id):
            raise MobileConfigError(f"{WHERE}.caller_id must be E.164")
        try:
            numbers = NumberPolicy(country_code=o.country_code, allowed=tuple(o.allowed_prefixes),
                                   blocked=tuple(o.blocked_prefixes))
        except ValueError as exc:
            raise MobileConfigError(f"{WHERE}: {exc}") from None
        if o.unrecorded not in ("hangup", "continue"):
            raise MobileConfigError(f"{WHERE}.unrecorded must be 'hangup' or 'continue'")
        return cls(
            name=o.name, ari_url=o.ari_url, ari_username=o.ari_username, ari_password=str(o.ari_password),
            app=o.app, dial_endpoint=endpoint, caller_id=o.caller_id, dial_timeout=o.dial_timeout,
            advisors=advisors, numbers=numbers, daily_cap=o.daily_cap, unrecorded=o.unrecorded,
            opt_in_digit=o.opt_in_digit, decline_digit=o.decline_digit, input_timeout=o.input_timeout,
            optin_timeout=o.optin_timeout, lockout_failures=o.lockout_failures, lockout_seconds=o.lockout_seconds,
            announcement=announcement, finish_timeout=o.finish_timeout, site=o.site,
        )
