"""The REST API (FastAPI on ASGI) and the background jobs that ``cf serve`` runs.

``create_app(app)`` builds the FastAPI application: every module ``cfcore/web/routes_*.py`` with a
``router`` (an ``fastapi.APIRouter``) is included, in name order; ASGI apps from the
``cf_web_apps`` hook are mounted at their paths. The OpenAPI schema is published at
``/api/openapi.json`` (interactive docs at ``/api/docs``). The web UI (``cfcore.webui``) is
mounted at ``/`` and ``/ui/...``. A ``CallFortError`` becomes its
``http_status`` with the body ``{"error": "<message (hint)>"}``; so do validation and HTTP errors.

Nothing here imports FastAPI at module level: the CLI imports ``cfcore.web`` cheaply.
"""

from __future__ import annotations

import importlib
import logging
import re
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ..app import App

log = logging.getLogger(__name__)

API_PREFIX = "/api"

#: query parameters whose values never reach a log: link tokens (credentials) and personal data
#: (refused by the routes anyway: a client that still sends them must not put them into the log)
REDACTED_PARAMS = ("t", "customer_id", "customer_number", "customer", "number", "numbers", "customer_ids",
                   "password", "token")
_LINK_TOKEN = re.compile(r"([?&](?:" + "|".join(REDACTED_PARAMS) + r")=)[^&\s\"]+", re.IGNORECASE)


class RedactLinkTokens(logging.Filter):
    """Streaming-link tokens and personal query parameters stay out of access logs
    (``?t=…`` → ``?t=***``, ``?customer_number=…`` → ``?customer_number=***``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_LINK_TOKEN.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = _LINK_TOKEN.sub(r"\1***", record.msg)
        return True


def redact_access_log() -> None:
    """Install ``RedactLinkTokens`` on uvicorn's access logger (once)."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactLinkTokens) for f in logger.filters):
        logger.addFilter(RedactLinkTokens())


#: The core's API areas, one ``routes_*`` module each with a ``router``. Listed, not discovered by
#: file name: a plugin mounts its own ASGI app through ``cf_web_apps`` (a test checks that every
#: ``routes_*.py`` is here).
ROUTE_MODULES = (
    "routes_approvals", "routes_audit", "routes_auth", "routes_calls", "routes_dsar", "routes_fis",
    "routes_health", "routes_recordings", "routes_retention", "routes_stream", "routes_transcripts", "routes_users",
)


def route_modules() -> list[str]:
    """The ``cfcore.web.routes_*`` modules, in name order."""
    return sorted(f"{__name__}.{m}" for m in ROUTE_MODULES)


def create_app(app: App, *, run_jobs: bool = False) -> FastAPI:
    """The API for ``app`` (a ``cfcore.app.App``). ``run_jobs=True`` runs the registered
    background jobs (``cfcore.jobs``) for the lifetime of the server, as ``cf serve`` does."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from .. import __version__
    from ..errors import AuthenticationFailed, CallFortError, TooManyRequests
    from ..webui import is_ui_path
    from ..webui import mount as mount_ui

    @asynccontextmanager
    async def lifespan(fa: FastAPI) -> Any:
        runner = None
        if run_jobs:
            from ..jobs import JobRunner

            runner = JobRunner(app)
            fa.state.cf_jobs = runner
            await runner.start()
        try:
            yield
        finally:
            if runner is not None:
                await runner.stop()
            pool = app.__dict__.pop("_cf_login_pool", None)  # routes_auth: Argon2 threads of this server
            if pool is not None:
                pool.shutdown(wait=False)
            queue = app.__dict__.pop("_cf_sync_queue", None)  # cfcore.db.durability: playback audit entries
            if queue is not None:
                queue.close()

    fa = FastAPI(title="CallFort API", version=__version__, openapi_url=f"{API_PREFIX}/openapi.json",
                 docs_url=None, redoc_url=None, lifespan=lifespan,
                 description="Recording search and details, streaming links, four-eyes requests and "
                             "approvals, audit queries. Every call is audited with user, PC host name "
                             "(header X-Client-Host), IP address and function.")
    fa.state.cf_app = app
    from .docs_offline import install as install_docs

    install_docs(fa, f"{API_PREFIX}/openapi.json", "CallFort API")  # Swagger UI served here, no CDN
    fa.state.cf_jobs = None
    redact_access_log()

    @fa.exception_handler(CallFortError)
    async def _cf_error(request: Request, exc: CallFortError) -> Any:
        if is_ui_path(request.url.path):
            from ..webui.routes import handle

            return handle(request, exc)
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthenticationFailed) else {}
        if isinstance(exc, TooManyRequests):
            headers["Retry-After"] = str(exc.retry_after)
        return JSONResponse({"error": str(exc)}, status_code=exc.http_status, headers=headers)

    @fa.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Any:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors())
        if is_ui_path(request.url.path):
            from ..webui import error_response

            return error_response(request, 422, f"invalid request: {problems}")
        return JSONResponse({"error": f"invalid request: {problems}"}, status_code=422)

    @fa.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Any:
        if is_ui_path(request.url.path) and exc.status_code in (404, 405):
            from ..webui import error_response

            return error_response(request, exc.status_code, str(exc.detail))
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @fa.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error in %s %s", request.method, request.url.path)
        return JSONResponse({"error": "internal error (see the server log)"}, status_code=500)

    @fa.middleware("http")
    async def _no_store(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    for modname in route_modules():
        mod = importlib.import_module(modname)
        router = getattr(mod, "router", None)
        if router is None:
            log.warning("%s has no router; skipped", modname)
            continue
        fa.include_router(router)

    mount_ui(fa, app)

    # each plugin gets its own context and the archive gateway acting for it (cfcore.gateway)
    from starlette.routing import Route

    from ..gateway import archive_for, plugin_context

    for web_app in app.pm.web_apps(lambda plugin: plugin_context(app, plugin), lambda plugin: archive_for(app, plugin)):
        # the exact path (e.g. POST /soap/crm, GET /soap/crm?wsdl) and everything below it
        fa.router.routes.append(Route(web_app.path, endpoint=web_app.app, name=web_app.name or None))
        fa.mount(web_app.path, web_app.app, name=web_app.name or None)
    return fa
