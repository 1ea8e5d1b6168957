"""In-tree default plugin: the background jobs of the core's own areas (``cf_background_jobs``)."""

from __future__ import annotations

from hookspecs import hookimpl
from hookspecs.types import BackgroundJob


@hookimpl
def cf_background_jobs() -> list[BackgroundJob]:
    from cfcore.access.approvals import expire_job
    from cfcore.access.authflood import flush_job
    from cfcore.capture.jobs import run_capture
    from cfcore.fis.jobs import ANCHOR_JOB, JOB_NAME, TICK_SECONDS, run_anchor, run_scheduled
    from cfcore.retention import JOB_POLL_SECONDS, purge_job

    return [
        BackgroundJob(name="approvals.expire", interval_seconds=60, run=expire_job,
                      description="marks four-eyes requests past their expiry as expired"),
        BackgroundJob(name="auth.failures", interval_seconds=30, run=flush_job,
                      description="writes the counted failed logins to the audit trail"),
        BackgroundJob(name="retention.purge", interval_seconds=JOB_POLL_SECONDS, run=purge_job,
                      description="deletes recordings whose retention ended (crypto-shredding)"),
        BackgroundJob(name=JOB_NAME, interval_seconds=TICK_SECONDS, run=run_scheduled,
                      description="FIS rules and scrubs when due; retries alert deliveries"),
        BackgroundJob(name=ANCHOR_JOB, interval_seconds=TICK_SECONDS, run=run_anchor,
                      description="anchors the audit trail outside the database when due"),
        BackgroundJob(name="capture", interval_seconds=0, run=run_capture,
                      description="runs the configured capture sources"),
    ]
