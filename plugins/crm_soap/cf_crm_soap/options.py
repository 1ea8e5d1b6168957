"""The ``[crm]`` section: limits, the WS-Security window and one table per CRM.

::

    [crm]
    max_body_bytes = 65536        # larger SOAP requests get 413
    clock_skew_seconds = 300      # wsu:Created may differ this much from CallFort's clock
    client_fault_status = 400     # HTTP status of a Client fault (WS-I BP asks 500; see docs/crm.md)

    [crm.clients.main]            # one per CRM
    username = "crm-main"         # its technical account (WS-Security UsernameToken)
    password = { env = "CF_CRM_MAIN_PASSWORD" }
    allowed_users = ["adam", "berta"]   # whom this CRM may act for (the ActingUser header)
    notify_wsdl = "https://crm.example/soap/callfort?wsdl"   # outbound; omit for none
    notify_username = "callfort"
    notify_password = { env = "CF_CRM_MAIN_NOTIFY_PASSWORD" }
    notify_timeout_seconds = 10
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class OptionsError(ValueError):
    """The ``[crm]`` section is wrong; the message names the key."""


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
    max_body_bytes: int = 65536
    clock_skew_seconds: int = 300
    client_fault_status: int = 400
    clients: tuple[CrmClient, ...] = ()

    def client_by_username(self, username: str) -> CrmClient | None:
        return next((c for c in self.clients if c.username == username), None)


def _int(section: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = section.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise OptionsError(f"crm.{key} must be a whole number from {low} to {high}")
    return value


def _str(where: str, value: Any, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise OptionsError(f"{where} must be a non-empty string")
    return value


def parse(section: Mapping[str, Any]) -> CrmOptions:
    clients = []
    raw = section.get("clients", {})
    if not isinstance(raw, Mapping):
        raise OptionsError("[crm.clients] must be a table of CRMs")
    seen: set[str] = set()
    for name, c in raw.items():
        where = f"crm.clients.{name}"
        if not _NAME.match(str(name)) or not isinstance(c, Mapping):
            raise OptionsError(f"{where} must be a table with a simple name")
        username = _str(f"{where}.username", c.get("username"))
        password = _str(f"{where}.password", c.get("password"))
        assert username is not None and password is not None
        if len(password) < 16:
            raise OptionsError(f"{where}.password must be at least 16 characters (a generated secret)")
        if username in seen:
            raise OptionsError(f"{where}.username {username!r} is used by two CRMs")
        seen.add(username)
        users = c.get("allowed_users", [])
        if not isinstance(users, list) or not all(isinstance(u, str) and u for u in users):
            raise OptionsError(f"{where}.allowed_users must be a list of user names")
        timeout = c.get("notify_timeout_seconds", 10)
        if not isinstance(timeout, int | float) or not 0 < timeout <= 120:
            raise OptionsError(f"{where}.notify_timeout_seconds must be between 0 and 120")
        wsdl = _str(f"{where}.notify_wsdl", c.get("notify_wsdl"), required=False)
        if wsdl is not None and not wsdl.startswith(("https://", "http://")):
            raise OptionsError(f"{where}.notify_wsdl must be an http(s) URL")
        clients.append(CrmClient(
            name=str(name), username=username, password=password,
            allowed_users=frozenset(u.strip().lower() for u in users), notify_wsdl=wsdl,
            notify_username=_str(f"{where}.notify_username", c.get("notify_username"), required=False),
            notify_password=_str(f"{where}.notify_password", c.get("notify_password"), required=False),
            notify_timeout_seconds=float(timeout)))
    status = _int(section, "client_fault_status", 400, 400, 500)
    if status not in (400, 500):
        raise OptionsError("crm.client_fault_status must be 400 or 500")
    return CrmOptions(max_body_bytes=_int(section, "max_body_bytes", 65536, 1024, 10 * 1024 * 1024),
                      clock_skew_seconds=_int(section, "clock_skew_seconds", 300, 1, 3600),
                      client_fault_status=status, clients=tuple(clients))
