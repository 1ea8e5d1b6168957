"""Catalog tables of scale-out (issue 20): leases and the shared work queue.

``leases`` holds one row per thing only one worker of a cluster may do at a time: a
cluster-scoped background job (``job:<name>``) or a capture source (``capture:<name>``). The
holder renews ``expires_at`` while it works (the heartbeat); once it lapses, any worker may take
the lease over, and ``token`` grows on every change of holder (a fencing token).
``work_items`` holds the items several workers share (files of the pickup directory): each is
claimed with ``SELECT … FOR UPDATE SKIP LOCKED`` (PostgreSQL) or under the write lock (SQLite),
with a lease that expires, so that an item a dead worker held is taken again, never lost.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime


class LeaseRow(Base):
    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    token: Mapped[int] = mapped_column(BigInteger, default=1)
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime())
    renewed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WorkItemRow(Base):
    __tablename__ = "work_items"
    __table_args__ = (
        UniqueConstraint("queue", "key"),
        Index("ix_work_items_claim", "queue", "state", "available_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    queue: Mapped[str] = mapped_column(String(64))
    #: The item's identity in its queue (a file name): enqueuing it twice is one item.
    key: Mapped[str] = mapped_column(String(255))
    payload: Mapped[dict[str, object]] = mapped_column(JSON)
    # pending | running | done | failed
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    available_at: Mapped[datetime] = mapped_column(UTCDateTime())
    leased_by: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    result: Mapped[str | None] = mapped_column(String(255))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
