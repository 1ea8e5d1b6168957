"""Catalog tables of sites and the archive (issue 17: sync over SSH).

Site side: ``sync_archive_wraps`` (each data key sealed to the archive's public key as soon as the
recording is final), ``sync_batches`` (what was sent, its state, the archive's receipt) and
``sync_stubs`` (what remains of a recording after its verified hand-over: where it went and the
receipt). Archive side: ``sync_imports`` (batches imported, for exactly-once), the sites' audit
chains (``sync_site_audit``, one verifiable chain per site) and their heads.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime


class ArchiveWrap(Base):
    """A recording's data key sealed to the archive's X25519 key (site side)."""

    __tablename__ = "sync_archive_wraps"

    recording_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    archive_key_id: Mapped[str] = mapped_column(String(64))
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SyncBatch(Base):
    """One batch a site sends. ``state``: ``sending`` (upload under way or to be resumed),
    ``sent`` (complete in the inbox, waiting for the receipt), ``done`` (receipt checked, handed
    over), ``rejected`` (the archive refused it; its recordings go into a later batch)."""

    __tablename__ = "sync_batches"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    target: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recordings: Mapped[list[str]] = mapped_column(JSON)
    audit_from: Mapped[int] = mapped_column(BigInteger)  # first site audit seq in the batch
    audit_to: Mapped[int] = mapped_column(BigInteger)  # last one (audit_from - 1 when none)
    bytes_total: Mapped[int] = mapped_column(BigInteger, default=0)
    manifest_sha256: Mapped[str | None] = mapped_column(String(64))
    receipt: Mapped[str | None] = mapped_column(Text)  # the signed receipt as received
    error: Mapped[str | None] = mapped_column(Text)


class SyncStub(Base):
    """What a site keeps of a handed-over recording: no media, no key, no personal data."""

    __tablename__ = "sync_stubs"

    recording_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(40), index=True)
    target: Mapped[str] = mapped_column(String(64))
    archive: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    handed_over_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ciphertext_sha256: Mapped[list[str]] = mapped_column(JSON)
    receipt_sha256: Mapped[str] = mapped_column(String(64))


class SyncImport(Base):
    """A batch the archive imported (exactly-once by site and batch id)."""

    __tablename__ = "sync_imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(String(64), index=True)
    batch_id: Mapped[str] = mapped_column(String(40), index=True)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    recordings: Mapped[int] = mapped_column(Integer)
    audit_entries: Mapped[int] = mapped_column(Integer)
    bytes_total: Mapped[int] = mapped_column(BigInteger)
    receipt: Mapped[str] = mapped_column(Text)


class SiteAuditEntry(Base):
    """An audit entry of a site, imported as it was written (same columns, same hash chain)."""

    __tablename__ = "sync_site_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(String(64), index=True)
    seq: Mapped[int] = mapped_column(BigInteger, index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    user: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(255))
    ip: Mapped[str] = mapped_column(String(64))
    function: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target_kind: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(128))
    outcome: Mapped[str] = mapped_column(String(16))
    approval_id: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    batch_id: Mapped[str] = mapped_column(String(40))


class SiteAuditHead(Base):
    """Per site: the last imported seq and hash, and the signed manifest that anchored it."""

    __tablename__ = "sync_site_heads"

    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    batch_id: Mapped[str] = mapped_column(String(40))
    anchor_signature: Mapped[str] = mapped_column(String(128))
    last_import_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SiteAuditSeal(Base):
    """The site's Ed25519 signature over the entries of one batch (SHA-256 of their canonical
    JSON). The site's own chain is keyed with a MAC key that never leaves the site, so the archive
    proves the imported entries unchanged by these seals, and their order by the hash links."""

    __tablename__ = "sync_site_audit_seals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(String(64), index=True)
    batch_id: Mapped[str] = mapped_column(String(40))
    from_seq: Mapped[int] = mapped_column(BigInteger)
    to_seq: Mapped[int] = mapped_column(BigInteger)
    digest: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
