"""``cf backup`` / ``cf restore``: the catalog, the key ring and secrets, the audit anchors and the
config in one encrypted file.

The file: ``CFBACKUP1`` + 16-byte scrypt salt + 12-byte nonce + AES-256-GCM ciphertext of a tar
archive holding ``manifest.json`` (format, CallFort version, schema revision, site, time, row
counts), ``catalog.json`` (every table, read in one transaction: a consistent snapshot),
``keys/<file>`` (every file of ``[keys] dir``), ``anchors/<key>`` (the audit anchors of the anchor
stores) and ``callfort.toml``. The passphrase comes from an environment variable or a file, never
from the command line; a wrong passphrase or a changed byte is refused (GCM tag).

Media is not in it: recordings live in the media stores, which are backed up as stores are (the
local store's ``root`` directory with the file-system backup, an S3 bucket by versioning and
Object Lock or replication). ``cf restore`` expects the stores to hold the media again and checks
that every recording's objects are there.

``cf restore`` writes into an empty deployment only: no key file may exist in ``[keys] dir`` and
the catalog must hold no CallFort data; the schema revision of the backup must be this version's
(restore with the version that wrote it, then ``cf db upgrade``). The catalog format is portable:
a SQLite backup restores into PostgreSQL and back.
"""

from __future__ import annotations

import base64
import io
import json
import os
import secrets
import tarfile
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, ConflictError, InputError
from .states import RecordingState

if TYPE_CHECKING:
    from .app import App

MAGIC = b"CFBACKUP1"
FORMAT = "callfort-backup/1"
MIN_PASSPHRASE = 12
_SCRYPT_N = 2**15


# ------------------------------------------------------------------------------- encryption
def _key(passphrase: str, salt: bytes) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=32, n=_SCRYPT_N, r=8, p=1).derive(passphrase.encode("utf-8"))


def encrypt(data: bytes, passphrase: str) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    return MAGIC + salt + nonce + AESGCM(_key(passphrase, salt)).encrypt(nonce, data, MAGIC)


def decrypt(blob: bytes, passphrase: str) -> bytes:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + 28 + 16:
        raise InputError("not a CallFort backup file")
    salt = blob[len(MAGIC):len(MAGIC) + 16]
    nonce = blob[len(MAGIC) + 16:len(MAGIC) + 28]
    try:
        return AESGCM(_key(passphrase, salt)).decrypt(nonce, blob[len(MAGIC) + 28:], MAGIC)
    except InvalidTag:
        raise InputError("the backup cannot be decrypted: wrong passphrase, or the file was changed") from None


def passphrase_from(env: str | None, file: str | None) -> str:
    """The passphrase from ``$env`` or ``file``; a missing or short one is an error."""
    if file:
        try:
            value = Path(file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the passphrase file {file}: {exc.strerror}") from None
    else:
        name = env or "CF_BACKUP_PASSPHRASE"
        value = os.environ.get(name, "")
        if not value:
            raise ConfigError(f"no backup passphrase: set {name} or pass --passphrase-file FILE")
    if len(value) < MIN_PASSPHRASE:
        raise InputError(f"the backup passphrase must have at least {MIN_PASSPHRASE} characters")
    return value


# ------------------------------------------------------------------------------- rows
def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b": base64.b64encode(bytes(value)).decode()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        if "$dt" in value:
            return datetime.fromisoformat(value["$dt"])
        if "$b" in value:
            return base64.b64decode(value["$b"])
    return value


def _tables() -> list[Any]:
    from .db import all_models  # noqa: F401 - registers every table
    from .db.base import Base

    return list(Base.metadata.sorted_tables)


def dump_catalog(engine: Any) -> tuple[dict[str, list[dict[str, Any]]], str | None]:
    """Every table's rows, read in one transaction (REPEATABLE READ on PostgreSQL)."""
    from sqlalchemy import select

    from .doctor import catalog_revision

    revision = catalog_revision(engine)
    out: dict[str, list[dict[str, Any]]] = {}
    opts = {"isolation_level": "REPEATABLE READ"} if engine.dialect.name == "postgresql" else {}
    with engine.connect().execution_options(**opts) as conn, conn.begin():
        for table in _tables():
            out[table.name] = [{k: _encode(v) for k, v in row._mapping.items()}
                               for row in conn.execute(select(table))]
    return out, revision


def load_catalog(engine: Any, rows: dict[str, list[dict[str, Any]]]) -> None:
    from sqlalchemy import Integer, func, select, text

    tables = _tables()
    with engine.begin() as conn:
        for table in tables:
            if conn.execute(select(func.count()).select_from(table)).scalar():
                raise ConflictError(f"the catalog is not empty (table {table.name} has rows)",
                                    hint="restore into a new, empty catalog")
        for table in tables:
            data = [{k: _decode(v) for k, v in r.items()} for r in rows.get(table.name, [])]
            if data:
                conn.execute(table.insert(), data)
        if engine.dialect.name == "postgresql":  # identity columns continue after the restored rows
            for table in tables:
                pk = list(table.primary_key.columns)
                if len(pk) == 1 and isinstance(pk[0].type, Integer) and pk[0].autoincrement in (True, "auto"):
                    seq = conn.execute(text("SELECT pg_get_serial_sequence(:t, :c)"),
                                       {"t": table.name, "c": pk[0].name}).scalar()
                    if seq:
                        top = conn.execute(select(func.max(pk[0]))).scalar() or 0
                        conn.execute(text("SELECT setval(:s, :v, false)"), {"s": seq, "v": int(top) + 1})


# ------------------------------------------------------------------------------- backup
def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o600) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def backup(app: App, out: Path, passphrase: str) -> dict[str, Any]:
    """Write the encrypted backup of ``app`` to ``out`` (mode 0600); returns the manifest."""
    from . import __version__
    from .audit import ANCHOR_PREFIX

    rows, revision = dump_catalog(app.catalog.engine)
    key_files = sorted(p for p in app.keys_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    anchors: dict[str, bytes] = {}
    for store in app.audit._stores().values():
        for k in store.keys(ANCHOR_PREFIX):
            if k not in anchors:
                anchors[k] = store.get(k)
    manifest = {
        "format": FORMAT, "callfort": __version__, "revision": revision, "site": app.config.site,
        "created_at": app.clock.now().isoformat(), "tables": {t: len(r) for t, r in rows.items()},
        "keys": [p.name for p in key_files], "anchors": len(anchors),
        "media": "not included: back up the media stores themselves (docs/operations.md)",
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add(tar, "manifest.json", json.dumps(manifest, indent=2).encode())
        _add(tar, "catalog.json", json.dumps(rows, separators=(",", ":")).encode())
        for p in key_files:
            _add(tar, f"keys/{p.name}", p.read_bytes())
        for k, data in sorted(anchors.items()):
            _add(tar, f"anchors/{k}", data)
        _add(tar, "callfort.toml", app.config.path.read_bytes())
    blob = encrypt(buf.getvalue(), passphrase)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, blob)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, out)
    return manifest


