"""Catalog tables of retention, legal hold and the purge (issue 5).

None of them holds a customer identifier. Rows of a recording that carry free text (override and
hold reasons) are deleted with the recording's other rows when it is purged; the purge tasks stay
as the bookkeeping of the disposal log.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from . import models  # noqa: F401 - the table "recordings" that the foreign keys name
from .base import Base, UTCDateTime


class RetentionOverride(Base):
    """A per-recording extension or shortening, approved under four-eyes."""

    __tablename__ = "retention_overrides"

    recording_id: Mapped[str] = mapped_column(ForeignKey("recordings.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # extend | shorten
    until: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(Text)
    set_at: Mapped[datetime] = mapped_column(UTCDateTime())
    set_by: Mapped[str] = mapped_column(String(64))
    approval_id: Mapped[str | None] = mapped_column(String(32))


class LegalHold(Base):
    """A legal hold on a recording; active while ``released_at`` is NULL."""

    __tablename__ = "legal_holds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recording_id: Mapped[str] = mapped_column(ForeignKey("recordings.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    set_at: Mapped[datetime] = mapped_column(UTCDateTime())
    set_by: Mapped[str] = mapped_column(String(64))
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    released_by: Mapped[str | None] = mapped_column(String(64))
    release_approval_id: Mapped[str | None] = mapped_column(String(32))


class PurgeTask(Base):
    """The purge state machine of one recording (see docs/retention.md).

    ``state``: ``purging`` (media being deleted; a rerun resumes it) or ``done`` (key destroyed,
    tombstone written). ``disposal_seq`` is the audit entry that reported it in a disposal log.
    """

    __tablename__ = "purge_tasks"

    recording_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(String(64))  # retention-expired | art17-erasure
    rule: Mapped[str] = mapped_column(String(64))
    approval_id: Mapped[str | None] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    disposal_seq: Mapped[int | None] = mapped_column(BigInteger, index=True)
