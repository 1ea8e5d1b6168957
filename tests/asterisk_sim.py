"""Test helpers for the Asterisk capture tests: the simulated PBX (``cfcore.sim.asterisk``), a
harness that runs it against a real deployment (capture runner + pbx_asterisk plugin + ingest),
audio checks, a self-signed TLS certificate and a real asyncssh SFTP server on loopback.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import math
import ssl
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from cfcore.sim.asterisk import AsteriskSim, SimCall
from hookspecs.types import RequestContext

__all__ = ["ADVISORS", "AsteriskSim", "CaptureHarness", "SimCall", "leg_id"]

ADVISORS = {"PJSIP/100": "A100", "PJSIP/101": "A101", "PJSIP/102": "A102"}
RATE = 8000
PASSWORD = "correct horse battery staple"


def leg_id(call: SimCall) -> str:
    """The call id the plugin gives the advisor leg of a simulated call."""
    return f"{call.customer.linkedid}_{call.advisor.uniqueid}"


def plugin_toml(sim: AsteriskSim, spool: Path, secret_file: Path, **extra: Any) -> str:
    """``[plugins.pbx_asterisk]`` for this simulator; the secret comes from a file (as in production)."""
    secret_env = extra.pop("secret_env", None)
    secret_file.write_text(sim.secret + "\n")
    secret_file.chmod(0o600)
    secret = f'{{ env = "{secret_env}" }}' if secret_env else f'{{ file = "{secret_file}" }}'
    lines = ["[plugins.pbx_asterisk]", 'host = "127.0.0.1"', f"port = {sim.port}", f'username = "{sim.username}"',
             f"secret = {secret}", f'monitor_dir = "{spool}"',
             "settle_seconds = 0", "pickup_timeout = 5", "retry_seconds = 0.2", "reconnect_min = 0.05",
             "reconnect_max = 0.5", "ping_interval = 5", "action_timeout = 5",
             # the simulator's write buffer (as an integrator who checked their PBX would set it)
             f"write_buffer = {extra.pop('write_buffer', sim.write_buffer)}"]
    if "sftp_host" not in extra:
        lines.append(f'recordings_dir = "{spool}"')
    for k, v in extra.items():
        if isinstance(v, bool):
            lines.append(f"{k} = {'true' if v else 'false'}")
        elif isinstance(v, (int, float)):
            lines.append(f"{k} = {v}")
        else:
            lines.append(f'{k} = "{v}"')
    lines.append("[plugins.pbx_asterisk.advisors]")
    lines += [f'"{k}" = "{v}"' for k, v in ADVISORS.items()]
    return "\n".join(lines) + "\n"


def make_user(app: Any, username: str, roles: list[str], *, advisor_id: str | None = None) -> RequestContext:
    """Seed a user straight into the catalog (test set-up; production grants roles four-eyes)."""
    from access_helpers import ctx_for
    from access_helpers import make_user as seed_user

    seed_user(app, username, roles, advisor_id=advisor_id, password=PASSWORD)
    return ctx_for(app, username, host="advisor-pc", ip="10.0.0.7", function="test.calls")


def login_env(username: str) -> dict[str, str]:
    return {"CF_USER": username, "CF_PASSWORD": PASSWORD}


# ---------------------------------------------------------------------- the harness


class CaptureHarness:
    """A simulated PBX, a deployment with the pbx_asterisk plugin configured for it, and a
    capture runner on the test's event loop."""

    def __init__(self, *, tmp_path: Path, deployment: Path, make_app: Callable[..., Any], clock: Any,
                 sim_kwargs: dict[str, Any] | None = None, plugin: dict[str, Any] | None = None,
                 wait_connected: bool = True) -> None:
        self.tmp_path = tmp_path
        self.deployment = deployment
        self.make_app = make_app
        self.clock = clock
        self.spool = tmp_path / "pbx-spool"
        self.sim = AsteriskSim(monitor_root=self.spool, clock=clock, **(sim_kwargs or {}))
        self.plugin = plugin or {}
        self.wait_connected = wait_connected
        self.app: Any = None
        self.runner: Any = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> CaptureHarness:
        # A real MixMonitor writes continuously: whenever the test moves the clock, the simulated
        # one writes the audio of that time (in the state that held meanwhile) before anyone looks.
        advance = self.clock.advance

        def advance_and_write(delta: Any) -> Any:
            at = advance(delta)
            self.sim.tick()
            return at

        self._advance = advance
        self.clock.advance = advance_and_write
        await self.sim.start()
        with open(self.deployment, "a", encoding="utf-8") as f:
            f.write("\n" + plugin_toml(self.sim, self.spool, self.tmp_path / "ami.secret", **self.plugin))
        self.app = self.make_app(self.deployment)
        await self.start_runner()
        return self

    async def start_runner(self) -> None:
        from cfcore.capture.runner import CaptureRunner

        self.runner = CaptureRunner(self.app, poll_interval=0.02)
        self._task = asyncio.create_task(self.runner.run())
        if not self.wait_connected:
            await self.runner.started.wait()
            return
        await self.sim.wait_for(lambda: self.source.client.connected.is_set() and self.source.resyncs > 0,
                                what="the plugin logged in and resynchronised")

    async def stop_runner(self) -> None:
        if self.runner is not None:
            await self.runner.stop()
            assert self._task is not None
            await asyncio.wait_for(self._task, 15)
            self.runner = None

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.stop_runner()
            await self.sim.stop()
        finally:
            del self.clock.advance  # the instance attribute; the class's method again

    @property
    def source(self) -> Any:
        return next(iter(self.runner.sources.values()))

    async def settle(self) -> None:
        """Wait until the plugin has handled every event sent so far."""
        await asyncio.sleep(0.02)
        await self.source.wait_idle()

    async def answered(self, call: SimCall) -> str:
        """Answer a ringing call and wait until it records advisor-only; returns its call id."""
        self.sim.answer(call)
        await self.sim.wait_recording(call, muted=True)
        cid = leg_id(call)
        await self.wait_state(cid, ("recording",))
        return cid

    async def wait_state(self, call_id: str, states: tuple[str, ...], timeout: float = 10.0) -> Any:
        from cfcore.db.models_capture import LiveCall

        row: list[Any] = [None]

        def check() -> bool:
            with self.app.catalog.session() as s:
                row[0] = s.get(LiveCall, call_id)
                return row[0] is not None and row[0].state in states

        async def poll() -> None:
            while not await asyncio.to_thread(check):
                await asyncio.sleep(0.02)

        await asyncio.wait_for(poll(), timeout)
        return row[0]

    async def archived(self, call_id: str, timeout: float = 15.0) -> str:
        """Wait until the leg is archived and the plugin finished its pickup (PBX files gone)."""
        row = await self.wait_state(call_id, ("archived",), timeout)
        await self.sim.wait_for(lambda: call_id not in self.source._pickups, timeout, "the pickup to finish")
        return row.recording_id

    async def trigger(self, ctx: RequestContext, call_id: str, action: str, method: str = "api") -> Any:
        from cfcore.capture import controller

        return await asyncio.to_thread(controller.trigger, self.app, ctx, call_id, action, method, 10.0)


