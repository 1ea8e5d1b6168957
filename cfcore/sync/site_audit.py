"""The sites' audit trails inside the archive: imported as written, verifiable on their own.

A site's chain is keyed (``hash = HMAC(site's audit MAC key, prev_hash + entry)``, see
``cfcore.audit``) and the MAC key never leaves the site, so the archive cannot recompute those
hashes. What it checks instead, at import and in ``verify_site_chain`` at any later time:

- the *links*: entries numbered 1, 2, 3 … without a gap, each entry's ``prev_hash`` equal to the
  ``hash`` of the entry before (the first to the genesis), across batches;
- a *seal* per batch: the site's Ed25519 signature (its sync key, configured at the archive) over
  the SHA-256 of the batch's entries in canonical JSON, every column included: a changed, removed
  or inserted imported entry breaks the seal of its batch;
- the *head*: the site's signature over its last (seq, hash), kept in ``sync_site_heads``.

Kept in its own module on purpose: nothing here depends on how the site computes its hashes.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..audit import GENESIS
from ..crypto import archive_seal
from ..db.models_sync import SiteAuditEntry, SiteAuditHead, SiteAuditSeal
from ..errors import IntegrityError
from . import manifest as mf

if TYPE_CHECKING:
    from ..app import App

_COLUMNS = ("seq", "at", "user", "host", "ip", "function", "action", "target_kind", "target_id", "outcome",
            "approval_id", "detail", "prev_hash", "hash")


def entry_dict(e: Any) -> dict[str, Any]:
    """An audit entry (a row of either table) as the plain data a manifest carries."""
    out = {k: getattr(e, k) for k in _COLUMNS}
    out["at"] = e.at.astimezone(UTC).isoformat(timespec="microseconds")
    return out


def entries_digest(entries: list[dict[str, Any]]) -> str:
    return hashlib.sha256(mf.canonical_json(entries)).hexdigest()


def seal_message(site: str, batch: str, first: int, last: int, digest: str) -> bytes:
    return f"callfort-site-audit-seal:v1:{site}:{batch}:{first}:{last}:{digest}".encode()


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
        if values["at"].tzinfo is None:
            raise ValueError("time without a zone")
        return _Entry(**values)
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(f"an imported audit entry is malformed: {exc}") from None


def seal_batch(key: Any, site: str, batch: str, entries: list[dict[str, Any]]) -> str:
    """The site's seal (hex signature) over a batch's entries."""
    first = entries[0]["seq"] if entries else 0
    last = entries[-1]["seq"] if entries else 0
    return str(key.sign(seal_message(site, batch, first, last, entries_digest(entries))).hex())


def check_continuation(s: Session, site: str, batch: str, audit: dict[str, Any], site_key_hex: str) -> list[_Entry]:
    """The entries of a manifest's ``audit`` part after every check (links continuing what the
    archive holds, the batch seal, the signed head)."""
    head = s.get(SiteAuditHead, site)
    prev_seq, prev_hash = (head.seq, head.hash) if head else (0, GENESIS)
    raw = audit.get("entries", [])
    entries = [_parse(e) for e in raw]
    to, head_hash = int(audit.get("to", -1)), str(audit.get("head_hash", ""))
    if not entries and (to, head_hash) == (prev_seq, prev_hash):
        return []
    if int(audit.get("from", -1)) != prev_seq + 1:
        raise IntegrityError(f"site {site}'s audit entries start at {audit.get('from')}, the archive holds up to {prev_seq}",
                             hint="entries are missing between two batches")
    for e in entries:
        if e.seq != prev_seq + 1:
            raise IntegrityError(f"site {site}'s audit entry {prev_seq + 1} is missing (next present is {e.seq})")
        if e.prev_hash != prev_hash:
            raise IntegrityError(f"site {site}'s audit entry {e.seq} does not follow entry {e.seq - 1}")
        prev_seq, prev_hash = e.seq, e.hash
    if (prev_seq, prev_hash) != (to, head_hash):
        raise IntegrityError(f"site {site}'s audit head {to} does not match the entries sent")
    digest = entries_digest([entry_dict(e) for e in entries])
    archive_seal.verify_signature(site_key_hex, str(audit.get("seal_signature", "")),
                                  seal_message(site, batch, entries[0].seq, entries[-1].seq, digest),
                                  f"site {site}'s audit entries of batch {batch}")
    archive_seal.verify_signature(site_key_hex, str(audit.get("anchor_signature", "")),
                                  mf.anchor_message(site, to, head_hash), f"site {site}'s audit head")
    return entries


def store_entries(s: Session, site: str, batch: str, audit: dict[str, Any], entries: list[_Entry], now: datetime) -> None:
    if not entries:
        return
    for e in entries:
        s.add(SiteAuditEntry(site=site, batch_id=batch, **attrs.asdict(e)))
    s.add(SiteAuditSeal(site=site, batch_id=batch, from_seq=entries[0].seq, to_seq=entries[-1].seq,
                        digest=entries_digest([entry_dict(e) for e in entries]),
                        signature=str(audit["seal_signature"])))
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


def verify_site_chain(app: App, site: str, site_key_hex: str) -> SiteChainResult:
    """Walk a site's imported entries from the genesis: links, every batch seal, the signed head."""
    def bad(problem: str, checked: int) -> SiteChainResult:
        return SiteChainResult(site=site, ok=False, checked=checked, problem=problem)

    prev_seq, prev_hash, checked = 0, GENESIS, 0
    with app.catalog.session() as s:
        head = s.get(SiteAuditHead, site)
        rows = list(s.scalars(select(SiteAuditEntry).where(SiteAuditEntry.site == site).order_by(SiteAuditEntry.seq)))
        seals = list(s.scalars(select(SiteAuditSeal).where(SiteAuditSeal.site == site).order_by(SiteAuditSeal.from_seq)))
    by_seq: dict[int, SiteAuditEntry] = {}
    for e in rows:
        if e.seq != prev_seq + 1:
            return bad(f"entry {prev_seq + 1} is missing or doubled (next present is {e.seq})", checked)
        if e.prev_hash != prev_hash:
            return bad(f"entry {e.seq} does not follow entry {e.seq - 1}", checked)
        by_seq[e.seq] = e
        prev_seq, prev_hash, checked = e.seq, e.hash, checked + 1
    covered = 0
    for seal in seals:
        if seal.from_seq != covered + 1:
            return bad(f"the seals do not cover entries {covered + 1}..{seal.from_seq - 1}", checked)
        part = [by_seq[q] for q in range(seal.from_seq, seal.to_seq + 1) if q in by_seq]
        digest = entries_digest([entry_dict(e) for e in part])
        try:
            archive_seal.verify_signature(site_key_hex, seal.signature,
                                          seal_message(site, seal.batch_id, seal.from_seq, seal.to_seq, digest),
                                          f"batch {seal.batch_id}")
        except IntegrityError:
            return bad(f"entries {seal.from_seq}..{seal.to_seq} (batch {seal.batch_id}) were changed after the import",
                       checked)
        covered = seal.to_seq
    if covered != prev_seq:
        return bad(f"entries {covered + 1}..{prev_seq} are not sealed by the site", checked)
    if head is None:
        return SiteChainResult(site=site, ok=checked == 0, checked=checked,
                               problem=None if checked == 0 else "the head row was removed")
    if (head.seq, head.hash) != (prev_seq, prev_hash):
        return bad(f"the chain ends at {prev_seq} but its head says {head.seq}", checked)
    try:
        archive_seal.verify_signature(site_key_hex, head.anchor_signature,
                                      mf.anchor_message(site, head.seq, head.hash), f"site {site}'s audit head")
    except IntegrityError as exc:
        return bad(str(exc), checked)
    return SiteChainResult(site=site, ok=True, checked=checked)
