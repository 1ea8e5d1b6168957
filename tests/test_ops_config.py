"""Strict config: unknown keys, misspelt plugin names and clear secrets stop start-up in one line;
docs/config.md is generated from the declarations and complete; ``cf init`` writes a commented
config and the next steps."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from cfcore.config import load_config
from cfcore.config_schema import SECTIONS, render_markdown
from cfcore.errors import CallFortError, ConfigError

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("extra", "message"), [
    ("[server]\nprot = 8750\n", "unknown key server.prot (did you mean port?)"),
    ("[retention]\nmifid_yeras = 5\n", "unknown key retention.mifid_yeras (did you mean mifid_years?)"),
    ("[access]\nmin_pasword_length = 14\n", "unknown key access.min_pasword_length (did you mean min_password_length?)"),
    ("[audit]\nanchor_evry = 10\n", "unknown key audit.anchor_evry (did you mean anchor_every?)"),
    ("[fis.delivery]\nbase_second = 3\n", "unknown key fis.delivery.base_second (did you mean base_seconds?)"),
    ("[servr]\nport = 1\n", "unknown section [servr] (did you mean [server]?)"),
    ('[notify.dpo]\ntype = "smtp"\npassword = "hunter2"\n', "notify.dpo.password is a secret written in clear"),
    ('[stores.s3]\ntype = "s3"\nsecret_key = "abc"\n', "stores.s3.secret_key is a secret written in clear"),
])
def test_a_config_mistake_names_file_key_and_closest_name(deployment, extra, message):
    deployment.write_text(deployment.read_text() + "\n" + extra)
    with pytest.raises(ConfigError) as err:
        load_config(deployment)
    assert str(deployment) in str(err.value) and message in str(err.value)
    assert "hunter2" not in str(err.value) and "abc" not in str(err.value).split(":")[-1]


def test_required_copies_misspelt_in_the_archive_section(deployment):
    deployment.write_text(deployment.read_text().replace("required_copies = 1", "required_copys = 1"))
    with pytest.raises(ConfigError, match=r"archive\.required_copys \(did you mean required_copies\?\)"):
        load_config(deployment)


def test_the_cli_prints_one_line_and_fails(deployment, run_cf):
    deployment.write_text(deployment.read_text() + "\n[server]\nprot = 8750\n")
    proc = run_cf("recordings", "list")
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and "server.prot (did you mean port?)" in proc.stderr


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.replace("disabled = []", 'disabled = ["pbx_astrisk"]'),
     "plugins.disabled names 'pbx_astrisk', but no plugin of that name is installed (did you mean pbx_asterisk?)"),
    (lambda t: t + '\n[plugins.notify_smpt]\nhost = "x"\n',
     "[plugins.notify_smpt], but no plugin of that name is installed (did you mean notify_smtp?)"),
])
def test_a_misspelt_plugin_name_stops_start_up(deployment, make_app, edit, message):
    deployment.write_text(edit(deployment.read_text()))
    with pytest.raises(CallFortError) as err:
        make_app(deployment)
    assert message in str(err.value)


def test_docs_config_md_is_generated_from_the_declarations():
    assert (ROOT / "docs" / "config.md").read_text() == render_markdown(), \
        "run: python -m cfcore.config_schema > docs/config.md"


def _keys_read_by_the_code() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "cfcore").rglob("*.py"):
        text = path.read_text()
        found |= set(re.findall(r'config\.get\(\s*"([a-z_]+\.[a-z_.]+)"', text))
        found |= {f"access.{k}" for k in re.findall(r'_setting\(app, "([a-z0-9_]+)"', text)}
        found |= {f"audit.{k}" for k in re.findall(r'self\._cfg\("([a-z_]+)"', text)}
        found |= {f"dsar.{k}" for k in re.findall(r'dsar_cfg\.get\("([a-z_]+)"', text)}
        found |= {f"dsar.{k}" for k in re.findall(r'section\("dsar"\)\.get\("([a-z_]+)"', text)}
        found |= {f"server.{k}" for k in re.findall(r'section\("server"\)\.get\("([a-z_]+)"', text)}
    import attrs

    from cfcore.access.throttle import ThrottleSettings
    from cfcore.fis.breach import _CONFIG_DEFAULTS
    found |= {f"access.login_{f.name}" for f in attrs.fields(ThrottleSettings) if f.name != "max_keys"}
    found |= {f"fis.breach.{k}" for k in _CONFIG_DEFAULTS}
    return found


def test_every_key_the_code_reads_is_declared():
    declared = {f"{section}.{k.name}" for section, keys in SECTIONS.items() for k in keys}
    read = _keys_read_by_the_code()
    assert len(read) > 40
    assert sorted(read - declared) == []


def test_cf_init_writes_a_commented_config_that_loads_and_prints_next_steps(tmp_path):
    target = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "cfcore", "init", str(target), "--site", "ffm"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Next steps:" in proc.stdout and f"back up {target.resolve()}/keys/ now" in proc.stdout
    assert "cf doctor" in proc.stdout
    text = (target / "callfort.toml").read_text()
    for section in SECTIONS:
        assert f"[{section}]" in text  # every section at least commented, with its keys
    assert "# min_password_length = 12" in text
    data = tomllib.loads(text)
    assert "access" not in data  # the reference is commented out
    # uncommenting one default keeps the config valid
    (target / "callfort.toml").write_text(text.replace("# [server]", "[server]").replace("# port = 8750", "port = 8750"))
    assert load_config(target / "callfort.toml").get("server.port", int) == 8750
