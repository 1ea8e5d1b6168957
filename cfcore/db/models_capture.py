"""Catalog tables of capture (issue 7): live calls, mode-change requests, consents, runners.

A live call is one advisor leg a capture source reported (``call_id`` is the source's leg id).
The customer's number is never stored in clear here: ``customer_hint`` keeps a masked form
(``+49******56``) so that an advisor can tell two of their calls apart.

Mode changes cross processes through ``capture_mode_requests``: ``cf calls record-both`` (or the
REST API) writes a ``pending`` row; the capture runner that owns the call's source claims it
(``applying``), asks the PBX and writes the outcome (``applied`` / ``failed``); the requester
waits for that outcome. ``expired`` is set by a requester that gave up waiting before any runner
claimed the request.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime


class LiveCall(Base):
    __tablename__ = "capture_calls"

    call_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    source: Mapped[str] = mapped_column(String(64), index=True)
    pbx_call_id: Mapped[str | None] = mapped_column(String(128), index=True)
    advisor_id: Mapped[str] = mapped_column(String(64), index=True)
    direction: Mapped[str] = mapped_column(String(16))
    customer_hint: Mapped[str | None] = mapped_column(String(32))
    # ringing | recording | held | ended | archived | failed
    state: Mapped[str] = mapped_column(String(16), index=True)
    # advisor_only | both | paused | stop
    mode: Mapped[str] = mapped_column(String(16))
    mode_before_pause: Mapped[str | None] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recording_id: Mapped[str | None] = mapped_column(String(32), index=True)
    end_reason: Mapped[str | None] = mapped_column(String(200))
    transferred_to: Mapped[str | None] = mapped_column(String(64))


class CallConsent(Base):
    """The customer was informed and agreed to two-sided recording: who triggered it, when, how."""

    __tablename__ = "capture_consents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("capture_calls.call_id", ondelete="CASCADE"), index=True)
    given_at: Mapped[datetime] = mapped_column(UTCDateTime())  # when the advisor acted
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime())  # when the PBX confirmed
    by_user: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str] = mapped_column(String(32))


class ModeRequest(Base):
    __tablename__ = "capture_mode_requests"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("capture_calls.call_id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(16))  # record_both | pause | resume
    mode: Mapped[str | None] = mapped_column(String(16))  # the mode applied
    method: Mapped[str] = mapped_column(String(16))  # web | api | cli | cti | dtmf
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: when the advisor acted (clicked, started the command); the request row is written later
    acted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    user_id: Mapped[str] = mapped_column(String(64))
    username: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(255))
    ip: Mapped[str] = mapped_column(String(64))
    function: Mapped[str] = mapped_column(String(64))
    # pending | applying | applied | failed | unavailable (PBX unreachable) | expired
    status: Mapped[str] = mapped_column(String(16), index=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    runner_id: Mapped[str | None] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(String(255))


class CaptureRunnerRow(Base):
    """A running capture runner (``cf capture run`` or ``cf serve``) and its sources' status."""

    __tablename__ = "capture_runners"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sources: Mapped[list[dict[str, object]]] = mapped_column(JSON)
