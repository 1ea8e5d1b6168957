"""Background jobs that ``cf serve`` runs in its own process, next to the API (the engine's, not
the web layer's: the domain modules provide the jobs, the server only hosts the runner).

Jobs come from the ``cf_background_jobs`` hook: ``BackgroundJob(name, interval_seconds, run)``; the
in-tree ones (approval expiry, retention purge, FIS scan, capture) from ``cfcore.defaults.jobs``.
``run(app)`` is a plain function (run in a worker thread) or a coroutine function (run on the
server's event loop). ``interval_seconds > 0`` runs it every that many seconds (the first run at
start-up); ``0`` runs it once at start-up — for long-running services such as capture sources,
which return only when stopped. A failing run is logged and retried at the next interval; it never
stops the server or the other jobs.

Several workers (``cf serve`` processes on one or several machines) may share one catalog. A job
of ``scope="cluster"`` (the default) then runs on one worker at a time: every run holds the lease
``job:<name>`` (``cfcore.leases``), renewed every ``[server] heartbeat_seconds`` while it runs and
released when it ends. A worker that finds the lease held skips that run; one waiting to start a
long-running job (interval 0) tries again every heartbeat, so it takes over within
``[server] lease_seconds`` when the holder dies. A ``scope="worker"`` job runs on every worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from datetime import datetime
from typing import TYPE_CHECKING

import attrs

from hookspecs.types import BackgroundJob

from . import leases

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
    #: runs left to another worker, which held the job's lease
    skipped: int = 0


def registered_jobs(app: App) -> dict[str, BackgroundJob]:
    """Every job the plugins (the in-tree defaults first) register for this deployment."""
    return app.pm.background_jobs()  # type: ignore[no-any-return]


def job_scope(job: BackgroundJob) -> str:
    return str(getattr(job, "scope", "cluster"))


class JobRunner:
    """Runs the registered jobs on the current event loop until ``stop``."""

    def __init__(self, app: App, jobs: dict[str, BackgroundJob] | None = None, *, worker: str | None = None) -> None:
        self.app = app
        self.jobs = registered_jobs(app) if jobs is None else jobs
        self.status = {name: JobStatus(name=name) for name in self.jobs}
        #: the holder name in leases (default: this process, ``leases.worker_id``)
        self.worker = worker or leases.worker_id(app)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for job in self.jobs.values():
            self._tasks.append(asyncio.create_task(self._loop(job), name=f"cf-job-{job.name}"))

    async def _call(self, job: BackgroundJob) -> None:
        if inspect.iscoroutinefunction(job.run):
            await job.run(self.app)
        else:
            result = await asyncio.to_thread(job.run, self.app)
            if inspect.isawaitable(result):
                await result

    async def _run_once(self, job: BackgroundJob) -> None:
        st = self.status[job.name]
        st.running, st.last_started = True, self.app.clock.now()
        try:
            await self._call(job)
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

    async def _run_leased(self, job: BackgroundJob) -> bool:
        """One run under the job's lease; False when another worker holds it (run skipped)."""
        try:
            lease = await asyncio.to_thread(leases.acquire, self.app, f"job:{job.name}", self.worker)
        except Exception:
            log.exception("job %s: the lease could not be taken (catalog unreachable?)", job.name)
            return False
        if lease is None:
            self.status[job.name].skipped += 1
            return False
        run = asyncio.create_task(self._run_once(job), name=f"cf-job-run-{job.name}")
        try:
            beat = leases.heartbeat_seconds(self.app)
            while True:
                done, _ = await asyncio.wait({run}, timeout=beat)
                if done:
                    break
                try:
                    renewed = await asyncio.to_thread(leases.renew, self.app, lease)
                except Exception:
                    log.exception("job %s: renewing its lease failed; retrying", job.name)
                    continue
                if renewed is None:
                    # It lapsed (the catalog was unreachable for a whole lease) and another
                    # worker may run the job now: stop ours rather than run it twice.
                    log.error("job %s lost its lease to another worker; stopping it here", job.name)
                    run.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await run
                    return True
                lease = renewed
        finally:
            if not run.done():
                run.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await run
            with contextlib.suppress(Exception):
                await asyncio.shield(asyncio.to_thread(leases.release, self.app, lease))
        return True

    async def _loop(self, job: BackgroundJob) -> None:
        cluster = job_scope(job) == "cluster"
        while not self._stop.is_set():
            ran = True
            if cluster:
                ran = await self._run_leased(job)
            else:
                await self._run_once(job)
            if job.interval_seconds <= 0 and ran:
                return
            wait = job.interval_seconds if job.interval_seconds > 0 else leases.heartbeat_seconds(self.app)
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=wait)
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
