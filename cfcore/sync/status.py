"""``cf sync status``: what a site has in flight and handed over; what the archive holds per site."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from ..db.models_sync import ArchiveWrap, SyncBatch, SyncStub
from .settings import archive_settings, role

if TYPE_CHECKING:
    from ..app import App


def sync_status(app: App, ctx: Any) -> dict[str, Any]:
    r = role(app.config)
    if r == "site":
        with app.catalog.session() as s:
            batches = [{"id": b.id, "state": b.state, "recordings": len(b.recordings), "updated_at": b.updated_at.isoformat(),
                        "error": b.error} for b in s.scalars(select(SyncBatch).order_by(SyncBatch.created_at.desc()).limit(10))]
            stubs = s.scalar(select(func.count()).select_from(SyncStub)) or 0
            waiting = s.scalar(select(func.count()).select_from(ArchiveWrap)) or 0
            last = s.scalar(select(func.max(SyncBatch.updated_at)).where(SyncBatch.state == "done"))
        text = [f"site {app.config.site}: {waiting} recordings waiting, {stubs} handed over, last hand-over "
                f"{last.isoformat() if last else 'never'}"]
        text += [f"  batch {b['id']} {b['state']} ({b['recordings']} recordings)" for b in batches]
        return {"role": r, "waiting": waiting, "handed_over": stubs, "batches": batches,
                "last_handover": last.isoformat() if last else None, "text": "\n".join(text), "ok": True}
    if r == "archive":
        from .overdue import check_overdue, last_imports
        from .site_audit import verify_site_chain

        settings = archive_settings(app.config)
        chains = {site: verify_site_chain(app, site, key) for site, key in settings.site_keys.items()}
        imports = last_imports(app)
        overdue = {o["site"] for o in check_overdue(app)}
        text = [f"archive {app.config.site}: {len(settings.site_keys)} sites"]
        for site, res in chains.items():
            text.append(f"  {site}: last hand-over {imports[site].isoformat() if imports[site] else 'never'}"
                        f"{' OVERDUE' if site in overdue else ''}; audit chain {res.checked} entries "
                        + ("ok" if res.ok else f"BROKEN: {res.problem}"))
        ok = all(c.ok for c in chains.values())
        return {"role": r, "sites": {site: {"last_import": imports[site].isoformat() if imports[site] else None,
                                            "overdue": site in overdue, "chain_ok": res.ok, "chain_entries": res.checked,
                                            "chain_problem": res.problem} for site, res in chains.items()},
                "text": "\n".join(text), "ok": ok}
    return {"role": r, "text": f"{r} deployment: nothing to sync", "ok": True}
