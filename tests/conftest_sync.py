"""Fixtures of the sync tests: ``world`` (two sites and an archive behind an asyncssh server) and
``ssh_world`` (the same behind Debian's OpenSSH server)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sync_helpers import World, build_world


@pytest.fixture
def world(tmp_path: Path, catalog_url: str, make_app: Any) -> Iterator[World]:
    w = build_world(tmp_path, catalog_url, make_app)
    yield w
    w.server.close()


@pytest.fixture
def openssh_world(tmp_path: Path, catalog_url: str, make_app: Any) -> Iterator[World]:
    w = build_world(tmp_path, catalog_url, make_app, server_kind="openssh")
    yield w
    w.server.close()
