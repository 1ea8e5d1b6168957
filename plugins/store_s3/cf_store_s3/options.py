"""The options of a ``[stores.<name>]`` section with ``type = "s3"``, validated once at start.

Secrets (``access_key``, ``secret_key``, ``session_token``) arrive resolved from the config's
``{ env = "..." }`` / ``{ file = "..." }`` and are kept out of every repr and message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from hookspecs.types import StoreMisconfigured

MiB = 1024 * 1024
#: S3's smallest part (all but the last); its largest part is 5 GiB.
MIN_PART = 5 * MiB
MAX_PART = 5 * 1024 * MiB

DEFAULT_THRESHOLD = 64 * MiB
DEFAULT_CHUNK = 16 * MiB

LOCK_MODES = {"compliance": "COMPLIANCE", "governance": "GOVERNANCE"}


@attrs.frozen(kw_only=True)
class S3Options:
    bucket: str
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key: str | None = attrs.field(default=None, repr=False)
    secret_key: str | None = attrs.field(default=None, repr=False)
    session_token: str | None = attrs.field(default=None, repr=False)
    prefix: str = ""
    lock_mode: str = "COMPLIANCE"
    multipart_threshold: int = DEFAULT_THRESHOLD
    multipart_chunk: int = DEFAULT_CHUNK
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    retries: int = 4
    addressing_style: str = "path"
    ca_bundle: str | None = None
    #: ``auto``: send ``If-None-Match: *`` and stop sending it if the server answers 501.
    conditional_put: str = "auto"
    max_pool_connections: int = 10


_STRINGS = ("bucket", "endpoint_url", "region", "access_key", "secret_key", "session_token", "prefix",
            "lock_mode", "addressing_style", "ca_bundle", "conditional_put")
_INTS = ("multipart_threshold", "multipart_chunk", "retries", "max_pool_connections")
_FLOATS = ("connect_timeout", "read_timeout")
#: Keys the core may leave in the section it hands over.
_IGNORED = ("type", "name")


def parse_options(store: str, raw: Mapping[str, Any]) -> S3Options:
    """Validate a config section; every error names the store and the option, never its value."""
    where = f"[stores.{store}]"
    known = set(_STRINGS) | set(_INTS) | set(_FLOATS)
    unknown = sorted(set(raw) - known - set(_IGNORED))
    if unknown:
        raise StoreMisconfigured(f"{where}: unknown option '{unknown[0]}' for type s3 "
                                 f"(choose from: {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    for key in _STRINGS:
        if key in raw:
            if not isinstance(raw[key], str):
                raise StoreMisconfigured(f"{where}: {key} must be a string")
            values[key] = raw[key]
    for key in _INTS:
        if key in raw:
            if not isinstance(raw[key], int) or isinstance(raw[key], bool):
                raise StoreMisconfigured(f"{where}: {key} must be an integer")
            values[key] = raw[key]
    for key in _FLOATS:
        if key in raw:
            if not isinstance(raw[key], int | float) or isinstance(raw[key], bool) or raw[key] <= 0:
                raise StoreMisconfigured(f"{where}: {key} must be a positive number of seconds")
            values[key] = float(raw[key])
    if not values.get("bucket"):
        raise StoreMisconfigured(f"{where}: bucket is required for type s3")
    mode = values.pop("lock_mode", "compliance").lower()
    if mode not in LOCK_MODES:
        raise StoreMisconfigured(f"{where}: lock_mode must be compliance or governance, not '{mode}'")
    values["lock_mode"] = LOCK_MODES[mode]
    if ("access_key" in values) != ("secret_key" in values):
        raise StoreMisconfigured(f"{where}: give both access_key and secret_key, or neither "
                                 "(then the AWS default chain is used: AWS_ACCESS_KEY_ID, profiles, roles)")
    prefix = values.get("prefix", "")
    if prefix and not prefix.endswith("/"):
        values["prefix"] = prefix + "/"
    if values.get("addressing_style", "path") not in ("path", "virtual", "auto"):
        raise StoreMisconfigured(f"{where}: addressing_style must be path, virtual or auto")
    if values.get("conditional_put", "auto") not in ("auto", "always", "never"):
        raise StoreMisconfigured(f"{where}: conditional_put must be auto, always or never")
    chunk = values.get("multipart_chunk", DEFAULT_CHUNK)
    if not MIN_PART <= chunk <= MAX_PART:
        raise StoreMisconfigured(f"{where}: multipart_chunk must be between 5 MiB and 5 GiB ({MIN_PART}..{MAX_PART})")
    threshold = values.get("multipart_threshold", DEFAULT_THRESHOLD)
    if threshold < 1:
        raise StoreMisconfigured(f"{where}: multipart_threshold must be at least 1 byte")
    if values.get("retries", 0) < 0 or values.get("max_pool_connections", 1) < 1:
        raise StoreMisconfigured(f"{where}: retries must be >= 0 and max_pool_connections >= 1")
    return S3Options(**values)
