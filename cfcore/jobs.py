"""Background jobs that ``cf serve`` runs in its own process, next to the API (the engine's, not
the web layer's: the domain modules provide the jobs, the server only hosts the runner).

Jobs come from the ``cf_background_jobs`` hook: ``BackgroundJob(name, interval_seconds, run)``; the
in-tree ones (approval expiry, retention purge, FIS scan, capture) from ``cfcore.defaults.jobs``.
``run(app)`` is a plain function (run in a worker thread) or a coroutine function (run on the
server's event loop). ``interval_seconds > 0`` runs it every that many seconds (the first run at
start-up); ``0`` runs it once at start-up — for long-running services such as capture sources,
which return only when stopped. A failing run is logged and retried at the next interval; it never
stops the server or the other jobs.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from datetime import datetime
from typing import TYPE_CHECKING

import attrs

from hookspecs.types import BackgroundJob

if TYPE_CHECKING:
    from .app import App

log = logging.getLogger(__name__)

#: The 1.0 name of a job registration.
Job = BackgroundJob


@attrs.define
class JobStatus:
    name: str
    runs: int = 0
    failures: int = 0
    last_started: datetime | None = None
    last_error: str | None = None
    running: bool = False


def registered_jobs(app: App) -> dict[str, BackgroundJob]:
    """Every job the plugins (the in-tree defaults first) register for this deployment."""
    return app.pm.background_jobs()  # type: ignore[no-any-return]


class JobRunner:
    """Runs the registered jobs on the current event loop until ``stop``."""

    def __init__(self, app: App, jobs: dict[str, BackgroundJob] | None = None) -> None:
        self.app = app
        self.jobs = registered_jobs(app) if jobs is None else jobs
        self.status = {name: JobStatus(name=name) for name in self.jobs}
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for job in self.jobs.values():
            self._tasks.append(asyncio.create_task(self._loop(job), name=f"cf-job-{job.name}"))

    async def _run_once(self, job: BackgroundJob) -> None:
        st = self.status[job.name]
        st.running, st.last_started = True, self.app.clock.now()
        try:
            if inspect.iscoroutinefunction(job.run):
                await job.run(self.app)
            else:
                result = await asyncio.to_thread(job.run, self.app)
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

    async def _loop(self, job: BackgroundJob) -> None:
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
