"""Key-encryption keys (KEKs) and the wrapping of data keys.

The default provider ``keyring`` keeps KEKs in one JSON file ``<keys dir>/keyring.json`` (mode
0600, refused when readable by others)::

    {"format": 1, "current": "<kek id>",
     "keys": [{"id": "<kek id>", "created": "<ISO-8601>", "key": "<64 hex>"}, ...]}

A data key is wrapped with AES-256-GCM under the current KEK, with the recording id as additional
data, so that a wrapped key copied onto another recording does not unwrap:
``wrapped = nonce (12) || ciphertext (32) || tag (16)``.

Rotation adds a KEK and makes it current; old KEKs stay for unwrapping. ``rewrap_all`` then
re-wraps every data key under the current KEK without touching any media object; after that an
old KEK may be retired. Destroying a recording's wrapped data key is crypto-shredding.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select

from hookspecs.types import KeyProvider, PluginContext, RequestContext

from ..authority import require_context
from ..errors import ConfigError, IntegrityError
from .keyfiles import check_private, create_private, write_private

if TYPE_CHECKING:
    from ..app import App

KEYRING_FILE = "keyring.json"
FORMAT = 1
_WRAP_NONCE = 12


def wrap_aad(recording_id: str) -> bytes:
    """The additional data a data key is wrapped with."""
    return b"callfort-data-key:v1:" + recording_id.encode("ascii")


class KeyRing:
    """The ``keyring`` key provider: KEKs in a 0600 JSON file. Safe across processes (the file
    is replaced atomically; rotation holds an exclusive lock on ``keyring.lock``)."""

    name = "keyring"

    def __init__(self, directory: Path, clock: Callable[[], datetime]) -> None:
        self.directory = Path(directory)
        self.path = self.directory / KEYRING_FILE
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._current = ""
        self._keys: dict[str, bytes] = {}

    # ------------------------------------------------------------------ file
    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.directory / "keyring.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _new_entry(self) -> dict[str, str]:
        created = self._clock()
        kid = f"kek-{created.strftime('%Y%m%d')}-{secrets.token_hex(4)}"
        return {"id": kid, "created": created.isoformat(), "key": secrets.token_hex(32)}

    def _serialise(self, current: str, entries: list[dict[str, str]]) -> bytes:
        return json.dumps({"format": FORMAT, "current": current, "keys": entries}, indent=2).encode() + b"\n"

    def _read(self) -> dict[str, Any]:
        try:
            check_private(self.path)
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{self.path} is not a valid key ring: {exc}",
                              hint="restore it from the key backup") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("keys"), list):
            raise ConfigError(f"{self.path} is not a key ring of format {FORMAT}", hint="restore it from the key backup")
        return data

    def _load(self, force: bool = False) -> None:
        with self._lock:
            try:
                st = self.path.stat()
            except FileNotFoundError:
                # never recreated here: a new KEK would leave every recording wrapped under the
                # old one unreadable once the backup returns
                raise ConfigError(f"key ring {self.path} is missing",
                                  hint="restore the key directory from its backup; only 'cf init' creates keys",
                                  ) from None
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            if not force and stamp == self._stamp:
                return
            data = self._read()
            keys: dict[str, bytes] = {}
            for e in data["keys"]:
                try:
                    key = bytes.fromhex(e["key"])
                except (KeyError, TypeError, ValueError):
                    raise ConfigError(f"{self.path}: key entry {e.get('id', '?')!r} is corrupt") from None
                if len(key) != 32:
                    raise ConfigError(f"{self.path}: key {e.get('id')!r} is not 256 bits")
                keys[str(e["id"])] = key
            current = data.get("current")
            if current not in keys:
                raise ConfigError(f"{self.path}: current key {current!r} is not in the ring")
            self._keys, self._current, self._stamp = keys, current, stamp

    def create(self) -> bool:
        """Create the ring with its first KEK unless it exists (``cf init`` only). Returns True
        when this call created it."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        entry = self._new_entry()
        return create_private(self.path, self._serialise(entry["id"], [entry]))

    # ------------------------------------------------------------------ KeyProvider
    def current_kek_id(self) -> str:
        self._load()
        return self._current

    def key_ids(self) -> list[str]:
        self._load()
        return list(self._keys)

    def _kek(self, kek_id: str) -> bytes:
        self._load()
        if kek_id not in self._keys:
            self._load(force=True)  # rotated by another process
        try:
            return self._keys[kek_id]
        except KeyError:
            raise KeyError(f"key-encryption key {kek_id} is not in {self.path}") from None

    def wrap(self, kek_id: str, data_key: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(_WRAP_NONCE)
        return nonce + AESGCM(self._kek(kek_id)).encrypt(nonce, data_key, aad)

    def unwrap(self, kek_id: str, wrapped: bytes, aad: bytes) -> bytes:
        kek = self._kek(kek_id)
        try:
            return AESGCM(kek).decrypt(wrapped[:_WRAP_NONCE], wrapped[_WRAP_NONCE:], aad)
        except InvalidTag:
            raise IntegrityError(f"wrapped data key does not open under {kek_id} (changed or moved)") from None

    def rotate(self) -> str:
        with self._file_lock():
            self._load(force=True)
            data = self._read()
            entry = self._new_entry()
            write_private(self.path, self._serialise(entry["id"], [*data["keys"], entry]))
            self._load(force=True)
            return entry["id"]


def create_keyring(options: Mapping[str, Any], ctx: PluginContext) -> KeyRing:
    directory = options.get("dir")
    if not directory:
        raise ConfigError("[keys] dir is required for the keyring provider")
    return KeyRing(Path(directory), ctx.clock)


def open_key_provider(app: App) -> KeyProvider:
    """The key provider named by ``[keys] provider`` (default ``keyring``)."""
    name = app.config.get("keys.provider", str, "keyring")
    found = app.pm.key_provider_types()
    if name not in found:
        raise ConfigError(f"{app.config.path}: keys.provider '{name}' is not available",
                          hint="choose one of: " + (", ".join(sorted(found)) or "(none installed)"))
    options = dict(app.config.section("keys"))
    options["dir"] = str(app.keys_dir)
    options.pop("provider", None)
    reg = found[name]
    ctx = app.plugin_context(name, plugin=app.pm.registered_by("cf_key_providers", name))
    provider: KeyProvider = reg.create(app.plugin_options(reg, options, "keys"), ctx)
    return provider


# ---------------------------------------------------------------------- data keys


def wrap_data_key(app: App, recording_id: str, data_key: bytes) -> tuple[str, bytes]:
    """``(kek_id, wrapped)`` of ``data_key`` under the current KEK."""
    kek_id = app.keys.current_kek_id()
    return kek_id, app.keys.wrap(kek_id, data_key, wrap_aad(recording_id))


def unwrap_data_key(app: App, recording_id: str, kek_id: str, wrapped: bytes) -> bytes:
    try:
        return app.keys.unwrap(kek_id, bytes(wrapped), wrap_aad(recording_id))
    except KeyError:
        raise IntegrityError(f"the key-encryption key {kek_id} of recording {recording_id} is missing",
                             hint="restore the key ring from its backup") from None


def rewrap_all(app: App, ctx: RequestContext, *, batch: int = 500) -> dict[str, Any]:
    """Re-wrap every live data key that is not under the current KEK; media stays untouched.

    Each batch commits with one audit entry ``keys.rewrap``. Returns counts.
    """
    require_context(ctx, "rewrap_all")
    from ..db.models import DataKey

    current = app.keys.current_kek_id()
    total = 0
    by_old: dict[str, int] = {}
    while True:
        with app.catalog.session() as s:
            rows = s.scalars(select(DataKey).where(DataKey.wrapped.is_not(None), DataKey.kek_id != current)
                             .order_by(DataKey.recording_id).limit(batch).with_for_update()).all()
            if not rows:
                break
            olds: dict[str, int] = {}
            for row in rows:
                assert row.wrapped is not None and row.kek_id is not None
                dk = unwrap_data_key(app, row.recording_id, row.kek_id, row.wrapped)
                olds[row.kek_id] = olds.get(row.kek_id, 0) + 1
                row.wrapped = app.keys.wrap(current, dk, wrap_aad(row.recording_id))
                row.kek_id = current
            app.audit.append(s, ctx, "keys.rewrap", "keys", current, "ok",
                             {"count": len(rows), "from": olds, "to": current})
        total += len(rows)
        for k, n in olds.items():
            by_old[k] = by_old.get(k, 0) + n
    return {"current": current, "rewrapped": total, "from": by_old}
