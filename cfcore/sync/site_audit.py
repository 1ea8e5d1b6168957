"""The sites' audit trails inside the archive: imported as written, verifiable on their own.

Each site's entries keep their seq, hashes and content (``sync_site_audit``); ``sync_site_heads``
holds the last imported seq and hash with the site's Ed25519 anchor signature over them. An import
must continue the chain exactly where the previous one stopped; ``verify_site_chain`` recomputes
every hash, checks the continuity from the genesis and the anchor at the head, so a site's trail
stays as provable inside the archive as it was on the site.

Kept in its own module on purpose: the site chain follows ``cfcore.audit``'s hashing of its time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..audit import GENESIS, chain_hash
from ..crypto import archive_seal
from ..db.models_sync import SiteAuditEntry, SiteAuditHead
from ..errors import IntegrityError
from . import manifest as mf

_COLUMNS = ("seq", "at", "user", "host", "ip", "function", "action", "target_kind", "target_id", "outcome",
            "approval_id", "detail", "prev_hash", "hash")


@attrs.frozen
class _Entry:
    seq: int
    at: datetime
    user: str
    host: str
    ip: str
    function: str
    action: str
    target_kind: str
    target_id: str | None
    outcome: str
    approval_id: str | None
    detail: str
    prev_hash: str
    hash: str


def _parse(raw: dict[str, Any]) -> _Entry:
    try:
        values = {k: raw[k] for k in _COLUMNS}
        values["at"] = datetime.fromisoformat(values["at"])
        return _Entry(**values)
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(f"an imported audit entry is malformed: {exc}") from None


def check_continuation(s: Session, site: str, audit: dict[str, Any], site_key_hex: str) -> list[_Entry]:
    """The entries of a manifest's ``audit`` part after every check (continuity with what the
    archive holds, each hash, the anchor signature)."""
    head = s.get(SiteAuditHead, site)
    prev_seq, prev_hash = (head.seq, head.hash) if head else (0, GENESIS)
    entries = [_parse(e) for e in audit.get("entries", [])]
    to, head_hash = int(audit.get("to", -1)), str(audit.get("head_hash", ""))
    if not entries and (to, head_hash) == (prev_seq, prev_hash):
        return []
    if int(audit.get("from", -1)) != prev_seq + 1:
        raise IntegrityError(f"site {site}'s audit entries start at {audit.get('from')}, the archive holds up to {prev_seq}",
                             hint="entries are missing between two batches")
    for e in entries:
        if e.seq != prev_seq + 1:
            raise IntegrityError(f"site {site}'s audit entry {prev_seq + 1} is missing (next present is {e.seq})")
        if e.prev_hash != prev_hash or chain_hash(prev_hash, e) != e.hash:
            raise IntegrityError(f"site {site}'s audit entry {e.seq} does not verify (changed, inserted or reordered)")
        prev_seq, prev_hash = e.seq, e.hash
    if (prev_seq, prev_hash) != (to, head_hash):
        raise IntegrityError(f"site {site}'s audit head {to} does not match the entries sent")
    archive_seal.verify_signature(site_key_hex, str(audit.get("anchor_signature", "")),
                                  mf.anchor_message(site, to, head_hash), f"site {site}'s audit anchor")
    return entries


def store_entries(s: Session, site: str, batch: str, audit: dict[str, Any], entries: list[_Entry], now: datetime) -> None:
    for e in entries:
        s.add(SiteAuditEntry(site=site, batch_id=batch, **attrs.asdict(e)))
    if not entries:
        return
    head = s.get(SiteAuditHead, site)
    if head is None:
        head = SiteAuditHead(site=site)
        s.add(head)
    head.seq, head.hash, head.batch_id = entries[-1].seq, entries[-1].hash, batch
    head.anchor_signature, head.last_import_at = str(audit["anchor_signature"]), now


@attrs.frozen(kw_only=True)
class SiteChainResult:
    site: str
    ok: bool
    checked: int
    problem: str | None = None


def verify_site_chain(app: Any, site: str, site_key_hex: str) -> SiteChainResult:
    """Walk a site's imported chain from the genesis; check every hash and the signed head."""
    prev_seq, prev_hash, checked = 0, GENESIS, 0
    with app.catalog.session() as s:
        head = s.get(SiteAuditHead, site)
        for e in s.scalars(select(SiteAuditEntry).where(SiteAuditEntry.site == site).order_by(SiteAuditEntry.seq)):
            if e.seq != prev_seq + 1:
                return SiteChainResult(site=site, ok=False, checked=checked, problem=f"entry {prev_seq + 1} is missing")
            if e.prev_hash != prev_hash or chain_hash(prev_hash, e) != e.hash:
                return SiteChainResult(site=site, ok=False, checked=checked, problem=f"entry {e.seq} was changed")
            prev_seq, prev_hash, checked = e.seq, e.hash, checked + 1
        if head is None:
            return SiteChainResult(site=site, ok=checked == 0, checked=checked,
                                   problem=None if checked == 0 else "the head row was removed")
        if (head.seq, head.hash) != (prev_seq, prev_hash):
            return SiteChainResult(site=site, ok=False, checked=checked,
                                   problem=f"the chain ends at {prev_seq} but its head says {head.seq}")
        try:
            archive_seal.verify_signature(site_key_hex, head.anchor_signature,
                                          mf.anchor_message(site, head.seq, head.hash), f"site {site}'s audit anchor")
        except IntegrityError as exc:
            return SiteChainResult(site=site, ok=False, checked=checked, problem=str(exc))
    return SiteChainResult(site=site, ok=True, checked=checked)
