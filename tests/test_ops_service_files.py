"""The service files: the systemd unit parses and is hardened, the Dockerfile installs what
scripts/setup installs, compose.yaml is valid with PostgreSQL, MinIO and CallFort, and the
config it mounts loads."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cfcore.config import load_config

ROOT = Path(__file__).resolve().parent.parent


def unit() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(ROOT / "deploy" / "callfort.service")
    return parser


def test_the_unit_is_hardened_and_runs_as_a_service_user():
    svc = unit()["Service"]
    assert svc["User"] == "callfort" and svc["NoNewPrivileges"] == "yes" and svc["ProtectSystem"] == "strict"
    assert svc["ExecStart"].endswith("cf serve --log-format json") and "cf doctor" in svc["ExecStartPre"]
    for opt in ("ProtectHome", "PrivateTmp", "PrivateDevices", "RestrictSUIDSGID", "MemoryDenyWriteExecute"):
        assert svc[opt] == "yes"
    assert svc["CapabilityBoundingSet"] == "" and svc["UMask"] == "0077"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_systemd_analyze_verifies_the_unit(tmp_path):
    # the paths it names must exist for verify: copy the unit with ExecStart* pointing at /bin/true
    text = (ROOT / "deploy" / "callfort.service").read_text()
    text = re.sub(r"(?m)^(ExecStart(?:Pre)?=)\S+", r"\1/bin/true", text)
    copy = tmp_path / "callfort.service"
    copy.write_text(text)
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(copy)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "callfort.service" not in proc.stderr, proc.stderr  # no warning either
    broken = tmp_path / "broken.service"
    broken.write_text(text.replace("ProtectSystem=strict", "ProtectSystem=bogus"))
    bad = subprocess.run(["systemd-analyze", "verify", "--man=no", str(broken)], capture_output=True, text=True,
                         timeout=60)
    assert "broken.service:31: Failed to parse protect system value" in bad.stderr  # the check can fail


def _setup_packages() -> tuple[str, str]:
    text = (ROOT / "scripts" / "setup").read_text()
    (extra,) = re.findall(r'-e "\.(\[[a-z,]+\])"', text)
    assert 'for d in plugins/*/; do plugins+=(-e "$d")' in text
    return extra, "plugins/*/"


def test_the_dockerfile_installs_the_package_set_of_scripts_setup():
    extra, plugins = _setup_packages()
    text = (ROOT / "Dockerfile").read_text()
    (install,) = [line for line in text.splitlines() if line.startswith("RUN") and "pip install" in line]
    assert f'".{extra}"' in install and install.rstrip().endswith(plugins)
    copied = re.findall(r"(?m)^COPY (\S+)", text)
    for needed in ("hookspecs", "cfcore", "plugins", "pyproject.toml"):
        assert needed in copied
    assert re.search(r"(?m)^USER callfort$", text) and "cf" in text.split("ENTRYPOINT", 1)[1]


def test_compose_is_valid_and_has_postgres_minio_and_callfort():
    doc = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = doc["services"]
    assert set(services) == {"postgres", "minio", "callfort"}
    assert services["postgres"]["image"].startswith("postgres:") and services["minio"]["image"].startswith("minio/")
    cf = services["callfort"]
    assert cf["build"] == "." and set(cf["depends_on"]) == {"postgres", "minio"}
    for name in cf["secrets"] + services["postgres"]["secrets"] + services["minio"]["secrets"]:
        assert name in doc["secrets"]
    mounted = [v.split(":")[0] for v in cf["volumes"] if v.startswith("./")]
    for path in mounted:
        assert (ROOT / path).is_file(), path


def test_the_compose_config_loads(tmp_path):
    copy = tmp_path / "callfort.toml"
    copy.write_text((ROOT / "deploy" / "compose.toml").read_text())
    config = load_config(copy)
    assert config.get("server.log_format", str) == "json"
    assert [s for s in config.section("stores")] == ["minio"]
