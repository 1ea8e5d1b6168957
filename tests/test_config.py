"""Deployment config: errors name the file and the key; secrets from env and files."""

from __future__ import annotations

import pytest

from cfcore.config import Secret, load_config
from cfcore.errors import ConfigError


def write(tmp_path, text):
    p = tmp_path / "callfort.toml"
    p.write_text(text)
    return p


def test_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="cf init"):
        load_config(tmp_path / "nope.toml")


def test_bad_toml_names_the_file(tmp_path):
    p = write(tmp_path, "[deployment\n")
    with pytest.raises(ConfigError, match=str(p)):
        load_config(p)


def test_wrong_type_names_file_and_key(tmp_path):
    p = write(tmp_path, "[archive]\nrequired_copies = \"two\"\n")
    with pytest.raises(ConfigError, match=r"callfort.toml: archive.required_copies must be int"):
        load_config(p)


def test_unknown_section_lists_choices(tmp_path):
    with pytest.raises(ConfigError, match="unknown section \\[stroes\\].*choose one of"):
        load_config(write(tmp_path, "[stroes.x]\ntype='local'\n"))


def test_store_name_without_section(tmp_path):
    with pytest.raises(ConfigError, match="archive.stores names 'cloud'.*choose one of: primary"):
        load_config(write(tmp_path, "[archive]\nstores=['cloud']\n[stores.primary]\ntype='local'\n"))


def test_secrets_from_env_and_file(tmp_path, monkeypatch):
    (tmp_path / "pw.txt").write_text("s3cr3t\n")
    monkeypatch.setenv("CF_TEST_SECRET", "from-env")
    p = write(tmp_path, "[notify.mail]\ntype='smtp'\npassword={file='pw.txt'}\ntoken={env='CF_TEST_SECRET'}\n")
    cfg = load_config(p)
    assert cfg.section("notify.mail")["password"] == "s3cr3t"
    assert cfg.section("notify.mail")["token"] == "from-env"
    assert isinstance(cfg.section("notify.mail")["token"], Secret)
    assert "from-env" not in repr(cfg.section("notify.mail")["token"])


def test_missing_secret_env_names_key(tmp_path, monkeypatch):
    monkeypatch.delenv("CF_NOPE", raising=False)
    # Resolved when read (the command that uses it), not when the file is loaded (issue 13).
    cfg = load_config(write(tmp_path, "[notify.mail]\ntype='smtp'\nuser='x'\npassword={env='CF_NOPE'}\n"))
    assert cfg.section("notify.mail")["user"] == "x"
    with pytest.raises(ConfigError, match=r"notify.mail.password: environment variable CF_NOPE is not set"):
        cfg.section("notify.mail")["password"]
    with pytest.raises(ConfigError, match=r"notify.mail.password: environment variable CF_NOPE is not set"):
        dict(cfg.section("notify.mail"))


def test_cli_prints_config_errors_as_one_line(run_cf, deployment):
    deployment.write_text("[archive]\nrequired_copies = 0\n")
    proc = run_cf("recordings", "list")
    assert proc.returncode == 3
    assert proc.stderr.startswith("cf: error: ") and proc.stderr.count("\n") == 1
