"""The web UI: server-rendered pages (Jinja2) in German and English for advisors, supervisors,
QA, compliance, the DPO and administrators, at ``/`` (log-in) and ``/ui/...``.

The UI is a client of the same service layer as the REST API (``cfcore.access``,
``cfcore.capture.controller``, ``cfcore.retention``, ``cfcore.fis``, ``cfcore.dsar``): every
page calls the functions the API routes call, so the access decisions and audit entries are the
same. What it adds is presentation and the browser's safety rules:

- the session cookie of ``/api/auth/login`` (``cf_session``: HttpOnly, SameSite=Strict, Secure
  behind TLS); the UI accepts only the cookie, never a bearer token;
- a CSRF token on every form, bound to the session (an HMAC of the session token);
- a strict Content-Security-Policy (``default-src 'self'``; no inline script or style), no
  personal data in URLs or titles (customer searches go in the POST body), an idle timeout
  (``[webui] idle_minutes``, default 15; ended sessions are audited ``session.end``/``idle``);
- recordings only as streaming links (``controlsList=nodownload``); the only downloads are the
  four-eyes export and the Art. 15 report.

Assets (``static/``) are our own small files, served by ``cf serve`` itself: it works offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI, Request
    from starlette.responses import Response

    from ..app import App

STATIC_DIR = Path(__file__).parent / "static"

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")


def is_ui_path(path: str) -> bool:
    return path in ("/", "/login") or path.startswith("/ui/") or path == "/ui"


def mount(fa: FastAPI, app: App) -> None:
    """Add the UI's pages, its static files and its security headers to the FastAPI app."""
    from fastapi.staticfiles import StaticFiles

    from .routes import router

    fa.include_router(router)
    fa.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")

    @fa.middleware("http")
    async def _ui_headers(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        if is_ui_path(request.url.path):
            response.headers.setdefault("Content-Security-Policy", CSP)
            response.headers.setdefault("X-Frame-Options", "DENY")
            response.headers.setdefault("Referrer-Policy", "no-referrer")
            response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        return response


def error_response(request: Request, status: int, message: str, *, login: bool = False) -> Response:
    """An error of a UI page as HTML (not logged in: back to the log-in page)."""
    from .routes import render_error

    return render_error(request, status, message, login=login)
