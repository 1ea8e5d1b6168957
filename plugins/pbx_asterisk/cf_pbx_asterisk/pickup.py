"""Fetching MixMonitor's finished files: from a directory shared with Asterisk, or over SFTP.

A file is ready when it exists, its size stays the same over ``settle_seconds`` and its WAV
header is consistent with its size (Asterisk writes the header sizes when it closes the file);
with ``done_marker`` also the ``<leg>.done`` file MixMonitor's ``Command`` touches at the end.
Files are only removed on the PBX after the archive confirmed the recording.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import posixpath
import shutil
import struct
from pathlib import Path
from typing import Protocol

from .config import AsteriskSettings

log = logging.getLogger(__name__)


class Pickup(Protocol):
    async def size(self, name: str) -> int | None: ...

    async def head(self, name: str, n: int) -> bytes: ...

    async def fetch(self, name: str, dest_dir: Path) -> Path:
        """A local path holding the file's bytes (the file itself when shared)."""

    async def remove(self, name: str) -> None: ...

    async def close(self) -> None: ...


def wav_header_consistent(head: bytes, size: int) -> bool:
    """True when the RIFF and data chunk sizes in ``head`` match a file of ``size`` bytes."""
    info = parse_wav_header(head)
    if info is None:
        return False
    data_offset, data_size, riff_size = info["data_offset"], info["data_size"], info["riff_size"]
    return riff_size == size - 8 and data_offset + data_size == size


