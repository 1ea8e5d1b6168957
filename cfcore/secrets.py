"""The deployment's secret files, created by ``cf init`` only and required everywhere else.

A secret that is missing is an error, never silently recreated: a new key-encryption key would
leave the recordings wrapped under the old one unreadable once the backup returns; a new pseudonym
key would make the Art. 15 report say "no recordings"; a new audit key would let whoever removed
the old one re-key the trail. ``App`` checks every secret when it opens, so ``cf serve``,
``cf ingest``, ``cf dsar`` … refuse to start with one line naming the missing file.

Files in ``[keys] dir`` (mode 0700), each 0600:

- ``keyring.json``: the KEKs (only with ``[keys] provider = "keyring"``; a plugin provider keeps
  its own keys),
- ``subject-pseudonym.key``: HMAC key of customer-id and phone-number pseudonyms,
- ``stream-link.key``: HMAC key of streaming links,
- ``audit-mac.key``: HMAC key of the audit chain (the database does not hold it),
- ``audit-signing.key``: Ed25519 seed that signs audit anchors.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .crypto.keyfiles import check_private, create_secret, load_secret
from .errors import ConfigError

if TYPE_CHECKING:
    from .app import App

#: file name -> bytes of the random secrets the core keeps (hex files)
CORE_SECRETS: dict[str, int] = {
    "subject-pseudonym.key": 32,
    "stream-link.key": 32,
    "audit-mac.key": 32,
    "audit-signing.key": 32,
}


def create_secrets(keys_dir: Path, clock: Callable[[], datetime], *, keyring: bool = True) -> list[str]:
    """Create every missing secret (``cf init``); returns the names created. Existing files are
    never replaced."""
    from .crypto.keyring import KeyRing

    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    created = [name for name, n in CORE_SECRETS.items() if create_secret(keys_dir / name, n)]
    if keyring and KeyRing(keys_dir, clock).create():
        created.append("keyring.json")
    return created


def check_secrets(app: App) -> None:
    """Every secret the deployment needs exists, is private and well-formed; else ``ConfigError``."""
    for name, n in CORE_SECRETS.items():
        load_secret(app.keys_dir / name, n)
    if app.config.get("keys.provider", str, "keyring") == "keyring":
        path = app.keys_dir / "keyring.json"
        if not path.exists():
            raise ConfigError(f"key ring {path} is missing",
                              hint="restore the key directory from its backup; only 'cf init' creates keys")
        check_private(path)
