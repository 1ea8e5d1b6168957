"""A small client for the Asterisk REST Interface (ARI): REST over HTTP and the Stasis event
stream over WebSocket (``GET /ari/events?app=<app>``), as documented in Asterisk's
``rest-api/api-docs/*.json``.

Credentials go in an HTTP Basic ``Authorization`` header on both, never in the URL (ARI also
accepts ``api_key=user:password`` as a query parameter; we do not use it, URLs end up in logs).
Every id put into a path is percent-encoded; query values are encoded by httpx.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import websockets

log = logging.getLogger(__name__)


class AriError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"ARI {status}: {message}")
        self.status = status


def seg(value: str) -> str:
    """One path segment, percent-encoded (``/``, ``?``, ``#`` and all else outside unreserved)."""
    return quote(str(value), safe="")


class AriClient:
    def __init__(self, base_url: str, username: str, password: str, app: str, *,
                 on_event: Callable[[dict[str, Any]], None], timeout: float = 10.0,
                 backoff_min: float = 0.5, backoff_max: float = 30.0) -> None:
        self.base = base_url.rstrip("/") + "/ari"
        self.app = app
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._auth = f"Basic {token}"
        self.on_event = on_event
        self.timeout = timeout
        self.backoff_min, self.backoff_max = backoff_min, backoff_max
        self.http = httpx.AsyncClient(timeout=timeout, headers={"Authorization": self._auth})
        self.connected = asyncio.Event()
        self.connects = 0
        self.last_error: str | None = None
        self._stop = asyncio.Event()
        self._ws: Any = None

    def __repr__(self) -> str:
        return f"AriClient({self.base!r}, app={self.app!r})"

    async def request(self, method: str, path: str, params: dict[str, Any] | None = None,
                      body: Any = None) -> Any:
        clean = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in (params or {}).items()
                 if v is not None}
        try:
            r = await self.http.request(method, self.base + path, params=clean,
                                        json=body if body is not None else None)
        except httpx.HTTPError as exc:
            raise ConnectionError(f"ARI {method} {path.split('?')[0]}: {type(exc).__name__}") from exc
        if r.status_code >= 400:
            try:
                msg = r.json().get("message", r.reason_phrase)
            except ValueError:
                msg = r.reason_phrase
            raise AriError(r.status_code, str(msg)[:200])
        if r.status_code == 204 or not r.content:
            return None
        ctype = r.headers.get("content-type", "")
        return r.json() if "json" in ctype else r.content

    async def download(self, path: str, dest: Path) -> int:
        """Stream a stored recording (``/recordings/stored/<name>/file``) to ``dest`` (.part, fsync, rename)."""
        import os

        part = dest.with_name(dest.name + ".part")
        size = 0
        async with self.http.stream("GET", self.base + path) as r:
            if r.status_code >= 400:
                raise AriError(r.status_code, "recording file not available")
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                async for chunk in r.aiter_bytes():
                    os.write(fd, chunk)
                    size += len(chunk)
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(part, dest)
        return size

    async def run(self) -> None:
        """Keep the event WebSocket open until ``stop()``; emits ``{"type": "_connected"}`` after
        every (re)connect and ``{"type": "_disconnected"}`` when it drops."""
        delay = self.backoff_min
        ws_base = self.base.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        url = f"{ws_base}/events?app={quote(self.app, safe='')}"
        while not self._stop.is_set():
            try:
                async with websockets.connect(url, additional_headers={"Authorization": self._auth},
                                              open_timeout=self.timeout, max_size=1 << 20) as ws:
                    self._ws = ws
                    self.connects += 1
                    self.connected.set()
                    self.last_error = None
                    delay = self.backoff_min
                    self.on_event({"type": "_connected"})
                    async for raw in ws:
                        try:
                            msg = json.loads(raw)
                        except ValueError:
                            log.warning("ARI sent a malformed event; ignored")
                            continue
                        if isinstance(msg, dict) and isinstance(msg.get("type"), str):
                            self.on_event(msg)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {str(exc)[:150]}"
                log.warning("ARI event stream %s: %s", self.base, self.last_error)
            finally:
                self._ws = None
                if self.connected.is_set():
                    self.connected.clear()
                    self.on_event({"type": "_disconnected"})
            if self._stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            delay = min(delay * 2, self.backoff_max)

    async def stop(self) -> None:
        self._stop.set()
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        await self.http.aclose()
