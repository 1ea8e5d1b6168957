"""The one injectable clock. Nothing in CallFort calls ``datetime.now()`` directly."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any


class Clock:
    """Wall clock in UTC. Subclasses and tests replace ``now``."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now()


class FrozenClock(Clock):
    """A clock that moves only when told: for tests (and the test kit's ``CF_NOW``)."""

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


def clock_from_plugins(pm: Any) -> Clock:
    """The real clock, unless a test-only plugin pins it (``cf_test_pinned_time``, the test kit's
    ``CF_NOW``). Nothing else, and nothing in the environment of a production install, changes it."""
    pinned = pm.hook.cf_test_pinned_time()
    if pinned is not None:
        if not isinstance(pinned, datetime):
            raise TypeError(f"cf_test_pinned_time returned {type(pinned).__name__}, not a datetime")
        return FrozenClock(pinned if pinned.tzinfo else pinned.replace(tzinfo=UTC))
    return Clock()


def utc(dt: datetime) -> datetime:
    """Naive datetimes read back from SQLite are UTC; make them aware."""
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
