"""In-process counters of media store operations, read by ``GET /metrics``.

Kept apart from ``cfcore.metrics`` so that the store path imports nothing of prometheus_client:
``timed(store, op)`` adds one observation (count, seconds, errors) to a dict under a lock. A
missing object (``KeyError``) is an answer, not a store error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_LOCK = threading.Lock()
#: (store, op) -> [count, seconds, errors]
STORE_OPS: dict[tuple[str, str], list[float]] = {}


@contextmanager
def timed(store: str, op: str) -> Iterator[None]:
    t0 = time.perf_counter()
    failed = False
    try:
        yield
    except KeyError:
        raise
    except BaseException:
        failed = True
        raise
    finally:
        dt = time.perf_counter() - t0
        with _LOCK:
            row = STORE_OPS.setdefault((store, op), [0, 0.0, 0])
            row[0] += 1
            row[1] += dt
            row[2] += 1 if failed else 0


def snapshot() -> dict[tuple[str, str], tuple[int, float, int]]:
    with _LOCK:
        return {k: (int(v[0]), float(v[1]), int(v[2])) for k, v in STORE_OPS.items()}
