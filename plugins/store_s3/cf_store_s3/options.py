"""The options of a ``[stores.<name>]`` section with ``type = "s3"``, validated once at start.

Secrets (``access_key``, ``secret_key``, ``session_token``) arrive resolved from the config's
``{ env = "..." }`` / ``{ file = "..." }`` and are kept out of every repr and message.
"""

from __future__ import annotations

from typing import Any

import attrs

from hookspecs import Secret

MiB = 1024 * 1024
#: S3's smallest part (all but the last); its largest part is 5 GiB.
MIN_PART = 5 * MiB
MAX_PART = 5 * 1024 * MiB

DEFAULT_THRESHOLD = 64 * MiB
DEFAULT_CHUNK = 16 * MiB

LOCK_MODES = {"compliance": "COMPLIANCE", "governance": "GOVERNANCE"}


def _lock_mode(value: str) -> str:
    mode = LOCK_MODES.get(value.lower()) or (value if value in LOCK_MODES.values() else None)
    if mode is None:
        raise ValueError(f"lock_mode must be compliance or governance, not '{value}'")
    return mode


def _prefix(value: str) -> str:
    return value + "/" if value and not value.endswith("/") else value


def _one_of(*choices: str) -> Any:
    def check(_inst: object, attr: attrs.Attribute[Any], value: str) -> None:
        if value not in choices:
            raise ValueError(f"{attr.name} must be {', '.join(choices[:-1])} or {choices[-1]}")
    return check


def _positive(_inst: object, attr: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attr.name} must be a positive number of seconds")


def _part(_inst: object, attr: attrs.Attribute[Any], value: int) -> None:
    if not MIN_PART <= value <= MAX_PART:
        raise ValueError(f"{attr.name} must be between 5 MiB and 5 GiB ({MIN_PART}..{MAX_PART})")


@attrs.frozen(kw_only=True)
class S3Options:
    """``[stores.<name>]`` with ``type = "s3"``; the core builds it with ``hookspecs.parse_options``
    (unknown keys, wrong types and secrets in clear refused with the key named) and these checks
    run as it is built. No message carries a value of a secret."""

    bucket: str = attrs.field(validator=lambda _i, _a, v: _require_bucket(v))
    #: the store's name in messages (default: the section's name)
    name: str | None = None
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key: Secret | None = attrs.field(default=None, repr=False)
    secret_key: Secret | None = attrs.field(default=None, repr=False)
    session_token: Secret | None = attrs.field(default=None, repr=False)
    prefix: str = attrs.field(default="", converter=_prefix)
    lock_mode: str = attrs.field(default="COMPLIANCE", converter=_lock_mode)
    multipart_threshold: int = DEFAULT_THRESHOLD
    multipart_chunk: int = attrs.field(default=DEFAULT_CHUNK, validator=_part)
    connect_timeout: float = attrs.field(default=5.0, validator=_positive)
    read_timeout: float = attrs.field(default=60.0, validator=_positive)
    retries: int = 4
    addressing_style: str = attrs.field(default="path", validator=_one_of("path", "virtual", "auto"))
    ca_bundle: str | None = None
    #: ``auto``: send ``If-None-Match: *`` and stop sending it if the server answers 501.
    conditional_put: str = attrs.field(default="auto", validator=_one_of("auto", "always", "never"))
    max_pool_connections: int = 10

    def __attrs_post_init__(self) -> None:
        if (self.access_key is None) != (self.secret_key is None):
            raise ValueError("give both access_key and secret_key, or neither "
                             "(then the AWS default chain is used: AWS_ACCESS_KEY_ID, profiles, roles)")
        if self.multipart_threshold < 1:
            raise ValueError("multipart_threshold must be at least 1 byte")
        if self.retries < 0 or self.max_pool_connections < 1:
            raise ValueError("retries must be >= 0 and max_pool_connections >= 1")


def _require_bucket(value: str) -> None:
    if not value:
        raise ValueError("bucket is required for type s3")
