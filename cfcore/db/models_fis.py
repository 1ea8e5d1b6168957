"""Catalog tables of the fraud information system (issue 6): alerts, their deliveries to the
notifiers, Art. 33 breach cases and the scan cursor.

Nothing here holds personal data beyond ids: alert evidence is audit entry ids, recording ids and
object keys.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, UTCDateTime


class FisAlert(Base):
    """One irregularity. ``fingerprint`` = SHA-256 over rule and sorted evidence: the same finding
    seen by two scans is one alert."""

    __tablename__ = "fis_alerts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    rule: Mapped[str] = mapped_column(String(64), index=True)
    severity: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text)
    evidence: Mapped[list[str]] = mapped_column(JSON)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    #: seq of the ``fis.alert`` audit entry that recorded it.
    audit_seq: Mapped[int | None] = mapped_column(BigInteger)

    deliveries: Mapped[list[FisDelivery]] = relationship(
        back_populates="alert", cascade="all, delete-orphan", order_by="FisDelivery.id")


class FisDelivery(Base):
    """An alert on its way to one configured notifier (``[notify.<name>]``); retried with
    back-off until ``delivered_at`` is set."""

    __tablename__ = "fis_deliveries"
    __table_args__ = (UniqueConstraint("alert_id", "notifier", name="uq_fis_deliveries_alert_notifier"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("fis_alerts.id", ondelete="CASCADE"), index=True)
    notifier: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_try: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    alert: Mapped[FisAlert] = relationship(back_populates="deliveries")


class BreachCase(Base):
    """A personal-data breach under review by the DPO (GDPR Art. 33). The 72-hour deadline runs
    from ``aware_at``; ``fields`` holds the Art. 33(3) particulars (see cfcore.fis.breach.FIELDS)."""

    __tablename__ = "fis_breach_cases"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    opened_by: Mapped[str] = mapped_column(String(64))
    aware_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    # open | notified | closed
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    alerts: Mapped[list[BreachCaseAlert]] = relationship(
        back_populates="case", cascade="all, delete-orphan", order_by="BreachCaseAlert.id")


class BreachCaseAlert(Base):
    __tablename__ = "fis_breach_alerts"
    __table_args__ = (UniqueConstraint("case_id", "alert_id", name="uq_fis_breach_alerts_case_alert"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("fis_breach_cases.id", ondelete="CASCADE"), index=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("fis_alerts.id"), index=True)

    case: Mapped[BreachCase] = relationship(back_populates="alerts")


class FisCursor(Base):
    """One row (id 1): the last audit entry the rules have looked at, and when scans ran."""

    __tablename__ = "fis_scan_cursor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_scan_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_scrub_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
