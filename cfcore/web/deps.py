"""FastAPI dependencies: the deployment, the client's address, and the authenticated request context.

Authentication: ``Authorization: Bearer <API token or session token>`` or the ``cf_session``
cookie set by ``POST /api/auth/login``.

Who and where, for the audit trail:

- IP address: the TCP peer of the connection. Behind a reverse proxy listed in
  ``[server] trusted_proxies`` the right-most address of ``X-Forwarded-For`` that is not itself a
  trusted proxy is used instead. The same proxies' ``X-Forwarded-Proto: https`` (or
  ``[server] secure_cookies = true``) marks the session cookie ``Secure``.
- PC host name: the ``X-Client-Host`` header, sent by the CRM / the desktop client (the server
  cannot learn a browser's host name). Letters, digits, ``.``, ``-``, ``_``, at most 255
  characters; anything else or no header is recorded as ``unknown``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from hookspecs.types import RequestContext

from ..errors import AuthenticationFailed

if TYPE_CHECKING:
    from ..app import App

SESSION_COOKIE = "cf_session"
HOST_HEADER = "X-Client-Host"
_HOST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")

bearer_scheme = HTTPBearer(auto_error=False, description="API token (cft_…) or session token (cfs_…)")
cookie_scheme = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, description="web session from /api/auth/login")


def get_app(request: Request) -> Any:
    """The CallFort ``App`` the web app was created for."""
    return request.app.state.cf_app


def _valid_ip(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def _trusted(app: App) -> list[Any]:
    trusted = app.__dict__.get("_cf_trusted_proxies")
    if trusted is None:
        trusted = [ipaddress.ip_network(p, strict=False)
                   for p in app.config.section("server").get("trusted_proxies", [])]
        app.__dict__["_cf_trusted_proxies"] = trusted
    return trusted  # type: ignore[no-any-return]


def _peer(request: Request) -> str:
    return _valid_ip(request.client.host if request.client else None) or "0.0.0.0"


def from_trusted_proxy(request: Request) -> bool:
    """Whether the TCP peer is one of ``[server] trusted_proxies``."""
    peer = _peer(request)
    return any(ipaddress.ip_address(peer) in net for net in _trusted(get_app(request)))


def is_https(request: Request) -> bool:
    """Whether the client reached CallFort over TLS: the connection itself, or (only from a
    trusted proxy) the proxy's ``X-Forwarded-Proto: https``, or ``[server] secure_cookies = true``
    (a TLS proxy that sends no such header). Decides the session cookie's ``Secure`` flag."""
    if request.url.scheme == "https":
        return True
    if get_app(request).config.get("server.secure_cookies", bool, False):
        return True
    if not from_trusted_proxy(request):
        return False
    protos = [p.strip().lower() for p in request.headers.get("x-forwarded-proto", "").split(",") if p.strip()]
    return bool(protos) and protos[-1] == "https"


def client_ip(request: Request) -> str:
    peer = _peer(request)
    trusted = _trusted(get_app(request))
    if not trusted or not any(ipaddress.ip_address(peer) in net for net in trusted):
        return peer
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(hops):
        ip = _valid_ip(hop)
        if ip is None:
            break
        if not any(ipaddress.ip_address(ip) in net for net in trusted):
            return ip
    return peer


def client_host(request: Request) -> str:
    value = request.headers.get(HOST_HEADER, "").strip()
    return value if _HOST_RE.match(value) else "unknown"


def authenticate(request: Request, function: str, *, required: bool = True) -> RequestContext | None:
    """Authenticate the request (bearer token or session cookie); None when anonymous and not
    ``required``. The token is kept on ``request.state.cf_token`` (for log-out)."""
    from ..access.users import authenticate_token

    auth = request.headers.get("authorization", "")
    token = auth[7:].strip() if auth[:7].lower() == "bearer " else request.cookies.get(SESSION_COOKIE)
    host, ip = client_host(request), client_ip(request)
    if not token:
        if not required:
            return None
        raise AuthenticationFailed("not logged in", hint="POST /api/auth/login, or send Authorization: Bearer TOKEN")
    actor = authenticate_token(get_app(request), token, host=host, ip=ip, function=function)
    request.state.cf_token = token
    return RequestContext(actor=actor, host=host, ip=ip, function=function)


def request_context(function: str) -> Callable[..., RequestContext]:
    """Dependency: the authenticated ``RequestContext`` of this request, with ``function`` (e.g.
    ``api.recordings.list``) recorded in every audit entry it causes. 401 when not logged in."""

    def dependency(request: Request, bearer: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
                   cookie: str | None = Depends(cookie_scheme)) -> RequestContext:
        ctx = authenticate(request, function)
        assert ctx is not None
        return ctx

    dependency.__name__ = f"request_context_{function.replace('.', '_')}"
    return dependency


def optional_context(function: str) -> Callable[..., RequestContext | None]:
    """Like ``request_context`` but None for an anonymous request."""

    def dependency(request: Request, bearer: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
                   cookie: str | None = Depends(cookie_scheme)) -> RequestContext | None:
        return authenticate(request, function, required=False)

    return dependency
