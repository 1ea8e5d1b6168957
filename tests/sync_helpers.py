"""Three deployments (two sites, one archive) and real SSH servers for the sync tests.

``SftpServer`` is an in-process asyncssh SFTP server (its own thread and event loop, chrooted to the
archive's inbox); ``OpenSshServer`` starts Debian's ``sshd -D -f <own config> -p <free port>`` with
its own host key and ``authorized_keys``. ``CutProxy`` is a TCP proxy that can cut every connection
after a number of bytes. Nothing here is a mock of the transport: the bytes cross real SSH.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncssh
import attrs
from archive_helpers import make_wav

from cfcore.authority import SYSTEM
from cfcore.crypto import archive_seal
from cfcore.testing import free_tcp_port, write_deployment

SITES = ("site-a", "site-b")


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class SftpServer:
    """asyncssh SFTP server on 127.0.0.1, chrooted to ``root``, public-key logins only."""

    kind = "asyncssh"

    def __init__(self, root: Path, authorized: list[str], host_key: asyncssh.SSHKey | None = None) -> None:
        self.root = root
        self.authorized = authorized
        self.host_key = host_key or asyncssh.generate_private_key("ssh-ed25519")
        self._lt = _LoopThread()
        self._server: Any = None
        self.port = 0
        self.user = "callfort"
        self.remote_dir = "."

    def start(self, port: int = 0) -> SftpServer:
        async def listen() -> Any:
            return await asyncssh.listen(
                "127.0.0.1", port, server_host_keys=[self.host_key],
                authorized_client_keys=asyncssh.import_authorized_keys("\n".join(self.authorized) + "\n"),
                sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=str(self.root).encode()),
                allow_scp=False, password_auth=False, kbdint_auth=False, keepalive_interval=5)

        self._server = self._lt.run(listen())
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def host_key_line(self) -> str:
        return self.host_key.export_public_key().decode().strip()

    def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None

            async def shut() -> None:  # on the server's own loop (asyncio is not thread-safe)
                server.close()
                await server.wait_closed()

            self._lt.run(shut())

    def close(self) -> None:
        self.stop()
        self._lt.stop()


class OpenSshServer:
    """Debian's OpenSSH server, unprivileged where possible: own config, host key, authorized_keys,
    a free port, SFTP only (internal-sftp), public keys only."""

    kind = "openssh"

    def __init__(self, root: Path, authorized: list[str], workdir: Path) -> None:
        self.root = root
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.host_key_path = workdir / "ssh_host_ed25519_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.host_key_path)], check=True)
        self.auth_keys = workdir / "authorized_keys"
        self.auth_keys.write_text("\n".join(authorized) + "\n")
        os.chmod(self.auth_keys, 0o600)
        self.user = getpass.getuser()
        self.remote_dir = str(root)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, port: int = 0) -> OpenSshServer:
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        self.port = port or free_tcp_port()
        cfg = self.workdir / "sshd_config"
        cfg.write_text(f"""\
ListenAddress 127.0.0.1
Port {self.port}
HostKey {self.host_key_path}
PidFile {self.workdir / 'sshd.pid'}
AuthorizedKeysFile {self.auth_keys}
AllowUsers {self.user}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
X11Forwarding no
AllowTcpForwarding no
PermitTTY no
ForceCommand internal-sftp
Subsystem sftp internal-sftp
LogLevel ERROR
""")
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
        self.proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(cfg)], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        import socket

        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start listening")

    def host_key_line(self) -> str:
        return " ".join(Path(f"{self.host_key_path}.pub").read_text().split()[:2])

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None

    def close(self) -> None:
        self.stop()


class CutProxy:
    """A TCP proxy that forwards to ``target_port`` and, while ``cut_after`` is set, cuts each
    connection once that many bytes went from the client to the server."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.cut_after: int | None = None
        self.cuts = 0
        self._lt = _LoopThread()
        self._server: Any = None
        self.port = 0

    def start(self) -> CutProxy:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                r2, w2 = await asyncio.open_connection("127.0.0.1", self.target_port)
            except OSError:
                writer.close()
                return
            sent = 0
            limit = self.cut_after

            async def up() -> None:
                nonlocal sent
                while data := await reader.read(65536):
                    if limit is not None and sent + len(data) >= limit:
                        w2.write(data[: max(0, limit - sent)])
                        self.cuts += 1
                        raise ConnectionResetError("cut")
                    sent += len(data)
                    w2.write(data)
                    await w2.drain()

            async def down() -> None:
                while data := await r2.read(65536):
                    writer.write(data)
                    await writer.drain()

            try:
                await asyncio.gather(up(), down())
            except Exception:  # noqa: S110 - a cut ends both directions
                pass
            finally:
                for w in (writer, w2):
                    w.transport.abort()

        async def listen() -> Any:
            return await asyncio.start_server(handle, "127.0.0.1", 0)

        self._server = self._lt.run(listen())
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def close(self) -> None:
        # asyncio servers are not thread-safe: close on the proxy's own loop (closing from the
        # test's thread raced the loop's wake-ups: CI 2026-12-02, "'NoneType' is not iterable")
        if self._server is not None:
            server, self._server = self._server, None

            async def shut() -> None:
                server.close()

            self._lt.run(shut())
        self._lt.stop()


