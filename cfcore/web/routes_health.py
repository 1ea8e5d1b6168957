"""``GET /health`` (liveness), ``GET /ready`` (readiness) and ``GET /metrics`` (Prometheus).

For load balancers and monitoring; no login (they disclose no personal data), not audited, not
under ``/api``. ``/health`` answers as long as the process serves requests. ``/ready`` runs the
checks of ``cf doctor`` in their cheap form (catalog and migration, key files, one probe per store,
clock, audit anchor; the result is kept for ``READY_CACHE_SECONDS``) and answers 503 with the
failing checks when one fails. ``/metrics``: see ``cfcore.metrics``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

router = APIRouter(tags=["operations"])

READY_CACHE_SECONDS = 5.0


@router.get("/health", summary="Liveness: the process serves requests")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="Readiness: catalog, keys, stores, clock and audit anchor are fine")
async def ready(request: Request) -> JSONResponse:
    from ..doctor import run_checks

    app = request.app.state.cf_app
    cached: tuple[float, list[Any]] | None = getattr(request.app.state, "cf_ready", None)
    if cached is None or time.monotonic() - cached[0] > READY_CACHE_SECONDS:
        checks = await asyncio.to_thread(run_checks, app=app, cheap=True)
        cached = (time.monotonic(), checks)
        request.app.state.cf_ready = cached
    checks = cached[1]
    ok = all(c.ok for c in checks)
    return JSONResponse({"status": "ready" if ok else "not ready", "checks": [c.as_dict() for c in checks]},
                        status_code=200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    from ..metrics import CONTENT_TYPE, render

    body = await asyncio.to_thread(render, request.app.state.cf_app, getattr(request.app.state, "cf_jobs", None))
    return Response(body, media_type=CONTENT_TYPE)
