"""The one injectable clock. Nothing in CallFort calls ``datetime.now()`` directly."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta


class Clock:
    """Wall clock in UTC. Subclasses and tests replace ``now``."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now()


class FrozenClock(Clock):
    """A clock that moves only when told: for tests and for ``CF_NOW``."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FrozenClock needs a timezone-aware datetime")
        self._at = at
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._at

    def set(self, at: datetime) -> None:
        with self._lock:
            self._at = at

    def advance(self, delta: timedelta | float) -> datetime:
        with self._lock:
            self._at += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
            return self._at


def clock_from_env() -> Clock:
    """``CF_NOW=2031-01-01T00:00:00+00:00`` pins the clock (tests that run the CLI as a process)."""
    pinned = os.environ.get("CF_NOW")
    if pinned:
        at = datetime.fromisoformat(pinned)
        return FrozenClock(at if at.tzinfo else at.replace(tzinfo=UTC))
    return Clock()


def utc(dt: datetime) -> datetime:
    """Naive datetimes read back from SQLite are UTC; make them aware."""
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
