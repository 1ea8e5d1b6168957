"""Catalog tables of transcripts and of the integration outbox (issue 18).

``transcripts`` holds one row per recording the worker has dealt with: the transcript itself only
as ciphertext under the recording's data key (the same envelope as the audio), so destroying the
key at the purge makes it unreadable everywhere, backups included; the purge also deletes the row.
``hook_outbox`` holds the events (recording archived, recording purged) each integration plugin
must receive, with retries and an idempotency key, so that they survive a restart.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from . import models  # noqa: F401 - the table "recordings" that the foreign keys name
from .base import Base, UTCDateTime


class TranscriptRow(Base):
    __tablename__ = "transcripts"

    recording_id: Mapped[str] = mapped_column(ForeignKey("recordings.id", ondelete="CASCADE"), primary_key=True)
    # done | refused | failed
    state: Mapped[str] = mapped_column(String(16), index=True)
    language: Mapped[str] = mapped_column(String(16))
    engine: Mapped[str | None] = mapped_column(String(64))
    ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    plain_sha256: Mapped[str | None] = mapped_column(String(64))
    words: Mapped[int] = mapped_column(Integer, default=0)
    audio_seconds: Mapped[float | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OutboxRow(Base):
    __tablename__ = "hook_outbox"

    #: The idempotency key handed to the plugin (32 hex characters), stable across retries.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    hook: Mapped[str] = mapped_column(String(64))
    plugin: Mapped[str] = mapped_column(String(64), index=True)
    subject_id: Mapped[str] = mapped_column(String(64), index=True)  # the recording id
    payload: Mapped[dict[str, object]] = mapped_column(JSON)
    # pending | delivered | dead
    state: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
