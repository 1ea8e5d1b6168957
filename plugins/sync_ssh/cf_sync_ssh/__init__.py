"""CallFort plugin ``sync_ssh``: the site's nightly hand-over travels over SSH/SFTP (asyncssh).

Options of ``[sync.targets.<name>]`` with ``type = "ssh"``:

``host``, ``port`` (22), ``user``
    the archive's SSH server and the account the site logs in as;
``host_key``
    the archive's host public key, pinned (``ssh-ed25519 AAAA...``, as in ``ssh-keyscan``); any
    other key is refused (``SyncRefused``). No known_hosts files, no trust on first use;
``client_key``
    path of the site's private client key (an OpenSSH key file, mode 0600). Public-key
    authentication only: no passwords, no keyboard-interactive, no agent, no ssh config files;
``remote_dir`` ("."): the inbox directory on the archive; ``connect_timeout`` (20 s),
``keepalive_seconds`` (15).

The core owns the protocol; this plugin only moves bytes (see ``hookspecs.types.SyncTarget``).
"""

from __future__ import annotations

import os
import posixpath
import stat
from typing import TYPE_CHECKING, Any

import attrs

from hookspecs import hookimpl
from hookspecs.types import PluginContext, SyncRefused, SyncTargetType, SyncUnavailable

if TYPE_CHECKING:
    import asyncssh  # imported where used: asyncssh costs a tenth of a second that cf commands need not pay


def _transient() -> tuple[type[BaseException], ...]:
    import asyncssh

    return (OSError, asyncssh.DisconnectError, asyncssh.ConnectionLost, asyncssh.SFTPConnectionLost,
            asyncssh.SFTPNoConnection, asyncssh.ChannelOpenError, TimeoutError)


def _fail(exc: BaseException, what: str) -> Exception:
    """Map an asyncssh/OS error to the contract's two errors."""
    import asyncssh

    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return SyncRefused(f"{what}: the archive's host key is not the pinned one ({exc})")
    if isinstance(exc, asyncssh.PermissionDenied):
        return SyncRefused(f"{what}: the archive refused this site's client key ({exc})")
    if isinstance(exc, (asyncssh.SFTPNoSpaceOnFilesystem, asyncssh.SFTPQuotaExceeded)):
        return SyncUnavailable(f"{what}: the archive's inbox is full ({exc})")
    if isinstance(exc, asyncssh.SFTPError):
        return SyncUnavailable(f"{what}: SFTP error {exc.code}: {exc.reason}")
    return SyncUnavailable(f"{what}: {type(exc).__name__}: {exc}")


class _File:
    def __init__(self, f: Any, path: str) -> None:
        self._f = f
        self._path = path

    async def write(self, data: bytes) -> None:
        import asyncssh

        try:
            await self._f.write(data)
        except (asyncssh.Error, *_transient()) as exc:
            raise _fail(exc, f"writing {self._path}") from None

    async def close(self) -> None:
        import asyncssh

        try:
            await self._f.close()
        except (asyncssh.Error, *_transient()) as exc:
            raise _fail(exc, f"closing {self._path}") from None


