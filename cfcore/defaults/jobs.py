"""In-tree default plugin: the background jobs of the core's own areas (``cf_background_jobs``)."""

from __future__ import annotations

from hookspecs import hookimpl
from hookspecs.types import BackgroundJob


@hookimpl
def cf_background_jobs() -> list[BackgroundJob]:
    from cfcore import outbox, pickup, transcripts
    from cfcore.access.approvals import expire_job
    from cfcore.access.authflood import flush_job
    from cfcore.capture.jobs import run_capture
    from cfcore.fis.jobs import ANCHOR_JOB, JOB_NAME, TICK_SECONDS, run_anchor, run_scheduled
    from cfcore.retention import JOB_POLL_SECONDS, purge_job
    from cfcore.sync.jobs import archive_job, site_job

    return [
        BackgroundJob(name="approvals.expire", interval_seconds=60, run=expire_job,
                      description="marks four-eyes requests past their expiry as expired"),
        BackgroundJob(name="auth.failures", interval_seconds=30, run=flush_job, scope="worker",
                      description="writes the counted failed logins to the audit trail"),
        BackgroundJob(name="retention.purge", interval_seconds=JOB_POLL_SECONDS, run=purge_job,
                      description="deletes recordings whose retention ended (crypto-shredding)"),
        BackgroundJob(name=JOB_NAME, interval_seconds=TICK_SECONDS, run=run_scheduled,
                      description="FIS rules and scrubs when due; retries alert deliveries"),
        BackgroundJob(name=ANCHOR_JOB, interval_seconds=TICK_SECONDS, run=run_anchor,
                      description="anchors the audit trail outside the database when due"),
        BackgroundJob(name="capture", interval_seconds=0, run=run_capture, scope="worker",
                      description="runs the configured capture sources (each on the one worker holding its lease)"),
        BackgroundJob(name=pickup.SCAN_JOB, interval_seconds=1, run=pickup.scan_job,
                      description="queues the calls dropped into the [pickup] directory"),
        BackgroundJob(name=pickup.INGEST_JOB, interval_seconds=0.5, run=pickup.ingest_job, scope="worker",
                      description="archives queued pickup calls (every worker claims its share)"),
        BackgroundJob(name="transcripts.run", interval_seconds=60, run=transcripts.job,
                      description="transcribes consented recordings when [transcription] is enabled"),
        BackgroundJob(name="integration.outbox", interval_seconds=5, run=outbox.job,
                      description="retries cf_recording_archived / cf_after_purge deliveries that failed"),
        BackgroundJob(name="sync.send", interval_seconds=300, run=site_job,
                      description="on a site: ships the day's recordings to the archive inside the nightly window"),
        BackgroundJob(name="sync.receive", interval_seconds=60, run=archive_job,
                      description="on the archive: imports the sites' inbox, then checks for overdue sites"),
    ]
