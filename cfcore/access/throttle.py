"""Log-in throttling: delay rather than lock out, per IP address and per account, with bounded
Argon2 concurrency.

Why not a lock-out: locking an account after N wrong passwords lets anyone lock out anyone
(administrators included) by guessing. Instead, failures make the *next attempt* wait:

- per (account, IP): ``free_per_account_ip`` failures are free, then the gap between attempts
  doubles from 1 s up to ``max_delay_seconds``;
- per IP (all accounts): ``free_per_ip`` failures are free, then the same doubling;
- per account (all IPs): ``free_per_account`` failures, then the doubling, except from an IP that
  logged in successfully to that account before (the owner's usual PC keeps working during a
  distributed guessing attack).

An attempt that comes too early is answered ``TooManyRequests`` (HTTP 429 with ``Retry-After``)
without looking at the password or the account, so it costs nothing and tells nothing. A key's
failures are forgotten ``window_seconds`` after its last failure. The state lives in memory of
the serving process (``cf serve``): the API is the attack surface; CLI log-ins run on the server.

Argon2 runs on at most ``hash_slots`` threads at once (default: the number of CPU cores), so a
flood of log-ins cannot take the CPU from ingest and the API. Settings are ``[access]
login_*`` (see ``settings``).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from ..errors import InputError, TooManyRequests

if TYPE_CHECKING:
    from ..app import App

THROTTLED = "too many log-in attempts; wait before trying again"


@attrs.frozen(kw_only=True)
class ThrottleSettings:
    free_per_account_ip: int = 3
    free_per_ip: int = 10
    free_per_account: int = 20
    max_delay_seconds: int = 60
    window_seconds: int = 900
    hash_slots: int = 0  # 0: os.cpu_count()
    max_waiting: int = 0  # log-ins queued for a hash slot before 429; 0: 4 x hash_slots
    max_keys: int = 100_000


def settings(app: App) -> ThrottleSettings:
    values = {}
    for field in attrs.fields(ThrottleSettings):
        if field.name == "max_keys":
            continue
        value = app.config.get(f"access.login_{field.name}", int, field.default)
        if value < 0:
            raise InputError(f"{app.config.path}: access.login_{field.name} must not be negative")
        values[field.name] = value
    return ThrottleSettings(**values)


class _Key:
    __slots__ = ("failures", "last")

    def __init__(self) -> None:
        self.failures = 0
        self.last = 0.0


class LoginThrottle:
    """In-memory failure counters and the Argon2 slots of one serving process."""

    def __init__(self, cfg: ThrottleSettings, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.slots_total = cfg.hash_slots or os.cpu_count() or 1
        self.max_waiting = cfg.max_waiting or 4 * self.slots_total
        self.slots = threading.BoundedSemaphore(self.slots_total)
        self._now = monotonic
        self._lock = threading.Lock()
        self._keys: OrderedDict[tuple[str, ...], _Key] = OrderedDict()
        self._trusted: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._in_flight = 0
        self.refused = 0

    # -- delays

    def _delay(self, key: tuple[str, ...], free: int, now: float) -> float:
        k = self._keys.get(key)
        if k is None:
            return 0.0
        if now - k.last > self.cfg.window_seconds:
            del self._keys[key]
            return 0.0
        over = k.failures - free
        if over <= 0:
            return 0.0
        gap = min(float(self.cfg.max_delay_seconds), 2.0 ** (over - 1))
        return max(0.0, k.last + gap - now)

    def check(self, ip: str, account: str | None) -> None:
        """Raise ``TooManyRequests`` when an attempt from ``ip`` for ``account`` comes too early."""
        now = self._now()
        name = account or "?"
        with self._lock:
            waits = [self._delay(("ip", ip), self.cfg.free_per_ip, now),
                     self._delay(("acct-ip", name, ip), self.cfg.free_per_account_ip, now)]
            if (name, ip) not in self._trusted:
                waits.append(self._delay(("acct", name), self.cfg.free_per_account, now))
            wait = max(waits)
            if wait > 0:
                self.refused += 1
        if wait > 0:
            raise TooManyRequests(THROTTLED, retry_after=math.ceil(wait))

    def failed(self, ip: str, account: str | None) -> None:
        now = self._now()
        name = account or "?"
        with self._lock:
            for key in (("ip", ip), ("acct-ip", name, ip), ("acct", name)):
                k = self._keys.pop(key, None) or _Key()
                if now - k.last > self.cfg.window_seconds:
                    k.failures = 0
                k.failures += 1
                k.last = now
                self._keys[key] = k  # most recent last: the oldest are dropped first
            while len(self._keys) > self.cfg.max_keys:
                self._keys.popitem(last=False)

    def succeeded(self, ip: str, account: str) -> None:
        with self._lock:
            self._keys.pop(("acct-ip", account, ip), None)
            self._trusted.pop((account, ip), None)
            self._trusted[(account, ip)] = self._now()
            while len(self._trusted) > self.cfg.max_keys:
                self._trusted.popitem(last=False)

    def forget_account(self, account: str) -> None:
        """An administrator unlocked the account: its counters start again."""
        with self._lock:
            for key in [k for k in self._keys if len(k) > 1 and k[1] == account]:
                del self._keys[key]

    # -- bounded concurrency

    def enter(self) -> None:
        """Admit one more log-in to the queue for a hash slot, or refuse (429) when the queue is full."""
        with self._lock:
            if self._in_flight >= self.slots_total + self.max_waiting:
                self.refused += 1
                raise TooManyRequests("the server is busy with log-ins; try again", retry_after=1)
            self._in_flight += 1

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


def throttle_for(app: App) -> LoginThrottle:
    """The throttle of ``app`` (one per process and deployment)."""
    t = app.__dict__.get("_cf_login_throttle")
    if t is None:
        with _CREATE:
            t = app.__dict__.get("_cf_login_throttle")
            if t is None:
                t = LoginThrottle(settings(app))
                app.__dict__["_cf_login_throttle"] = t
    return t


_CREATE = threading.Lock()
