"""In-tree default plugin: the FIS rule for sites and the archive (issue 17).

``sync-problem`` alerts on a refused transfer (changed host key, refused client key, a forged or
foreign receipt: critical), a batch the archive rejected (high), a failed import or send (warning:
it is retried, but somebody should know when a store is full) and a site that has not handed over
for ``[sync] overdue_nights`` nights (high).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from hookspecs import hookimpl
from hookspecs.types import AuditView, FisRule, Severity


def sync_problem(entries: tuple[AuditView, ...], now: datetime, options: Mapping[str, Any]) -> Iterator[
        tuple[Severity, str, tuple[str, ...]]]:
    for e in entries:
        if not e.action.startswith("sync."):
            continue
        where = f"{e.target_kind} {e.target_id or ''}".strip()
        ev = (f"audit:{e.seq}",)
        if e.outcome == "refused":
            yield Severity.CRITICAL, f"{e.action} refused for {where}: {str(e.detail.get('error', ''))[:200]}", ev
        elif e.outcome == "rejected":
            why = e.detail.get("problem") or e.detail.get("problems") or ""
            yield Severity.HIGH, f"{e.action}: batch {e.detail.get('batch', '')} rejected for {where}: {str(why)[:200]}", ev
        elif e.action == "sync.overdue":
            yield (Severity.HIGH, f"site '{e.target_id}' has not handed over to the archive for "
                                  f"{e.detail.get('nights')} nights (last: {e.detail.get('last_import') or 'never'})", ev)
        elif e.outcome == "error" and options.get("report_errors", True):
            yield Severity.WARNING, f"{e.action} failed for {where}: {str(e.detail.get('error', ''))[:200]}", ev


RULES = (
    FisRule(name="sync-problem", check=sync_problem,
            description="a site's hand-over to the archive was refused, rejected, failed or is overdue",
            default_options={"report_errors": True}),
)


@hookimpl
def cf_fis_rules() -> list[FisRule]:
    return list(RULES)
