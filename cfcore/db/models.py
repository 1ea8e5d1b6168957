"""Core catalog tables: recordings and what belongs to them, and the audit trail.

Customer identifiers are never stored in clear: ``recording_subjects.pseudonym`` is an HMAC over
the normalised identifier (see ``cfcore.subjects``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, UTCDateTime


class Recording(Base):
    __tablename__ = "recordings"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(64))
    pbx_call_id: Mapped[str | None] = mapped_column(String(128), index=True)
    advisor_id: Mapped[str] = mapped_column(String(64), index=True)
    direction: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime())
    duration: Mapped[float] = mapped_column(Float)
    channels: Mapped[int] = mapped_column(Integer)  # 1 = advisor only, 2 = advisor + customer
    sample_rate: Mapped[int] = mapped_column(Integer)
    codec: Mapped[str] = mapped_column(String(32))  # storage codec, e.g. pcm_s16le
    two_sided: Mapped[bool] = mapped_column(Boolean, default=False)
    # archived | incomplete | purged
    state: Mapped[str] = mapped_column(String(16), default="archived", index=True)
    retention_class: Mapped[str] = mapped_column(String(32))
    retention_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    retention_rule: Mapped[str | None] = mapped_column(String(64))
    legal_hold: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    segments: Mapped[list[ModeSegmentRow]] = relationship(
        back_populates="recording", cascade="all, delete-orphan", order_by="ModeSegmentRow.idx")
    consents: Mapped[list[ConsentRow]] = relationship(
        back_populates="recording", cascade="all, delete-orphan", order_by="ConsentRow.offset")
    subjects: Mapped[list[RecordingSubject]] = relationship(
        back_populates="recording", cascade="all, delete-orphan")
    media: Mapped[list[MediaObject]] = relationship(
        back_populates="recording", cascade="all, delete-orphan")


class ModeSegmentRow(Base):
    __tablename__ = "mode_segments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recording_id: Mapped[str] = mapped_column(ForeignKey("recordings.id", ondelete="CASCADE"), index=True)
    idx: Mapped[int] = mapped_column(Integer)
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    mode: Mapped[str] = mapped_column(String(16))
    #: the window in which the PBX switched into this mode, when the position is not exact
    start_lo: Mapped[float | None] = mapped_column(Float, nullable=True)
    start_hi: Mapped[float | None] = mapped_column(Float, nullable=True)
    recording: Mapped[Recording] = relationship(back_populates="segments")


class ConsentRow(Base):
    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recording_id: Mapped[str] = mapped_column(ForeignKey("recordings.id", ondelete="CASCADE"), index=True)
    given_at: Mapped[datetime] = mapped_column(UTCDateTime())  # when the advisor acted
    offset: Mapped[float] = mapped_column(Float)
    by_user: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16))
    #: when the PBX confirmed the switch (None for consents from before 2026-12)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: the consent's proof (``Consent.proof``) as JSON, encrypted under the recording's data key
    #: (envelope channel ``consent-<n>``); gone with the data key when the recording is purged
    proof_enc: Mapped[bytes | None] = mapped_column(LargeBinary(), nullable=True)
    recording: Mapped[Recording] = relationship(back_populates="consents")


class RecordingSubject(Base):
    """A customer of a recording, by pseudonym only. ``kind``: ``customer_id`` or ``number``."""

    __tablename__ = "recording_subjects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recording_id: Mapped[str] = mapped_column(ForeignKey("recordings.id", ondelete="CASCADE"), index=True)
    pseudonym: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    recording: Mapped[Recording] = relationship(back_populates="subjects")


class MediaObject(Base):
    """One encrypted object in one store: a channel of a recording."""

    __tablename__ = "media_objects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recording_id: Mapped[str] = mapped_column(ForeignKey("recordings.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16))  # advisor | customer
    store: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))  # of the ciphertext object
    plain_size: Mapped[int] = mapped_column(BigInteger)
    plain_sha256: Mapped[str] = mapped_column(String(64))  # of the stored (decrypted) audio payload
    codec: Mapped[str] = mapped_column(String(32))
    recording: Mapped[Recording] = relationship(back_populates="media")


class DataKey(Base):
    """The recording's data key, wrapped by a KEK. ``wrapped`` NULL = crypto-shredded."""

    __tablename__ = "data_keys"

    recording_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kek_id: Mapped[str | None] = mapped_column(String(64))
    wrapped: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    destroyed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class TombstoneRow(Base):
    """What remains of a purged or erased recording (no personal data in clear)."""

    __tablename__ = "tombstones"

    recording_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(16))
    two_sided: Mapped[bool] = mapped_column(Boolean)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime())
    retention_class: Mapped[str] = mapped_column(String(32))
    rule: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(64))  # retention-expired | art17-erasure | ...
    deleted_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    subject_pseudonyms: Mapped[list[str]] = mapped_column(JSON)
    ciphertext_sha256: Mapped[list[str]] = mapped_column(JSON)
    approval_id: Mapped[str | None] = mapped_column(String(32))


class TombstoneSubject(Base):
    """Index from pseudonym to tombstone, so that Art. 15 finds deleted records fast."""

    __tablename__ = "tombstone_subjects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recording_id: Mapped[str] = mapped_column(ForeignKey("tombstones.recording_id", ondelete="CASCADE"), index=True)
    pseudonym: Mapped[str] = mapped_column(String(64), index=True)


class AuditEntry(Base):
    """Append-only, hash-chained. ``hash = SHA-256(prev_hash || canonical(entry))``."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    user: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(255))
    ip: Mapped[str] = mapped_column(String(64))
    function: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_kind: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(128), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    approval_id: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """One row: the last seq and hash. Locked by every append (serialises writers on PostgreSQL)
    and makes a truncated tail detectable."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """An Ed25519 signature over (seq, hash) of the chain at a point."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