def read_backup(path: Path, passphrase: str) -> dict[str, bytes]:
    blob = decrypt(path.read_bytes(), passphrase)
    members: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r") as tar:
        for m in tar.getmembers():
            if not m.isfile() or m.name.startswith("/") or ".." in m.name.split("/"):
                raise InputError(f"the backup holds an unexpected entry {m.name!r}")
            f = tar.extractfile(m)
            assert f is not None
            members[m.name] = f.read()
    manifest = json.loads(members.get("manifest.json", b"{}"))
    if manifest.get("format") != FORMAT:
        raise InputError("not a CallFort backup (unknown format)")
    return members


# ------------------------------------------------------------------------------- restore
def restore(config: Any, path: Path, passphrase: str, *, clock: Any = None) -> dict[str, Any]:
    """Restore the backup at ``path`` into the empty deployment of ``config``; returns the manifest
    and what was checked."""
    from .app import App
    from .db.catalog import Catalog
    from .doctor import catalog_revision, head_revision

    members = read_backup(path, passphrase)
    manifest = json.loads(members["manifest.json"])
    head = head_revision()
    if manifest["revision"] != head:
        raise ConflictError(f"the backup is at schema revision {manifest['revision']}, this CallFort needs {head}",
                            hint="restore with the CallFort version that wrote it, then run 'cf db upgrade'")
    keys_dir = config.resolve_path(config.get("keys.dir", str, "keys"))
    existing = [p.name for p in keys_dir.iterdir() if p.is_file()] if keys_dir.is_dir() else []
    if existing:
        raise ConflictError(f"{keys_dir} holds key files already ({', '.join(sorted(existing))})",
                            hint="restore into an empty deployment; keys are never overwritten")
    catalog = Catalog.from_url(config.get("catalog.url", str, "sqlite:///catalog.db"), config.base_dir)
    try:
        current = catalog_revision(catalog.engine)
        if current not in (None, head):
            raise ConflictError(f"the catalog is at revision {current}, not empty", hint="use an empty catalog")
        catalog.upgrade()
        load_catalog(catalog.engine, json.loads(members["catalog.json"]))
    finally:
        catalog.dispose()
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(keys_dir, 0o700)
    for name, data in members.items():
        if name.startswith("keys/"):
            fd = os.open(keys_dir / name[len("keys/"):], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
    app = App(config, **({"clock": clock} if clock is not None else {}))
    try:
        written = 0
        for store in app.audit._stores().values():
            for name, data in members.items():
                if name.startswith("anchors/"):
                    key = name[len("anchors/"):]
                    if not store.exists(key):
                        store.put(key, data)
                        written += 1
        missing = _missing_media(app)
        from .cli.context import system_cli_context

        app.audit.record(system_cli_context("cli.restore"), "deployment.restore", "deployment", manifest["site"],
                         "ok", {"backup_created_at": manifest["created_at"], "revision": manifest["revision"],
                                "missing_media": len(missing)})
    finally:
        app.close()
    return {**manifest, "anchors_written": written, "missing_media": missing[:20],
            "missing_media_count": len(missing)}


def _missing_media(app: App) -> list[str]:
    """Objects the catalog names that no store holds (media not restored yet)."""
    from sqlalchemy import select

    from .db.models import MediaObject, Recording

    missing: list[str] = []
    with app.catalog.session() as s:
        keys = list(s.scalars(select(MediaObject.key).join(Recording).where(Recording.state != RecordingState.PURGED)))
    for key in keys:
        if not any(st.exists(key) for st in app.stores.stores.values()):
            missing.append(key)
    return missing