# ---------------------------------------------------------------------- audio


def recording(app: Any, rec_id: str) -> Any:
    from cfcore.archive import get_recording

    with app.catalog.session() as s:
        rec = get_recording(s, rec_id)
        _ = (rec.segments, rec.consents, rec.subjects, rec.media)
        return rec


def segments_of(app: Any, rec_id: str) -> list[tuple[float, float, str]]:
    return [(round(s.start, 3), round(s.end, 3), s.mode) for s in recording(app, rec_id).segments]


def channel(app: Any, rec_id: str, name: str) -> bytes | None:
    from cfcore.archive import read_channel
    from cfcore.errors import NotFound

    try:
        return read_channel(app, rec_id, name)
    except NotFound:
        return None


def samples(pcm: bytes, start: float, end: float) -> tuple[int, ...]:
    a, b = int(round(start * RATE)), int(round(end * RATE))
    chunk = pcm[2 * a:2 * b]
    return struct.unpack(f"<{len(chunk) // 2}h", chunk)


def is_silent(pcm: bytes, start: float, end: float) -> bool:
    s = samples(pcm, start, end)
    return len(s) > 0 and all(v == 0 for v in s)


def tone_level(pcm: bytes, start: float, end: float) -> float:
    """RMS of the stretch (a 9000-amplitude sine has an RMS of about 6360)."""
    s = samples(pcm, start, end)
    return math.sqrt(sum(v * v for v in s) / len(s)) if s else 0.0


def has_tone(pcm: bytes, start: float, end: float) -> bool:
    return tone_level(pcm, start, end) > 5000


#: how far a boundary may lie from the true switch position: the simulator's write buffer plus
#: one frame (the plugin's ``write_buffer`` is set to the simulator's in ``plugin_toml``)
SLACK = (4096 + 320) / 2 / RATE


