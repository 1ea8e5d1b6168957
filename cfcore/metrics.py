"""``GET /metrics``: the deployment's figures in the Prometheus text format (prometheus_client).

Figures from the catalog are read at scrape time (a scrape costs a handful of ``COUNT`` queries),
so that several ``cf serve`` processes report the same numbers; store operations and job runs are
this process's own. No label carries personal data: stores, jobs, states, rules and severities
only, never an advisor, a customer or a number.

| metric | type | what |
| --- | --- | --- |
| ``callfort_recordings`` | gauge | recordings by ``state`` (archived, incomplete, purged) |
| ``callfort_recordings_archived_total`` | counter | recordings ever archived (rows + tombstones) |
| ``callfort_calls_in_progress`` | gauge | live calls ringing, recording or held |
| ``callfort_capture_failed_calls_total`` | counter | captured calls that could not be archived |
| ``callfort_capture_source_up`` | gauge | 1 per PBX source a live runner reports connected, else 0 |
| ``callfort_store_operations_total`` | counter | store operations by ``store``, ``op``, ``outcome`` |
| ``callfort_store_operation_seconds`` | summary | their duration (``_sum`` / ``_count``) |
| ``callfort_audit_entries_total`` | counter | entries in the audit trail |
| ``callfort_fis_alerts_total`` | counter | FIS alerts by ``severity`` |
| ``callfort_purge_backlog`` | gauge | recordings past retention (no hold) not purged yet, plus purges in progress |
| ``callfort_job_runs_total`` | counter | background job runs by ``job`` and ``outcome`` (ok, failed) |
| ``callfort_sync_waiting_recordings`` | gauge | a site: recordings not handed over to the archive yet |
| ``callfort_sync_handed_over_recordings_total`` | counter | a site: recordings the archive confirmed (stubs kept) |
| ``callfort_sync_batches`` | gauge | a site: its last batches by ``state`` (sending, sent, done, rejected) |
| ``callfort_sync_last_handover_timestamp_seconds`` | gauge | a site: when a batch was last confirmed (0: never) |
| ``callfort_sync_imported_recordings_total`` | counter | the archive: recordings imported, by ``site`` |
| ``callfort_sync_imported_bytes_total`` | counter | the archive: bytes imported, by ``site`` |
| ``callfort_sync_last_import_timestamp_seconds`` | gauge | the archive: the last import, by ``site`` (alert on its age) |
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import App

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class CatalogCollector:
    """A prometheus_client collector reading the catalog at each scrape."""

    def __init__(self, app: App, jobs: Any = None) -> None:
        self.app = app
        self.jobs = jobs

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
        from sqlalchemy import func, select

        from .capture.controller import RUNNER_STALE_SECONDS
        from .db.models import AuditHead, Recording, TombstoneRow
        from .db.models_capture import CaptureRunnerRow, LiveCall
        from .db.models_fis import FisAlert
        from .db.models_retention import PurgeTask
        from .metrics_store import snapshot
        from .states import ACTIVE_CALL_STATES, CallState, RecordingState

        now = self.app.clock.now()
        with self.app.catalog.session() as s:
            by_state = dict(s.execute(select(Recording.state, func.count()).group_by(Recording.state)).all())
            tombstones_only = s.scalar(select(func.count()).select_from(TombstoneRow)
                                       .where(TombstoneRow.recording_id.not_in(select(Recording.id)))) or 0
            live = s.scalar(select(func.count()).select_from(LiveCall)
                            .where(LiveCall.state.in_(ACTIVE_CALL_STATES))) or 0
            failed = s.scalar(select(func.count()).select_from(LiveCall).where(LiveCall.state == CallState.FAILED)) or 0
            fresh = now - timedelta(seconds=RUNNER_STALE_SECONDS)
            runners = s.scalars(select(CaptureRunnerRow).where(CaptureRunnerRow.stopped_at.is_(None),
                                                               CaptureRunnerRow.heartbeat_at >= fresh)).all()
            sources = {str(src.get("name")): bool(src.get("connected"))
                       for r in runners for src in (r.sources or []) if isinstance(src, dict)}
            head = s.get(AuditHead, 1)
            alerts = dict(s.execute(select(FisAlert.severity, func.count()).group_by(FisAlert.severity)).all())
            overdue = s.scalar(select(func.count()).select_from(Recording).where(
                Recording.state != RecordingState.PURGED, Recording.legal_hold.is_(False),
                Recording.retention_until.is_not(None), Recording.retention_until < now)) or 0
            purging = s.scalar(select(func.count()).select_from(PurgeTask).where(PurgeTask.state == "purging")) or 0

        g = GaugeMetricFamily("callfort_recordings", "Recordings in the catalog by state", labels=["state"])
        for state in (RecordingState.ARCHIVED, RecordingState.INCOMPLETE, RecordingState.PURGED):
            g.add_metric([state.value], by_state.get(state, 0))
        yield g
        yield CounterMetricFamily("callfort_recordings_archived", "Recordings ever archived",
                                  value=sum(by_state.values()) + tombstones_only)
        yield GaugeMetricFamily("callfort_calls_in_progress", "Live calls ringing, recording or held", value=live)
        yield CounterMetricFamily("callfort_capture_failed_calls", "Captured calls that could not be archived",
                                  value=failed)
        up = GaugeMetricFamily("callfort_capture_source_up", "PBX source connected to a live capture runner",
                               labels=["source"])
        for name, connected in sorted(sources.items()):
            up.add_metric([name], 1 if connected else 0)
        yield up
        ops = CounterMetricFamily("callfort_store_operations", "Media store operations of this process",
                                  labels=["store", "op", "outcome"])
        secs = SummaryMetricFamily("callfort_store_operation_seconds", "Duration of media store operations",
                                   labels=["store", "op"])
        for (store, op), (count, seconds, errors) in sorted(snapshot().items()):
            ops.add_metric([store, op, "ok"], count - errors)
            ops.add_metric([store, op, "error"], errors)
            secs.add_metric([store, op], count_value=count, sum_value=seconds)
        yield ops
        yield secs
        yield CounterMetricFamily("callfort_audit_entries", "Entries in the audit trail",
                                  value=head.seq if head is not None else 0)
        fa = CounterMetricFamily("callfort_fis_alerts", "FIS alerts raised", labels=["severity"])
        for sev, n in sorted(alerts.items()):
            fa.add_metric([str(sev)], n)
        yield fa
        yield GaugeMetricFamily("callfort_purge_backlog", "Recordings past retention not purged yet",
                                value=overdue + purging)
        runs = CounterMetricFamily("callfort_job_runs", "Background job runs of this process",
                                   labels=["job", "outcome"])
        for name, st in sorted(getattr(self.jobs, "status", {}).items()):
            runs.add_metric([name, "ok"], st.runs)
            runs.add_metric([name, "failed"], st.failures)
        yield runs
        yield from self._sync()

    def _sync(self) -> Iterator[Any]:
        """The hand-over figures of a site or of the archive (issue 17); nothing for a standalone
        deployment."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        from sqlalchemy import func, select

        from .sync.settings import role

        r = role(self.app.config)
        if r not in ("site", "archive"):
            return
        from .db.models_sync import ArchiveWrap, SyncBatch, SyncImport, SyncStub

        with self.app.catalog.read_session() as s:
            if r == "site":
                waiting = s.scalar(select(func.count()).select_from(ArchiveWrap)) or 0
                stubs = s.scalar(select(func.count()).select_from(SyncStub)) or 0
                batches = dict(s.execute(select(SyncBatch.state, func.count()).group_by(SyncBatch.state)).all())
                last = s.scalar(select(func.max(SyncBatch.updated_at)).where(SyncBatch.state == "done"))
            else:
                per_site = s.execute(select(SyncImport.site, func.sum(SyncImport.recordings),
                                            func.sum(SyncImport.bytes_total), func.max(SyncImport.imported_at))
                                     .group_by(SyncImport.site)).all()
        if r == "site":
            yield GaugeMetricFamily("callfort_sync_waiting_recordings", "Recordings not handed over to the archive yet",
                                    value=waiting)
            yield CounterMetricFamily("callfort_sync_handed_over_recordings",
                                      "Recordings the archive confirmed (the site keeps stubs)", value=stubs)
            g = GaugeMetricFamily("callfort_sync_batches", "Hand-over batches by state", labels=["state"])
            for state in ("sending", "sent", "done", "rejected"):
                g.add_metric([state], batches.get(state, 0))
            yield g
            yield GaugeMetricFamily("callfort_sync_last_handover_timestamp_seconds",
                                    "When a batch was last confirmed by the archive (0: never)",
                                    value=last.timestamp() if last is not None else 0)
            return
        rec = CounterMetricFamily("callfort_sync_imported_recordings", "Recordings imported from a site",
                                  labels=["site"])
        size = CounterMetricFamily("callfort_sync_imported_bytes", "Bytes imported from a site", labels=["site"])
        when = GaugeMetricFamily("callfort_sync_last_import_timestamp_seconds", "The last import from a site",
                                 labels=["site"])
        for site, recordings, nbytes, at in sorted(per_site):
            rec.add_metric([site], recordings or 0)
            size.add_metric([site], nbytes or 0)
            when.add_metric([site], at.timestamp() if at is not None else 0)
        yield rec
        yield size
        yield when


def render(app: App, jobs: Any = None) -> bytes:
    """The exposition text for ``app`` (and the job runner of this server, if any)."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(CatalogCollector(app, jobs))  # type: ignore[arg-type]
    return generate_latest(registry)
