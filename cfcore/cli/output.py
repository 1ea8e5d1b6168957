"""Output of ``cf`` commands: JSON with ``--json``, else text for people."""

from __future__ import annotations

import json
from typing import Any

import click


def emit(data: Any, as_json: bool, human: str | None = None) -> None:
    """Print ``data`` as JSON (``--json``) or the human text."""
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        click.echo(human if human is not None else str(data))
