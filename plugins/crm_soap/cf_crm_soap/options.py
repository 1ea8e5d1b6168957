"""The ``[plugins.crm_soap]`` section: limits, the WS-Security window and one table per CRM.

::

    [plugins.crm_soap]
    max_body_bytes = 65536        # larger SOAP requests get 413
    clock_skew_seconds = 300      # wsu:Created may differ this much from CallFort's clock
    client_fault_status = 400     # HTTP status of a Client fault (WS-I BP asks 500; see docs/crm.md)

    [plugins.crm_soap.clients.main]   # one per CRM
    username = "crm-main"         # its technical account (WS-Security UsernameToken)
    password = { env = "CF_CRM_MAIN_PASSWORD" }
    allowed_users = ["adam", "berta"]   # whom this CRM may act for (the ActingUser header)
    notify_wsdl = "https://crm.example/soap/callfort?wsdl"   # outbound; omit for none
    notify_username = "callfort"
    notify_password = { env = "CF_CRM_MAIN_NOTIFY_PASSWORD" }
    notify_timeout_seconds = 10

Before 1.2 the section was ``[crm]`` (``[crm.clients.<name>]``); the core still reads it, with a
deprecation warning, while ``[plugins.crm_soap]`` is absent.

The core builds the section into ``CrmSoapOptions`` (``cf_plugin_options``, ``hookspecs.parse_options``):
a misspelt key, a wrong type or a password in clear stops start-up with the key named; the checks
below run as the object is built. The plugin's hooks get it as ``ctx.options``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

from hookspecs import Secret

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _between(low: float, high: float) -> Any:
    def check(_inst: object, attr: attrs.Attribute[Any], value: float) -> None:
        if not low <= value <= high:
            raise ValueError(f"{attr.name} must be from {low:g} to {high:g}")
    return check


def _nonempty(_inst: object, attr: attrs.Attribute[Any], value: str) -> None:
    if not value:
        raise ValueError(f"{attr.name} must not be empty")


def _generated(_inst: object, attr: attrs.Attribute[Any], value: str) -> None:
    if len(value) < 16:
        raise ValueError(f"{attr.name} must be at least 16 characters (a generated secret)")


def _users(_inst: object, attr: attrs.Attribute[Any], value: list[str]) -> None:
    if not all(u.strip() for u in value):
        raise ValueError(f"{attr.name} must be a list of user names")


def _http_url(_inst: object, attr: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not value.startswith(("https://", "http://")):
        raise ValueError(f"{attr.name} must be an http(s) URL")


@attrs.frozen(kw_only=True)
class CrmClientOptions:
    """``[plugins.crm_soap.clients.<name>]``: one CRM."""

    username: str = attrs.field(validator=_nonempty)
    password: Secret = attrs.field(repr=False, validator=_generated)
    allowed_users: list[str] = attrs.field(factory=list, validator=_users)
    notify_wsdl: str | None = attrs.field(default=None, validator=_http_url)
    notify_username: str | None = None
    notify_password: Secret | None = attrs.field(default=None, repr=False)
    notify_timeout_seconds: float = attrs.field(default=10.0, validator=_between(0.001, 120))


@attrs.frozen(kw_only=True)
class CrmSoapOptions:
    """``[plugins.crm_soap]``."""

    max_body_bytes: int = attrs.field(default=65536, validator=_between(1024, 10 * 1024 * 1024))
    clock_skew_seconds: int = attrs.field(default=300, validator=_between(1, 3600))
    client_fault_status: int = 400
    clients: Mapping[str, CrmClientOptions] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        if self.client_fault_status not in (400, 500):
            raise ValueError("client_fault_status must be 400 or 500")
        seen: dict[str, str] = {}
        for name, c in self.clients.items():
            if not _NAME.match(name):
                raise ValueError(f"clients.{name} must have a simple name (letters, digits, '._-')")
            if c.username in seen:
                raise ValueError(f"clients.{name}.username {c.username!r} is used by two CRMs "
                                 f"({seen[c.username]} and {name})")
            seen[c.username] = name


@attrs.frozen(kw_only=True)
class CrmClient:
    name: str
    username: str
    password: str = attrs.field(repr=False)
    allowed_users: frozenset[str]
    notify_wsdl: str | None = None
    notify_username: str | None = None
    notify_password: str | None = attrs.field(default=None, repr=False)
    notify_timeout_seconds: float = 10.0


@attrs.frozen(kw_only=True)
class CrmOptions:
    """What the service and the notifications use: the options with each CRM named."""

    max_body_bytes: int = 65536
    clock_skew_seconds: int = 300
    client_fault_status: int = 400
    clients: tuple[CrmClient, ...] = ()

    @classmethod
    def from_options(cls, o: CrmSoapOptions) -> CrmOptions:
        return cls(max_body_bytes=o.max_body_bytes, clock_skew_seconds=o.clock_skew_seconds,
                   client_fault_status=o.client_fault_status, clients=tuple(
                       CrmClient(name=name, username=c.username, password=c.password,
                                 allowed_users=frozenset(u.strip().lower() for u in c.allowed_users),
                                 notify_wsdl=c.notify_wsdl, notify_username=c.notify_username or None,
                                 notify_password=c.notify_password, notify_timeout_seconds=c.notify_timeout_seconds)
                       for name, c in o.clients.items()))

    def client_by_username(self, username: str) -> CrmClient | None:
        return next((c for c in self.clients if c.username == username), None)


def from_context(ctx: Any) -> CrmOptions:
    """The options the core built into ``ctx.options`` (``cf_plugin_options``)."""
    if not isinstance(ctx.options, CrmSoapOptions):
        raise RuntimeError("the core did not build [plugins.crm_soap] (it needs hookspecs 1.2)")
    return CrmOptions.from_options(ctx.options)
