"""``cf backup`` → ``cf restore`` into an empty deployment → play a recording and verify the audit
trail; ``cf db upgrade`` of a catalog written by revision 0001 with data in it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from access_helpers import NOW, ctx_for, ingest, make_user
from sqlalchemy import create_engine, text

from cfcore.archive import read_channel
from cfcore.db.migrate import alembic_config

PASS = "correct horse battery staple 42"


def cf(config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("CF_USER", "CF_PASSWORD", "CF_TOKEN")}
    full.update({"CF_CONFIG": str(config), "CF_NOW": NOW.isoformat(), "CF_BACKUP_PASSPHRASE": PASS, **(env or {})})
    return subprocess.run([sys.executable, "-m", "cfcore", *args], capture_output=True, text=True, env=full,
                          timeout=180)


def empty_deployment(source_cfg: Path, target: Path) -> Path:
    """A new machine: the same config (a fresh SQLite catalog), no keys, no catalog yet."""
    target.mkdir()
    cfg = target / "callfort.toml"
    cfg.write_text(re.sub(r'(?m)^url = ".*"$', 'url = "sqlite:///catalog.db"', source_cfg.read_text()))
    return cfg


def test_backup_restore_play_and_verify(app, deployment, make_app, tmp_path):
    make_user(app, "dora", ["dpo"])
    rec = ingest(app, tmp_path, "A1")
    audio = read_channel(app, rec, "advisor")
    app.audit.checkpoint()
    out = tmp_path / "backups" / "cf.cfbk"
    proc = cf(deployment, "backup", "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(proc.stdout)
    assert manifest["tables"]["recordings"] == 1 and "keyring.json" in manifest["keys"] and manifest["anchors"] >= 1
    assert (out.stat().st_mode & 0o777) == 0o600
    blob = out.read_bytes()
    assert blob.startswith(b"CFBACKUP1") and b"keyring" not in blob and b"recordings" not in blob  # encrypted

    new = empty_deployment(deployment, tmp_path / "new-machine")
    # without the media the restore says what is missing; with the media store restored, nothing
    shutil.copytree(app.data_dir / "media", new.parent / "media")
    wrong = cf(new, "restore", str(out), env={"CF_BACKUP_PASSPHRASE": "not the passphrase"})
    assert wrong.returncode != 0 and "wrong passphrase" in wrong.stderr
    assert not (new.parent / "keys").exists() or not any((new.parent / "keys").iterdir())
    proc = cf(new, "restore", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "every recording's media is in the stores" in proc.stdout
    for p in (new.parent / "keys").iterdir():
        assert (p.stat().st_mode & 0o777) == 0o600

    restored = make_app(new)
    assert read_channel(restored, rec, "advisor") == audio  # plays: decrypted with the restored key ring
    result = restored.audit.verify()
    assert result.ok, result.problem
    verify = cf(new, "audit", "verify", env={"CF_USER": "dora", "CF_PASSWORD": "correct horse battery staple"})
    assert verify.returncode == 0, verify.stderr + verify.stdout
    assert ctx_for(restored, "dora").actor.username == "dora"  # the users came back too

    again = cf(new, "restore", str(out))  # never into a deployment that has keys
    assert again.returncode != 0 and "holds key files already" in again.stderr


def test_restore_reports_media_not_restored(app, deployment, tmp_path):
    ingest(app, tmp_path, "A1")
    out = tmp_path / "cf.cfbk"
    assert cf(deployment, "backup", "--out", str(out)).returncode == 0
    new = empty_deployment(deployment, tmp_path / "new")
    proc = cf(new, "restore", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "media objects are in no store: restore the media stores" in proc.stdout


def test_backup_needs_a_passphrase(app, deployment, tmp_path):
    proc = cf(deployment, "backup", "--out", str(tmp_path / "x.cfbk"), env={"CF_BACKUP_PASSPHRASE": ""})
    assert proc.returncode != 0 and "no backup passphrase" in proc.stderr
    proc = cf(deployment, "backup", "--out", str(tmp_path / "x.cfbk"), env={"CF_BACKUP_PASSPHRASE": "short"})
    assert proc.returncode != 0 and "at least 12 characters" in proc.stderr
    assert not (tmp_path / "x.cfbk").exists()


def test_db_upgrade_from_revision_0001_keeps_the_data(deployment, catalog_url, make_app):
    from alembic import command

    engine = create_engine(catalog_url)
    with engine.connect() as conn:
        command.upgrade(alembic_config(conn), "0001")
        conn.commit()
        conn.execute(text("INSERT INTO users (id, username, display_name, disabled, failed_logins, created_at, "
                          "created_by) VALUES ('u1', 'Dora', 'Dora D', false, 0, '2026-11-01 10:00:00', 'system')"))
        conn.commit()
    engine.dispose()
    proc = cf(deployment, "db", "upgrade")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"0001 -> 00\d\d_\w+", proc.stdout), proc.stdout
    again = cf(deployment, "db", "upgrade")
    assert "newest revision" in again.stdout
    doctor = cf(deployment, "doctor", "--json")
    assert [c for c in json.loads(doctor.stdout) if c["name"] == "catalog"][0]["ok"]
    app = make_app(deployment, upgrade=False)
    with app.catalog.session() as s:
        assert s.execute(text("SELECT display_name FROM users WHERE id = 'u1'")).scalar() == "Dora D"


def test_the_cheap_head_revision_agrees_with_alembic(app):
    from alembic.script import ScriptDirectory

    from cfcore.db.migrate import current_revisions, head_revisions

    assert head_revisions() == set(ScriptDirectory.from_config(alembic_config()).get_heads())
    assert current_revisions(app.catalog.engine) == head_revisions()