@attrs.define
class World:
    """An archive and two sites, wired by keys, and the SSH server in front of the inbox."""

    tmp: Path
    archive_cfg: Path
    inbox: Path
    site_cfgs: dict[str, Path]
    client_keys: dict[str, Path]
    server: Any
    make_app: Callable[..., Any]
    port_override: int | None = None
    _apps: dict[str, Any] = attrs.field(factory=dict)

    def archive(self) -> Any:
        return self._app("archive", self.archive_cfg)

    def site(self, name: str) -> Any:
        return self._app(name, self.site_cfgs[name])

    def _app(self, name: str, cfg: Path) -> Any:
        if name not in self._apps:
            self._apps[name] = self.make_app(cfg)
        return self._apps[name]

    def reopen(self, name: str) -> Any:
        self._apps.pop(name, None)
        return self.archive() if name == "archive" else self.site(name)


def _target_section(server: Any, key_path: Path, port: int, host_key: str) -> str:
    return f"""
[sync.targets.archive]
type = "ssh"
host = "127.0.0.1"
port = {port}
user = "{server.user}"
host_key = "{host_key}"
client_key = "{key_path}"
remote_dir = "{server.remote_dir}"
connect_timeout = 10
"""


def rewrite_target(world: World, site: str, *, port: int | None = None, host_key: str | None = None) -> None:
    """Point a site at another port (a proxy) or pin another host key."""
    cfg = world.site_cfgs[site]
    text = cfg.read_text()
    head = text.split("\n[sync.targets.archive]")[0]
    cfg.write_text(head + _target_section(world.server, world.client_keys[site], port or world.server.port,
                                          host_key or world.server.host_key_line()))
    world._apps.pop(site, None)


def build_world(tmp: Path, archive_catalog_url: str, make_app: Callable[..., Any], *, server_kind: str = "asyncssh",
                site_extra: str = "", archive_extra: str = "") -> World:
    inbox = tmp / "inbox"
    inbox.mkdir(parents=True)
    archive_dir = tmp / "archive"
    (archive_dir / "keys").mkdir(parents=True, mode=0o700)
    archive_seal.create_key_files(archive_dir / "keys", seal_key=True)
    seal_pub = archive_seal.public_hex(archive_seal.seal_private_key(archive_dir / "keys"))
    sign_pub = archive_seal.public_hex(archive_seal.signing_key(archive_dir / "keys"))
    site_cfgs, client_keys, authorized, site_sign = {}, {}, [], {}
    for name in SITES:
        d = tmp / name
        (d / "keys").mkdir(parents=True, mode=0o700)
        archive_seal.create_key_files(d / "keys", seal_key=False)
        site_sign[name] = archive_seal.public_hex(archive_seal.signing_key(d / "keys"))
        key = asyncssh.generate_private_key("ssh-ed25519", comment=f"callfort@{name}")
        key_path = d / "keys" / "ssh_client_ed25519"
        key.write_private_key(str(key_path))
        os.chmod(key_path, 0o600)
        client_keys[name] = key_path
        authorized.append(key.export_public_key().decode().strip())
    if server_kind == "asyncssh":
        server: Any = SftpServer(inbox, authorized).start()
    else:
        server = OpenSshServer(inbox, authorized, tmp / "sshd").start()
    sites_toml = "".join(f'\n[sync.sites.{n}]\nsigning_key = "{site_sign[n]}"\n' for n in SITES)
    archive_cfg = write_deployment(archive_dir, archive_catalog_url, f"""
[sync]
inbox = "{inbox}"
overdue_nights = 2
{archive_extra}
{sites_toml}""")
    archive_cfg.write_text(archive_cfg.read_text().replace('site = "site-a"', 'site = "central"\nrole = "archive"'))
    for name in SITES:
        d = tmp / name
        cfg = write_deployment(d, f"sqlite:///{d / 'catalog.db'}", f"""
[sync]
target = "archive"
archive_public_key = "{seal_pub}"
archive_signing_key = "{sign_pub}"
{site_extra}
""" + _target_section(server, client_keys[name], server.port, server.host_key_line()))
        cfg.write_text(cfg.read_text().replace('site = "site-a"', f'site = "{name}"\nrole = "site"'))
        site_cfgs[name] = cfg
    return World(tmp=tmp, archive_cfg=archive_cfg, inbox=inbox, site_cfgs=site_cfgs, client_keys=client_keys,
                 server=server, make_app=make_app)


def record(app: Any, tmp: Path, n: int = 1, seconds: float = 2.0, **kwargs: Any) -> list[str]:
    """Ingest ``n`` two-sided calls with consent at 0.5 s; returns their ids."""
    from cfcore.ingest import ingest_wav

    ids = []
    for i in range(n):
        path, _ = make_wav(tmp / f"call-{app.config.site}-{i}.wav", seconds=seconds)
        kwargs.setdefault("customer_numbers", [f"+4930123456{i % 10}"])
        ids.append(ingest_wav(app, path, advisor_id=f"adv-{app.config.site}", consent_at=0.5, **kwargs))
    return ids


def sync(app: Any, **kwargs: Any) -> Any:
    from cfcore.sync.send import run_sync

    return asyncio.run(run_sync(app, SYSTEM, **kwargs))


def receive(app: Any) -> Any:
    from cfcore.sync.receive import process_inbox

    return process_inbox(app, SYSTEM)


def cf(cfg: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``cf`` as its own process against the deployment ``cfg`` (clock pinned like the other
    process tests)."""
    import sys

    from archive_helpers import NOW

    full = {**os.environ, "CF_CONFIG": str(cfg), "CF_NOW": NOW.isoformat(), **(env or {})}
    return subprocess.run([sys.executable, "-m", "cfcore", *args], capture_output=True, text=True, env=full,
                          timeout=timeout)


def stored_objects(app: Any) -> list[str]:
    """Every object key in every store of a deployment."""
    out = []
    for store in app.stores.stores.values():
        root = Path(getattr(store, "root", ""))
        out += [str(p.relative_to(root)) for p in root.rglob("*.cfe")] if root.exists() else []
    return sorted(out)
