"""The hand-over format between a site and the archive (see docs/sites.md).

Inbox layout below the archive's inbox root (the SFTP directory the site writes to)::

    <site>/<batch>.part/objects/<recording id>.<channel>.cfe   upload under way (resumable)
    <site>/<batch>.part/manifest.json, manifest.sig            written last
    <site>/<batch>/...                                         renamed when complete
    <site>/receipts/<batch>.json                               the archive's signed receipt

``manifest.json`` is canonical JSON signed by the site's Ed25519 sync key (``manifest.sig`` holds
the hex signature over its exact bytes). A receipt file is ``{"body": <canonical JSON string>,
"signature": <hex Ed25519 signature of body by the archive>}``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import InputError

FORMAT = 1
BATCH_RE = re.compile(r"^[0-9a-f]{32}$")
OBJECT_RE = re.compile(r"^([0-9a-f]{32})\.(advisor|customer)\.cfe$")
MAX_MANIFEST = 512 * 1024 * 1024
MAX_RECEIPT = 64 * 1024 * 1024
RECEIPT_CONTEXT = "callfort-sync-receipt:v1\n"
ANCHOR_CONTEXT = "callfort-site-audit:v1"


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def batch_dir(site: str, batch: str, *, part: bool = False) -> str:
    return f"{site}/{batch}{'.part' if part else ''}"


def receipt_path(site: str, batch: str) -> str:
    return f"{site}/receipts/{batch}.json"


def object_name(recording_id: str, channel: str) -> str:
    return f"{recording_id}.{channel}.cfe"


def anchor_message(site: str, seq: int, hash_: str) -> bytes:
    return f"{ANCHOR_CONTEXT}:{site}:{seq}:{hash_}".encode()


def parse_json(raw: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"{what} is not a JSON object")
    return data
