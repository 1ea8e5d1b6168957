"""Background jobs that ``cf serve`` runs in its own process, next to the API.

An area registers a job at import of its module::

    from cfcore.web.jobs import register_job
    register_job("retention.purge", 3600, lambda app: run_purge(app))

``func(app)`` is a plain function (run in a worker thread) or a coroutine function (run on the
server's event loop). ``interval_seconds > 0`` runs it every that many seconds (the first run at
start-up); ``0`` runs it once at start-up — for long-running services such as capture sources,
which return only when stopped. A failing run is logged and retried at the next interval; it never
stops the server or the other jobs. The modules in ``JOB_MODULES`` are imported before the jobs
start, so every area's registration is seen.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import attrs

log = logging.getLogger(__name__)

#: Modules that register jobs at import (missing modules are skipped).
JOB_MODULES = (
    "cfcore.access.approvals",
    "cfcore.retention",
    "cfcore.fis",
    "cfcore.fis.jobs",
    "cfcore.capture",
    "cfcore.capture.jobs",
    "cfcore.sync",
    "cfcore.notify",
    "cfcore.transcripts",
    "cfcore.outbox",
)


@attrs.frozen(kw_only=True)
class Job:
    name: str
    interval_seconds: float
    func: Callable[[Any], Any]


@attrs.define
class JobStatus:
    name: str
    runs: int = 0
    failures: int = 0
    last_started: datetime | None = None
    last_error: str | None = None
    running: bool = False


_JOBS: dict[str, Job] = {}


def register_job(name: str, interval_seconds: float, func: Callable[[Any], Any]) -> None:
    """Register (or replace, for the same function) a background job."""
    if not name or interval_seconds < 0:
        raise ValueError("a job needs a name and an interval of 0 (once) or more seconds")
    existing = _JOBS.get(name)
    if existing is not None and getattr(existing.func, "__qualname__", None) != getattr(func, "__qualname__", None):
        raise ValueError(f"job '{name}' is registered twice")
    _JOBS[name] = Job(name=name, interval_seconds=float(interval_seconds), func=func)


def unregister_job(name: str) -> None:
    _JOBS.pop(name, None)


def load_job_modules() -> None:
    for mod in JOB_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name is None or not mod.startswith(exc.name):
                raise


def registered_jobs() -> dict[str, Job]:
    load_job_modules()
    return dict(_JOBS)


class JobRunner:
    """Runs the registered jobs on the current event loop until ``stop``."""

    def __init__(self, app: Any, jobs: dict[str, Job] | None = None) -> None:
        self.app = app
        self.jobs = registered_jobs() if jobs is None else jobs
        self.status = {name: JobStatus(name=name) for name in self.jobs}
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for job in self.jobs.values():
            self._tasks.append(asyncio.create_task(self._loop(job), name=f"cf-job-{job.name}"))

    async def _run_once(self, job: Job) -> None:
        st = self.status[job.name]
        st.running, st.last_started = True, self.app.clock.now()
        try:
            if inspect.iscoroutinefunction(job.func):
                await job.func(self.app)
            else:
                result = await asyncio.to_thread(job.func, self.app)
                if inspect.isawaitable(result):
                    await result
            st.runs += 1
            st.last_error = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            st.failures += 1
            st.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("job %s failed", job.name)
        finally:
            st.running = False

    async def _loop(self, job: Job) -> None:
        while not self._stop.is_set():
            await self._run_once(job)
            if job.interval_seconds <= 0:
                return
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=job.interval_seconds)
            except TimeoutError:
                pass

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """Stop: running jobs get ``grace_seconds`` to finish, then their tasks are cancelled."""
        self._stop.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace_seconds)
            for t in pending:
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
