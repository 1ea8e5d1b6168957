"""``/api/docs`` without a CDN: Swagger UI's assets come from the ``swagger-ui-bundle`` package
and are served by CallFort itself under ``/api/docs-assets/`` (a deployment without internet
access, or with a strict content policy, still has its API docs; no request leaves for a CDN)."""

from __future__ import annotations

from typing import Any

ASSETS = "/api/docs-assets"
_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")


def install(fa: Any, openapi_url: str, title: str) -> None:
    from pathlib import Path

    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import FileResponse, HTMLResponse
    from swagger_ui_bundle import swagger_ui_path

    root = Path(swagger_ui_path)

    @fa.get("/api/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=openapi_url, title=f"{title} - docs",
                                   swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{ASSETS}/favicon-32x32.png")

    @fa.get(ASSETS + "/{name}", include_in_schema=False)
    async def asset(name: str) -> FileResponse:
        from starlette.exceptions import HTTPException

        if name not in _FILES:  # a fixed list: no path from the request reaches the file system
            raise HTTPException(404, "not found")
        return FileResponse(root / name)
