"""CallFort plugin store_local: media store on a local file system.

Config::

    [stores.primary]
    type = "local"
    root = "media"        # relative to callfort.toml

Objects are files below ``root``. A put writes a temporary file, fsyncs it, links it into place
(a hard link never replaces an existing file, so an object is never overwritten), removes the
temporary name and fsyncs the directory: after a crash an object is complete or absent. Keys are
checked so that none can leave the root: no ``..``, no absolute paths, no backslashes, no NUL,
no hidden names, and no symlink that points out of the root.

This plugin imports only ``hookspecs``.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import datetime
from pathlib import Path

import attrs

from hookspecs import hookimpl
from hookspecs.types import ObjectInfo, PluginContext, StoreType

_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
_MAX_KEY = 1024
_CHUNK = 1 << 20


class UnsafeKey(ValueError):
    """A key that could leave the store root or is not a plain relative name."""


class LocalStore:
    #: A file system has no object lock: a delete is never refused for a retention date.
    object_lock = False

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        self.root = Path(os.path.realpath(root))
        #: directories with unlinks not yet made durable (``delete(sync=False)``)
        self._unsynced: set[Path] = set()
        #: key -> path of objects read before: their checks (realpath of the directory and the
        #: file) are not repeated for each range of a stream; the open still refuses a symlink
        self._read_paths: dict[str, Path] = {}
        #: directories whose fsync an open ``batch`` defers to its end (per context: a batch covers
        #: the threads its caller starts with a copy of its context, and no other caller's puts)
        self._batch: ContextVar[set[Path] | None] = ContextVar(f"cf_store_local_batch_{id(self)}", default=None)

    # ------------------------------------------------------------------ paths
    def _path(self, key: str) -> Path:
        path = self._lexical(key)
        self._inside(path.parent)
        if os.path.islink(path):  # a plain file lies where its directory does: only a link is resolved
            self._inside(path)
        return path

    def _lexical(self, key: str) -> Path:
        """The path of ``key`` below the root, its syntax checked (no symlink resolved yet)."""
        if not isinstance(key, str) or not key:
            raise UnsafeKey("store key must be a non-empty string")
        if len(key) > _MAX_KEY:
            raise UnsafeKey(f"store key is longer than {_MAX_KEY} characters")
        if "\x00" in key or "\\" in key:
            raise UnsafeKey(f"store key {key!r} contains NUL or a backslash")
        if key.startswith("/"):
            raise UnsafeKey(f"store key {key!r} is absolute; keys are relative to the store root")
        parts = key.split("/")
        for part in parts:
            if part in ("", ".", ".."):
                raise UnsafeKey(f"store key {key!r} has an empty, '.' or '..' part")
            if not _SEGMENT.match(part):
                raise UnsafeKey(f"store key {key!r}: part {part!r} may hold only letters, digits, '.', '_', '-' "
                                "and must not start with '.' or '-'")
        return self.root.joinpath(*parts)

    def _inside(self, path: Path) -> None:
        real = os.path.realpath(path)
        if real != str(self.root) and not real.startswith(str(self.root) + os.sep):
            raise UnsafeKey(f"store key resolves outside the store root {self.root} (symlink?)")

    def _mkdirs(self, directory: Path) -> None:
        missing = []
        d = directory
        while not d.exists():
            missing.append(d)
            d = d.parent
        for d in reversed(missing):
            try:
                d.mkdir(mode=0o700)
            except FileExistsError:
                pass
            self._fsync_dir(d.parent)
        self._inside(directory)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Puts inside make their directory entries durable once, at the end of the block (one
        directory fsync for the objects of a recording instead of one per object). Each object's
        data is still fsynced before it is linked; the caller names the objects (catalog commit)
        only after the block."""
        if self._batch.get() is not None:
            yield
            return
        dirs: set[Path] = set()
        token = self._batch.set(dirs)
        try:
            yield
        finally:
            self._batch.reset(token)
            for d in sorted(dirs):
                self._fsync_dir(d)

    @staticmethod
    def _fsync_dir(directory: Path) -> None:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ MediaStore
    def put(self, key: str, chunks: Iterator[bytes] | bytes, *, retain_until: datetime | None = None) -> int:
        path = self._path(key)
        if os.path.lexists(path):
            raise FileExistsError(f"object {key} exists already in store {self.name}")
        self._mkdirs(path.parent)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        size = 0
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            for chunk in ([chunks] if isinstance(chunks, (bytes, bytearray, memoryview)) else chunks):
                view = memoryview(chunk)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                    size += n
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.link(tmp, path)  # atomic, and unlike rename it never replaces an existing object
        except BaseException:
            if fd >= 0:
                os.close(fd)
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        os.unlink(tmp)
        deferred = self._batch.get()
        if deferred is not None:
            deferred.add(path.parent)
        else:
            self._fsync_dir(path.parent)
        return size

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        path = self._read_paths.get(key) if isinstance(key, str) else None
        if path is None:
            path = self._path(key)
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"bad byte range [{start}, {end})")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except (FileNotFoundError, IsADirectoryError):
            self._read_paths.pop(key, None)
            raise KeyError(key) from None
        if len(self._read_paths) >= 4096:  # a bound, not a policy: a forgotten key is checked again
            self._read_paths.clear()
        self._read_paths[key] = path
        try:
            size = os.fstat(fd).st_size
            stop = size if end is None else min(end, size)
            if start >= stop:
                return b""
            return os.pread(fd, stop - start, start)
        finally:
            os.close(fd)

    def delete(self, key: str, *, sync: bool = True) -> None:
        """Unlink the object and fsync its directory. ``sync=False`` leaves the fsync to
        ``sync_deletes()``, so that a batch of deletes costs one fsync per directory."""
        self._read_paths.pop(key, None)
        path = self._lexical(key)
        if sync or path.parent not in self._unsynced:  # a batch resolves each directory once
            path = self._path(key)
        elif os.path.islink(path):
            self._inside(path)
        try:
            os.unlink(path)
        except FileNotFoundError:
            raise KeyError(key) from None
        if sync:
            self._fsync_dir(path.parent)
        else:
            self._unsynced.add(path.parent)

    def sync_deletes(self) -> None:
        """Make every deferred delete durable: one fsync per directory touched."""
        while self._unsynced:
            directory = self._unsynced.pop()
            try:
                self._fsync_dir(directory)
            except FileNotFoundError:
                pass  # the directory itself is gone

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            st = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            raise KeyError(key) from None
        return ObjectInfo(key=key, size=st.st_size)

    def lock_until(self, key: str, until: datetime | None = None, *, legal_hold: bool | None = None) -> None:
        """A local file system has no object lock; this records nothing (protect the directory
        with file-system permissions and backups)."""
        self._path(key)

    def keys(self, prefix: str = "") -> Iterator[str]:
        # walk only below the prefix's directory part (``audit-anchors/`` lists one directory)
        top = self.root
        head = prefix.rpartition("/")[0]
        if head:
            parts = head.split("/")
            if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
                return
            top = self.root.joinpath(*parts)
            if os.path.realpath(top) != str(top) or not top.is_dir():
                return  # a symlink on the way (never followed) or no such directory
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel = os.path.relpath(dirpath, self.root)
            base = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            for f in sorted(filenames):
                if f.startswith("."):
                    continue  # temporary files of puts in progress or interrupted
                k = base + f
                if k.startswith(prefix):
                    yield k


@attrs.frozen(kw_only=True)
class LocalOptions:
    """``[stores.<name>] type = "local"``: ``root`` is the directory of the objects (relative paths
    are resolved against the config file's directory by the core)."""

    root: str = attrs.field(validator=attrs.validators.min_len(1))


def _create(options: LocalOptions, ctx: PluginContext) -> LocalStore:
    return LocalStore(ctx.name, Path(options.root))


@hookimpl
def cf_media_stores() -> list[StoreType]:
    return [StoreType(name="local", create=_create, options=LocalOptions,
                      description="objects in a directory of the local file system")]
