"""The capture runner: starts the capture sources of the deployment, hands each a sink, and
applies the advisors' mode requests to the sources that own the calls.

Runs inside ``cf capture run`` or as a job of ``cf serve``. The sources' plugins are asked one by
one (``cf_capture_sources``) with their own config section, so that two PBX plugins never see
each other's settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from typing import TYPE_CHECKING, Any

from hookspecs.types import AudioFrame, CallEvent, CaptureSource, FinishedCall

from ..errors import CallFortError, PluginError
from . import controller
from .live import LiveCapture
from .live import finalise as live_finalise
from .live import recover as live_recover

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger(__name__)


#: Id prefix of runners started under a source lease by ``cf serve`` workers.
LEASED_PREFIX = "lease-"


class CaptureError(CallFortError):
    exit_code = 10
    http_status = 503


def discover_sources(app: App) -> list[CaptureSource]:
    """Every source the registered capture source types create for this deployment's config.

    Each type is built from the section of the plugin that registered it (``[plugins.<plugin>]``),
    so two PBX plugins never see each other's settings."""
    sources: list[CaptureSource] = []
    for name, reg in app.pm.capture_source_types().items():
        plugin = app.pm.registered_by("cf_capture_sources", name) or name
        ctx = app.plugin_context(plugin)
        options = app.plugin_options(reg, ctx.config, f"plugins.{plugin}")
        try:
            found = reg.create(options, ctx) or []
        except Exception as exc:
            raise PluginError(f"plugin {plugin} cannot start its capture source {name}: {exc}",
                              hint=f"check [plugins.{plugin}] in {app.config.path}") from exc
        for src in found:
            if not isinstance(src, CaptureSource):
                raise PluginError(f"capture source type {name} of plugin {plugin} created "
                                  f"{type(src).__name__}, which is not a CaptureSource")
        sources.extend(found)
    names = [s.name for s in sources]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise PluginError(f"two capture sources are named '{sorted(dup)[0]}'", hint="give each a distinct name")
    return sources


class CoreSink:
    """What a source gets: call events update live calls; finished calls go to ingest."""

    def __init__(self, app: App, source: CaptureSource, live: LiveCapture | None = None) -> None:
        self.app = app
        self.source = source
        self.archived = 0
        self.live = live if live is not None else LiveCapture(app)

    async def call_event(self, event: CallEvent) -> None:
        if event.source != self.source.name:
            raise CaptureError(f"source {self.source.name} reported an event as {event.source}")
        closed = self.live.event(event)
        await asyncio.to_thread(controller.on_call_event, self.app, event)
        if closed is not None:  # a live recording ended: archive its spool
            await asyncio.to_thread(live_finalise, self.app, closed.folder, incomplete=False)
            self.archived += 1

    async def call_finished(self, call: FinishedCall) -> str:
        if call.source != self.source.name:
            raise CaptureError(f"source {self.source.name} handed over a call as {call.source}")
        rec_id = await asyncio.to_thread(controller.archive_call, self.app, call)
        self.archived += 1
        return rec_id

    async def audio_frame(self, frame: AudioFrame) -> None:
        """Live audio into the encrypted spool (``cfcore.capture.live``); modes applied per frame."""
        self.live.frame(self.source.name, frame)

    def audio_frame_nowait(self, frame: AudioFrame) -> None:
        """The same without a coroutine per frame (for sources with many frames per second)."""
        self.live.frame(self.source.name, frame)


