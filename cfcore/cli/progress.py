"""Progress bars for long work: on stderr, only when a person watches (a terminal) or asked for."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click


@contextmanager
def progress(total: int, label: str, enabled: bool | None = None) -> Iterator[Callable[[int], None]]:
    """Yield ``update(n)``; draws a bar on stderr when ``enabled`` (default: stderr is a terminal)."""
    show = sys.stderr.isatty() if enabled is None else enabled
    if not show or total <= 0:
        yield lambda n: None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True) as bar:
        yield bar.update
