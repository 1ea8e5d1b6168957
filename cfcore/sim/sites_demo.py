"""``cf demo --sites N``: N sites record calls and hand them over to one archive over SFTP.

Creates ``<dir>/archive`` and ``<dir>/site-a`` … (each a deployment with its own keys and SQLite
catalog), an SSH server on a free loopback port in front of the archive's inbox (asyncssh, pinned
host key, one client key per site), records a few synthetic calls per site, then runs what the
nightly jobs run: ``cf sync`` on every site, ``cf sync receive`` on the archive, ``cf sync`` again
for the hand-over. Not production code.
"""

from __future__ import annotations

import math
import os
import shutil
import struct
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from ..authority import system_context
from ..deployment import DEFAULT_CONFIG
from ..errors import ConflictError

MARKER = ".cf-demo-sites"


def _tone(seconds: float, freq: float, rate: int = 8000) -> bytes:
    n = int(seconds * rate)
    return struct.pack(f"<{n}h", *(int(6000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(n)))


def _write_config(directory: Path, site: str, role: str, extra: str) -> Path:
    from ..clock import Clock
    from ..secrets import create_secrets

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "keys").mkdir(mode=0o700, exist_ok=True)
    create_secrets(directory / "keys", Clock().now)  # as 'cf init' does
    text = DEFAULT_CONFIG.replace("{site}", site).replace(f'site = "{site}"', f'site = "{site}"\nrole = "{role}"')
    path = directory / "callfort.toml"
    path.write_text(text + extra, encoding="utf-8")
    return path


async def run_sites_demo(root: Path, n_sites: int, say: Callable[[str], None], *, calls: int = 3) -> dict[str, Any]:
    import asyncio

    import asyncssh

    from ..app import App
    from ..crypto import archive_seal
    from ..ingest import ingest_wav
    from ..sync.receive import process_inbox
    from ..sync.send import run_sync
    from ..sync.site_audit import verify_site_chain
    from ..wav import write_wav

    if root.exists():
        if not (root / MARKER).exists():
            raise ConflictError(f"{root} exists and was not made by 'cf demo --sites'", hint="choose another --dir")
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / MARKER).write_text("created by cf demo --sites\n")
    names = [f"site-{chr(ord('a') + i)}" for i in range(n_sites)]
    inbox = root / "archive" / "inbox"
    inbox.mkdir(parents=True)
    (root / "archive" / "keys").mkdir(mode=0o700)
    archive_seal.create_key_files(root / "archive" / "keys", seal_key=True)
    seal_pub = archive_seal.public_hex(archive_seal.seal_private_key(root / "archive" / "keys"))
    sign_pub = archive_seal.public_hex(archive_seal.signing_key(root / "archive" / "keys"))
    authorized, site_keys = [], {}
    for name in names:
        keys = root / name / "keys"
        keys.mkdir(parents=True, mode=0o700)
        archive_seal.create_key_files(keys, seal_key=False)
        site_keys[name] = archive_seal.public_hex(archive_seal.signing_key(keys))
        ck = asyncssh.generate_private_key("ssh-ed25519", comment=f"callfort@{name}")
        ck.write_private_key(str(keys / "ssh_client_ed25519"))
        os.chmod(keys / "ssh_client_ed25519", 0o600)
        authorized.append(ck.export_public_key().decode().strip())
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.listen(
        "127.0.0.1", 0, server_host_keys=[host_key],
        authorized_client_keys=asyncssh.import_authorized_keys("\n".join(authorized) + "\n"),
        sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=str(inbox).encode()),
        allow_scp=False, password_auth=False, kbdint_auth=False)
    port = server.sockets[0].getsockname()[1]
    say(f"archive inbox {inbox} behind SFTP on 127.0.0.1:{port} (host key pinned, client keys only)")
    archive_cfg = _write_config(root / "archive", "central", "archive", '\n[sync]\ninbox = "inbox"\n' + "".join(
        f'\n[sync.sites.{n}]\nsigning_key = "{site_keys[n]}"\n' for n in names))
    host_line = host_key.export_public_key().decode().strip()
    apps: dict[str, Any] = {}
    try:
        for name in names:
            cfg = _write_config(root / name, name, "site", f"""
[sync]
target = "archive"
archive_public_key = "{seal_pub}"
archive_signing_key = "{sign_pub}"

[sync.targets.archive]
type = "ssh"
host = "127.0.0.1"
port = {port}
user = "callfort"
host_key = "{host_line}"
client_key = "keys/ssh_client_ed25519"
""")
            apps[name] = app = App.open(cfg)
            for i in range(calls):
                wav = root / name / f"call-{i}.wav"
                write_wav(wav, [_tone(4.0, 440 + 40 * i), _tone(4.0, 660 + 40 * i)], 8000)
                ingest_wav(app, wav, advisor_id=f"{name}-adv{i % 2 + 1}", customer_numbers=[f"+49301234{i:03d}"],
                           consent_at=1.0, started=app.clock.now() - timedelta(minutes=10 * (calls - i)))
                wav.unlink()
            say(f"{name}: recorded {calls} calls (each data key sealed to the archive at once)")
        for name in names:
            r = await run_sync(apps[name], system_context("sync.send"))
            say(f"{name}: cf sync -> batch {r.batch} {r.state}: {r.recordings} recordings, "
                f"{r.audit_entries} audit entries, {r.bytes_sent} bytes")
        archive = App.open(archive_cfg)
        apps["archive"] = archive
        got = await asyncio.to_thread(process_inbox, archive, system_context("sync.receive"))
        for imp in got.imported:
            say(f"archive: imported {imp['site']}: {imp['recordings']} recordings verified (size, SHA-256, GCM of "
                f"every segment), {imp['audit_entries']} audit entries; signed receipt written")
        for name in names:
            r = await run_sync(apps[name], system_context("sync.send"))
            for h in r.handed_over:
                say(f"{name}: receipt verified -> {h['recordings']} recordings handed over, "
                    f"{h['objects_deleted']} local objects and the keys deleted, stubs kept")
        chains = {n: verify_site_chain(archive, n, site_keys[n]) for n in names}
        for n, c in chains.items():
            say(f"archive: {n}'s audit chain inside the archive: {c.checked} entries, {'verified' if c.ok else c.problem}")
        from sqlalchemy import func, select

        from ..db.models import Recording

        with archive.catalog.session() as s:
            per_site = dict(s.execute(select(Recording.site, func.count()).group_by(Recording.site)).all())
        say(f"archive {archive_cfg}: " + ", ".join(f"{k}: {v} recordings" for k, v in sorted(per_site.items())))
        return {"archive": str(archive_cfg), "sites": {n: str(apps[n].config.path) for n in names},
                "recordings": per_site, "chains_ok": all(c.ok for c in chains.values())}
    finally:
        server.close()
        for app in apps.values():
            app.close()