def assert_segments(app: Any, rec_id: str, expected: list[tuple[float, float, str]], slack: float = SLACK) -> None:
    """The archived segments are the expected ones, each boundary at most ``slack`` after the true
    switch when the new mode keeps more, at most ``slack`` before it when it keeps less."""
    actual = segments_of(app, rec_id)
    assert [m for _, _, m in actual] == [m for _, _, m in expected], (actual, expected)
    keep = {"paused": 0, "advisor_only": 1, "both": 2}
    for i, ((a0, a1, m), (e0, e1, _)) in enumerate(zip(actual, expected, strict=True)):
        if i == 0:
            assert a0 == e0 == 0.0, (actual, expected)
        else:
            more = keep[m] > keep[actual[i - 1][2]]
            assert (e0 - 1e-3 <= a0 <= e0 + slack) if more else (e0 - slack <= a0 <= e0 + 1e-3), (i, actual, expected)
        if i == len(actual) - 1:
            assert abs(a1 - e1) < 1e-3, ("the last segment ends with the file", actual, expected)


def mixmonitors(sim: Any) -> list[dict[str, str]]:
    """MixMonitor actions on real channels (not the plugin's permission probe)."""
    return [f for a, f in sim.actions if a == "MixMonitor" and not f.get("Channel", "").startswith("CallFort/")]


def seg_bounds(app: Any, rec_id: str) -> list[tuple[float, float] | None]:
    return [None if s.start_lo is None else (s.start_lo, s.start_hi) for s in recording(app, rec_id).segments]


def audit_entries(app: Any, action: str, target_id: str | None = None) -> list[Any]:
    return list(app.audit.entries(action=action, target_id=target_id))


def live_call(app: Any, call_id: str) -> Any:
    from cfcore.db.models_capture import LiveCall

    with app.catalog.session() as s:
        return s.get(LiveCall, call_id)


def mode_requests(app: Any, call_id: str) -> list[Any]:
    from cfcore.db.models_capture import ModeRequest

    with app.catalog.session() as s:
        return list(s.scalars(select(ModeRequest).where(ModeRequest.call_id == call_id)
                              .order_by(ModeRequest.requested_at)))


# ---------------------------------------------------------------------- TLS and SFTP


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost (cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "asterisk-sim")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def server_ssl(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


class SftpServer:
    """A real asyncssh SFTP server on loopback, chrooted to ``root``, with one user and key."""

    def __init__(self, root: Path, keys_dir: Path, username: str = "asterisk") -> None:
        self.root = root
        self.keys_dir = keys_dir
        self.username = username
        self.port = 0
        self.removed: list[str] = []
        self.fail_gets = 0  # the next N downloads break off half-way
        self._server: Any = None

    async def start(self) -> SftpServer:
        import asyncssh

        self.keys_dir.mkdir(parents=True, exist_ok=True)
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key_path = self.keys_dir / "client_ed25519"
        client_key.write_private_key(str(self.client_key_path))
        self.client_key_path.chmod(0o600)
        outer = self
        authorized = asyncssh.import_authorized_keys(client_key.export_public_key().decode())

        class Server(asyncssh.SSHServer):
            def begin_auth(self, username: str) -> bool:
                return True

            def public_key_auth_supported(self) -> bool:
                return True

            def validate_public_key(self, username: str, key: Any) -> bool:
                return username == outer.username and authorized.validate(key, "127.0.0.1", "127.0.0.1") is not None

        class Sftp(asyncssh.SFTPServer):
            def __init__(self, chan: Any) -> None:
                super().__init__(chan, chroot=str(outer.root).encode())

            def remove(self, path: bytes) -> None:
                outer.removed.append(Path(path.decode()).name)
                super().remove(path)

            def read(self, file_obj: Any, offset: int, size: int) -> bytes:
                if outer.fail_gets:
                    if offset == 0:  # a short read (legal in SFTP): the client asks for the rest
                        return super().read(file_obj, offset, max(1, size // 2))[:4096]
                    outer.fail_gets -= 1
                    raise asyncssh.SFTPFailure("simulated connection trouble half-way")
                return super().read(file_obj, offset, size)

        self._server = await asyncssh.listen("127.0.0.1", 0, server_host_keys=[host_key], server_factory=Server,
                                             sftp_factory=Sftp, allow_scp=False)
        self.port = self._server.sockets[0].getsockname()[1]
        self.known_hosts = self.keys_dir / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_key.export_public_key().decode()}")
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