def parse_wav_header(head: bytes) -> dict[str, int] | None:
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    riff_size = struct.unpack_from("<I", head, 4)[0]
    pos = 12
    fmt: dict[str, int] = {}
    while pos + 8 <= len(head):
        cid, csize = head[pos:pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        if cid == b"fmt " and pos + 8 + 16 <= len(head):
            audio_format, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", head, pos + 8)
            fmt = {"format": audio_format, "channels": channels, "rate": rate, "bits": bits}
        if cid == b"data":
            return {"riff_size": riff_size, "data_offset": pos + 8, "data_size": csize, **fmt}
        pos += 8 + csize + (csize & 1)
    return None


def wav_duration(path: Path) -> float | None:
    """Seconds of audio in a PCM WAV file, from its real data length (not the header's)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return None
    info = parse_wav_header(head)
    if not info or not info.get("rate") or not info.get("bits") or not info.get("channels"):
        return None
    frame = info["channels"] * info["bits"] // 8
    return (size - info["data_offset"]) / frame / info["rate"]


def repair_wav_header(path: Path) -> None:
    """Set the RIFF and data sizes from the file's length (a file Asterisk never closed)."""
    with open(path, "r+b") as f:
        head = f.read(4096)
        size = os.fstat(f.fileno()).st_size
        info = parse_wav_header(head)
        if info is None:
            return
        data_size = size - info["data_offset"]
        data_size -= data_size % 2
        f.seek(4)
        f.write(struct.pack("<I", size - 8))
        f.seek(info["data_offset"] - 4)
        f.write(struct.pack("<I", data_size))
        f.flush()
        os.fsync(f.fileno())


class LocalPickup:
    """The monitor directory is mounted here (NFS, or Asterisk on this host)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _path(self, name: str) -> Path:
        if "/" in name or name.startswith("."):
            raise ValueError(f"bad file name {name!r}")
        return self.directory / name

    async def size(self, name: str) -> int | None:
        # open + fstat rather than stat: on an NFS mount the open revalidates the attributes
        # (close-to-open consistency), so the size is the server's, not a cached one.
        try:
            fd = os.open(self._path(name), os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            return os.fstat(fd).st_size
        finally:
            os.close(fd)

    async def head(self, name: str, n: int) -> bytes:
        with open(self._path(name), "rb") as f:
            return f.read(n)

    async def fetch(self, name: str, dest_dir: Path) -> Path:
        return self._path(name)

    async def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(name).unlink()

    async def close(self) -> None:
        return None


class SftpPickup:
    """Fetches from the Asterisk host over SFTP (asyncssh); reconnects when the session drops."""

    def __init__(self, settings: AsteriskSettings) -> None:
        self.settings = settings
        self._conn: object | None = None
        self._sftp: object | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SftpPickup({self.settings.sftp_username}@{self.settings.sftp_host}:{self.settings.sftp_port})"

    async def _client(self):  # type: ignore[no-untyped-def]
        import asyncssh

        async with self._lock:
            if self._sftp is not None:
                return self._sftp
            s = self.settings
            kwargs: dict[str, object] = {
                "port": s.sftp_port, "username": s.sftp_username,
                "known_hosts": str(s.sftp_known_hosts) if s.sftp_known_hosts else None,
                "connect_timeout": s.action_timeout,
            }
            if s.sftp_key:
                kwargs["client_keys"] = [str(s.sftp_key)]
            else:
                kwargs["client_keys"] = None
            if s.sftp_password:
                kwargs["password"] = s.sftp_password
            self._conn = await asyncssh.connect(s.sftp_host, **kwargs)
            self._sftp = await self._conn.start_sftp_client()  # type: ignore[attr-defined]
            return self._sftp

    async def _reset(self) -> None:
        conn, self._conn, self._sftp = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()  # type: ignore[attr-defined]

    def _remote(self, name: str) -> str:
        if "/" in name or name.startswith("."):
            raise ValueError(f"bad file name {name!r}")
        return posixpath.join(self.settings.sftp_dir, name)

    async def _call(self, fn_name: str, *args: object) -> object:
        import asyncssh

        for attempt in (1, 2):
            sftp = await self._client()
            try:
                return await getattr(sftp, fn_name)(*args)
            except asyncssh.SFTPNoSuchFile:
                raise FileNotFoundError(args[0]) from None
            except (asyncssh.Error, OSError):
                await self._reset()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def size(self, name: str) -> int | None:
        try:
            attrs = await self._call("stat", self._remote(name))
        except FileNotFoundError:
            return None
        return int(attrs.size)  # type: ignore[attr-defined]

    async def head(self, name: str, n: int) -> bytes:
        sftp = await self._client()
        async with sftp.open(self._remote(name), "rb") as f:
            return await f.read(n)

    async def fetch(self, name: str, dest_dir: Path) -> Path:
        """Download to ``dest_dir`` (``.part`` then rename: an interrupted download starts over)."""
        dest = Path(dest_dir) / name
        part = dest.with_name(dest.name + ".part")
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        await self._call("get", self._remote(name), str(part))
        with open(part, "rb") as f:
            os.fsync(f.fileno())
        os.replace(part, dest)
        return dest

    async def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await self._call("remove", self._remote(name))

    async def close(self) -> None:
        await self._reset()


def make_pickup(settings: AsteriskSettings) -> Pickup:
    if settings.recordings_dir is not None:
        return LocalPickup(settings.recordings_dir)
    return SftpPickup(settings)


async def wait_ready(pickup: Pickup, names: list[str], *, marker: str | None, settle: float,
                     timeout: float, stop: asyncio.Event | None = None) -> str:
    """Wait until the files are complete. Returns ``ready``, ``partial`` (timeout: some files
    exist but look unfinished) or ``missing`` (timeout: no file at all)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    poll = max(0.05, min(settle, 1.0)) if settle else 0.05
    while True:
        sizes = [await pickup.size(n) for n in names]
        marker_ok = marker is None or (await pickup.size(marker)) is not None
        if all(s is not None for s in sizes) and marker_ok:
            if settle:
                await asyncio.sleep(settle)
            again = [await pickup.size(n) for n in names]
            if again == sizes:
                heads = [await pickup.head(n, 4096) for n in names]
                if all(wav_header_consistent(h, s) for h, s in zip(heads, sizes, strict=True)):  # type: ignore[arg-type]
                    return "ready"
        if loop.time() >= deadline or (stop is not None and stop.is_set()):
            present = [s for s in [await pickup.size(n) for n in names] if s is not None]
            return "partial" if present else "missing"
        await asyncio.sleep(poll)


def copy_for_repair(src: Path, dest_dir: Path) -> Path:
    """Copy a shared file into our spool so its header can be repaired without touching the PBX."""
    dest = Path(dest_dir) / src.name
    if src.resolve() != dest.resolve():
        shutil.copyfile(src, dest)
    repair_wav_header(dest)
    return dest
