"""Issue 11 item 10: secrets are never silently recreated.

Only ``cf init`` creates secrets. Anywhere else a missing secret is one clear line and the command
refuses to start (``cf serve``, ``cf ingest``, ``cf dsar``, ``cf audit verify`` …), and the file is
not created behind the admin's back; once the backup returns, everything is readable again.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from archive_helpers import login_env, make_user, make_wav

from cfcore.archive import read_channel
from cfcore.errors import ConfigError
from cfcore.ingest import ingest_wav
from cfcore.secrets import CORE_SECRETS, create_secrets

SECRETS = [*CORE_SECRETS, "keyring.json"]


def _move_away(app, name):
    path = app.keys_dir / name
    backup = path.with_name(f"backup-{name}")  # a name CallFort does not read
    os.replace(path, backup)
    return path, backup


def test_cf_init_creates_every_secret_private(tmp_path):
    target = tmp_path / "dep"
    p = subprocess.run([sys.executable, "-m", "cfcore", "init", str(target)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    keys = target / "keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    for name in SECRETS:
        assert stat.S_IMODE((keys / name).stat().st_mode) == 0o600, name
    before = {n: (keys / n).read_bytes() for n in SECRETS}
    assert create_secrets(keys, lambda: datetime.now(UTC)) == []  # never replaces an existing secret
    assert {n: (keys / n).read_bytes() for n in SECRETS} == before


@pytest.mark.parametrize("name", SECRETS)
def test_missing_secret_stops_every_command_and_is_not_recreated(name, app, run_cf, tmp_path):
    make_user(app, "admin1", ["administrator"])
    make_user(app, "dpo1", ["dpo"])
    wav, _ = make_wav(tmp_path / "a.wav", seconds=0.5, channels=1)
    path, backup = _move_away(app, name)
    runs = {
        "ingest": run_cf("ingest", str(wav), "--agent", "A1", "--customer", "K-1", env=login_env("admin1")),
        "dsar": run_cf("dsar", "--customer", "K-1", "--format", "json", "--out", str(tmp_path / "r.json"),
                       env=login_env("dpo1")),
        "audit verify": run_cf("audit", "verify", env=login_env("admin1")),
        "serve": run_cf("serve", "--port", "1", timeout=60),
    }
    for cmd, p in runs.items():
        assert p.returncode == 3, (cmd, p.stdout, p.stderr)
        assert f"{name} is missing" in p.stderr and "Traceback" not in p.stderr, (cmd, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1, (cmd, p.stderr)
    assert not path.exists()  # nothing was recreated
    assert not (tmp_path / "r.json").exists()
    with pytest.raises(ConfigError, match=f"{name} is missing"):
        type(app).open(app.config.path)
    os.replace(backup, path)
    assert run_cf("ingest", str(wav), "--agent", "A1", "--customer", "K-1", env=login_env("admin1")).returncode == 0


def test_moved_key_ring_makes_no_new_kek_and_old_recordings_stay_readable(app, make_app, deployment, tmp_path):
    wav, chans = make_wav(tmp_path / "a.wav", seconds=0.5, channels=1)
    rec = ingest_wav(app, wav, advisor_id="A1", customer_ids=["K-1"])
    kek = app.keys.current_kek_id()
    path, backup = _move_away(app, "keyring.json")
    app.keys._stamp = None  # as a fresh process would see it
    with pytest.raises(ConfigError, match="keyring.json is missing"):
        ingest_wav(app, wav, advisor_id="A1", customer_ids=["K-2"])
    assert not path.exists()
    os.replace(backup, path)
    again = make_app(deployment)
    assert again.keys.key_ids() == [kek]
    assert read_channel(again, rec, "advisor") == chans[0]


def test_removed_pseudonym_key_never_yields_an_empty_report(app, make_app, deployment, tmp_path):
    from cfcore.dsar import produce_report

    def build_report(app, ctx, customer_ids):
        return produce_report(app, ctx, customer_ids=customer_ids, fmt="json")[0].decode()

    wav, _ = make_wav(tmp_path / "a.wav", seconds=0.5, channels=1)
    rec = ingest_wav(app, wav, advisor_id="A1", customer_ids=["K-1"])
    dpo = make_user(app, "dpo1", ["dpo"])
    assert rec in (build_report(app, dpo, customer_ids=["K-1"]))
    path, backup = _move_away(app, "subject-pseudonym.key")
    with pytest.raises(ConfigError, match="subject-pseudonym.key is missing"):
        build_report(app, dpo, customer_ids=["K-1"])  # an open app does not fall back either
    assert not path.exists()
    os.replace(backup, path)
    assert rec in (build_report(make_app(deployment), dpo, customer_ids=["K-1"]))


@pytest.mark.parametrize("content", [b"", b"zz\n", b"00" * 16 + b"\n"])
def test_damaged_secret_is_a_clear_error(app, make_app, deployment, content):
    path = app.keys_dir / "stream-link.key"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="stream-link.key is not 32 bytes"):
        make_app(deployment)