class SshConnection:
    def __init__(self, conn: asyncssh.SSHClientConnection, sftp: asyncssh.SFTPClient, root: str) -> None:
        self._conn = conn
        self._sftp = sftp
        self._root = root

    def _p(self, path: str) -> str:
        parts = path.split("/")
        if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"refusing remote path {path!r}")
        return posixpath.join(self._root, path)

    async def size(self, path: str) -> int | None:
        import asyncssh

        try:
            attrs = await self._sftp.stat(self._p(path))
        except asyncssh.SFTPNoSuchFile:
            return None
        except (asyncssh.Error, *_transient()) as exc:
            raise _fail(exc, f"stat {path}") from None
        return int(attrs.size or 0)

    async def open_write(self, path: str, offset: int) -> _File:
        import asyncssh

        try:
            if offset == 0:
                f = await self._sftp.open(self._p(path), "wb")
            else:
                f = await self._sftp.open(self._p(path), "r+b")
                await f.seek(offset)
        except (asyncssh.Error, *_transient()) as exc:
            raise _fail(exc, f"opening {path}") from None
        return _File(f, path)

    async def read(self, path: str, limit: int) -> bytes | None:
        import asyncssh

        try:
            async with self._sftp.open(self._p(path), "rb") as f:
                data = await f.read(limit)
        except asyncssh.SFTPNoSuchFile:
            return None
        except (asyncssh.Error, *_transient()) as exc:
            raise _fail(exc, f"reading {path}") from None
        return bytes(data)

    async def makedirs(self, path: str) -> None:
        import asyncssh

        try:
            await self._sftp.makedirs(self._p(path), exist_ok=True)
        except (asyncssh.Error, *_transient()) as exc:
            raise _fail(exc, f"mkdir {path}") from None

    async def rename(self, old: str, new: str) -> None:
        import asyncssh

        try:
            await self._sftp.rename(self._p(old), self._p(new))
        except (asyncssh.Error, *_transient()) as exc:
            raise _fail(exc, f"rename {old}") from None

    async def remove(self, path: str) -> None:
        import asyncssh

        p = self._p(path)
        try:
            attrs = await self._sftp.lstat(p)
            if attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY or (
                    attrs.permissions is not None and stat.S_ISDIR(attrs.permissions)):
                await self._sftp.rmtree(p)
            else:
                await self._sftp.remove(p)
        except asyncssh.SFTPNoSuchFile:
            return
        except (asyncssh.Error, *_transient()) as exc:
            raise _fail(exc, f"remove {path}") from None

    @property
    def sftp(self) -> asyncssh.SFTPClient:
        """The raw SFTP client (the benchmark compares against it)."""
        return self._sftp

    async def close(self) -> None:
        self._sftp.exit()
        self._conn.close()
        await self._conn.wait_closed()


@attrs.frozen(kw_only=True)
class SshOptions:
    """``[sync.targets.<name>]`` with ``type = "ssh"`` (checked by the core with ``parse_options``)."""

    host: str = attrs.field(validator=attrs.validators.min_len(1))
    user: str = attrs.field(validator=attrs.validators.min_len(1))
    #: the archive's host public key, pinned (``ssh-ed25519 AAAA...``)
    host_key: str = attrs.field(validator=attrs.validators.min_len(1))
    #: path of the site's private client key (mode 0600); relative paths are resolved by the core
    client_key: str = attrs.field(validator=attrs.validators.min_len(1))
    port: int = 22
    remote_dir: str = "."
    connect_timeout: float = 20.0
    keepalive_seconds: float = 15.0


class SshTarget:
    """A pinned-host-key, client-key-only SFTP connection to the archive's inbox."""

    def __init__(self, options: SshOptions, ctx: PluginContext) -> None:
        import asyncssh

        self.name = ctx.name
        self.host = options.host
        self.port = options.port
        self.user = options.user
        self.remote_dir = options.remote_dir
        self.timeout = options.connect_timeout
        self.keepalive = options.keepalive_seconds
        try:
            self.host_key = asyncssh.import_public_key(options.host_key)
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise ValueError(f"[sync.targets.{ctx.name}] host_key is not an SSH public key: {exc}") from None
        self.client_key_path = options.client_key

    def _client_key(self) -> asyncssh.SSHKey:
        import asyncssh

        try:
            mode = stat.S_IMODE(os.stat(self.client_key_path).st_mode)
        except FileNotFoundError:
            raise SyncRefused(f"the client key {self.client_key_path} is missing") from None
        if mode & 0o077:
            raise SyncRefused(f"the client key {self.client_key_path} is readable by others (chmod 600)")
        return asyncssh.read_private_key(self.client_key_path)

    async def connect(self) -> SshConnection:
        import asyncssh

        key = self._client_key()
        try:
            conn = await asyncssh.connect(
                self.host, self.port, username=self.user, client_keys=[key],
                known_hosts=([self.host_key], [], []), password=None, agent_path=None, config=[],
                preferred_auth="publickey", kbdint_auth=False, password_auth=False, gss_auth=False,
                host_based_auth=False, connect_timeout=self.timeout, keepalive_interval=self.keepalive,
                keepalive_count_max=3)
        except (asyncssh.Error, *_transient()) as exc:
            raise _fail(exc, f"connecting to {self.host}:{self.port}") from None
        try:
            sftp = await conn.start_sftp_client()
        except (asyncssh.Error, *_transient()) as exc:
            conn.close()
            raise _fail(exc, "starting SFTP") from None
        return SshConnection(conn, sftp, self.remote_dir)


@hookimpl
def cf_sync_targets() -> list[SyncTargetType]:
    return [SyncTargetType(name="ssh", create=SshTarget, options=SshOptions,
                           description="SFTP over SSH with a pinned host key and a client key (asyncssh)")]