class CaptureRunner:
    def __init__(self, app: App, sources: list[CaptureSource] | None = None, *, poll_interval: float = 0.2,
                 heartbeat_interval: float = 2.0, leased: bool = False) -> None:
        self.app = app
        self.sources = {s.name: s for s in (sources if sources is not None else discover_sources(app))}
        self.live = LiveCapture(app)
        self.sinks = {name: CoreSink(app, s, self.live) for name, s in self.sources.items()}
        self.poll_interval = poll_interval
        #: True when the caller holds each source's lease (``cfcore.capture.jobs``): the lease,
        #: not the runners' heartbeats, then says who runs a source, and a runner taking over
        #: from a dead one need not wait for its heartbeat to go stale.
        self.leased = leased
        self.heartbeat_interval = heartbeat_interval
        # A leased runner's id says so: a standalone runner (``cf capture run``) still refuses it
        # by heartbeat, and it refuses only standalone runners (leases settle the rest).
        self.id = f"{LEASED_PREFIX}{secrets.token_hex(8)}" if leased else secrets.token_hex(8)
        self.host = socket.gethostname() or "localhost"
        self._stop = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.started = asyncio.Event()

    def status(self) -> list[dict[str, Any]]:
        out = []
        for name, src in self.sources.items():
            st: dict[str, Any] = {"name": name, "can_mute": bool(getattr(src, "can_mute", False))}
            fn = getattr(src, "status", None)
            if callable(fn):
                with contextlib.suppress(Exception):
                    st.update({k: v for k, v in fn().items() if k in
                               ("connected", "ready", "permission_error", "last_error", "connects",
                                "auth_failures", "handed_over")})
                    st["active_legs"] = len(fn().get("active_legs", []))
            task = self._tasks.get(name)
            if task is not None and task.done() and not task.cancelled() and task.exception() is not None:
                st["failed"] = f"{type(task.exception()).__name__}: {task.exception()}"
            out.append(st)
        return out

    async def run(self) -> None:
        """Run every source and the request loop until ``stop()``."""
        if not self.sources:
            log.warning("no capture source is configured (see docs/asterisk.md)")
        holder = await asyncio.to_thread(controller.source_holder, self.app, list(self.sources), self.id)
        if holder is not None and self.leased and str(holder["id"]).startswith(LEASED_PREFIX):
            holder = None  # a leased runner whose lease lapsed (its worker died): we hold it now
        if holder is not None:
            # Two runners on one PBX would start two MixMonitors per call and race for the files.
            raise CaptureError(f"capture source '{holder['source']}' is already run by runner {holder['id']} "
                               f"on {holder['host']} (pid {holder['pid']})",
                               hint="run the capture sources in one place only: 'cf serve' or 'cf capture run'")
        reaped = await asyncio.to_thread(controller.reap, self.app, list(self.sources))
        if any(reaped.values()):
            log.warning("left over by a previous capture runner: %d requests failed, %d ringing calls closed",
                        reaped["requests"], reaped["calls"])
        recovered = await asyncio.to_thread(live_recover, self.app, list(self.sources))
        if recovered:
            log.warning("finalised %d live recordings a previous capture runner left", len(recovered))
        for name, src in self.sources.items():
            self._tasks[name] = asyncio.create_task(self._run_source(name, src), name=f"capture-{name}")
        await self._heartbeat()
        self.started.set()
        last_beat = asyncio.get_running_loop().time()
        try:
            while not self._stop.is_set():
                try:
                    await self._apply_requests()
                except Exception:
                    log.exception("applying mode requests failed; retrying")
                now = asyncio.get_running_loop().time()
                if now - last_beat >= self.heartbeat_interval:
                    last_beat = now
                    with contextlib.suppress(Exception):
                        await self._heartbeat()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.poll_interval)
        finally:
            for src in self.sources.values():
                with contextlib.suppress(Exception):
                    await src.stop()
            if self._tasks:
                _, pending = await asyncio.wait(self._tasks.values(), timeout=10)
                for t in pending:
                    t.cancel()
                await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._heartbeat(stopped=True)

    async def stop(self) -> None:
        self._stop.set()

    async def _run_source(self, name: str, src: CaptureSource) -> None:
        delay = 1.0
        while not self._stop.is_set():
            try:
                await src.run(self.sinks[name])
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("capture source %s stopped with an error; restarting in %.0fs", name, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                delay = min(delay * 2, 60.0)

    async def _heartbeat(self, stopped: bool = False) -> None:
        await asyncio.to_thread(controller.runner_heartbeat, self.app, self.id, host=self.host, pid=os.getpid(),
                                sources=self.status(), stopped=stopped)

    async def _apply_requests(self) -> None:
        claimed = await asyncio.to_thread(controller.claim_requests, self.app, list(self.sources), self.id)
        for req in claimed:
            await self.apply(req)

    async def apply(self, req: Any) -> None:
        mode, problem = await asyncio.to_thread(controller.target_mode, self.app, req)
        ok, message, unreachable = False, problem, False
        applied_at = None
        if mode is not None:
            src = self.sources[req.source]
            try:
                ok = await src.set_mode(req.call_id, mode)
                applied_at = self.app.clock.now()  # the PBX has confirmed
                if not ok:
                    message = "the PBX no longer knows the call (it has ended)"
            except (ConnectionError, TimeoutError) as exc:
                log.warning("set_mode %s on %s: PBX unreachable: %s", mode.value, req.call_id, exc)
                message, unreachable = "the PBX is not reachable right now; try again in a moment", True
            except Exception as exc:
                log.warning("set_mode %s on %s failed: %s", mode.value, req.call_id, exc)
                message = f"the PBX refused: {type(exc).__name__}: {str(exc)[:150]}"
        await asyncio.to_thread(controller.finish_request, self.app, req, mode if ok else None, ok, message,
                                unreachable, applied_at)
        if ok and mode is not None:
            await self.live.apply_mode(req.source, req.call_id, mode)
        if ok:
            log.info("call %s: %s applied (%s)", req.call_id, req.action, mode.value if mode else "-")
