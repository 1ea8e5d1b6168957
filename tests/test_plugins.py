"""The plugin manager: discovery, disabled, broken optional/required, misspelled hooks, `cf plugins`."""

from __future__ import annotations

import importlib.metadata as md
import json
import sys
import textwrap
from pathlib import Path

import pytest

from cfcore.config import load_config
from cfcore.errors import PluginError
from cfcore.plugins import get_plugin_manager
from hookspecs import hookimpl
from hookspecs.types import SyncTargetType, Transcript


def make_dist(site: Path, name: str, module_source: str, version: str = "1.2.3") -> None:
    """Write an installed distribution (dist-info + module) into ``site``: real entry-point discovery."""
    mod = f"cftest_{name}"
    (site / f"{mod}.py").write_text(textwrap.dedent(module_source))
    info = site / f"cftest_{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: cftest-{name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[cfcore]\n{name} = {mod}\n")


GOOD = """
from hookspecs import hookimpl
from hookspecs.types import StoreType

@hookimpl
def cf_media_stores():
    return [StoreType(name="memory-test", create=lambda opts, ctx: None)]
"""
BROKEN = "raise RuntimeError('boom at import')\n"
MISSPELLED = """
from hookspecs import hookimpl

@hookimpl
def cf_media_storez():
    return []
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    make_dist(site, "good", GOOD)
    make_dist(site, "broken", BROKEN)
    make_dist(site, "misspelled", MISSPELLED)
    monkeypatch.syspath_prepend(str(site))
    return site


def eps(site: Path) -> list[md.EntryPoint]:
    return [ep for dist in md.distributions(path=[str(site)]) for ep in dist.entry_points
            if ep.group == "cfcore"]


def config_with(tmp_path: Path, plugins_toml: str):
    p = tmp_path / "callfort.toml"
    p.write_text("[plugins]\n" + plugins_toml)
    return load_config(p)


def test_discovery_reports_each_plugin_status(site, tmp_path):
    mgr = get_plugin_manager(config_with(tmp_path, ""), entry_points=eps(site))
    by_name = {s.name: s for s in mgr.statuses}
    assert by_name["good"].status == "ok"
    assert by_name["good"].hooks == ("cf_media_stores",)
    assert by_name["good"].distribution == "cftest-good" and by_name["good"].version == "1.2.3"
    assert by_name["broken"].status == "failed" and "boom at import" in by_name["broken"].error
    assert by_name["misspelled"].status == "failed" and "cf_media_storez" in by_name["misspelled"].error
    # the refused plugin's hook is not called; the good one's is
    assert "memory-test" in mgr.registrations("cf_media_stores")
    assert mgr.pm.get_plugin("misspelled") is None


def test_disabled_plugin_is_not_loaded(site, tmp_path):
    sys.modules.pop("cftest_good", None)
    mgr = get_plugin_manager(config_with(tmp_path, 'disabled = ["good"]\n'), entry_points=eps(site))
    assert mgr.status("good").status == "disabled"
    assert "cftest_good" not in sys.modules
    assert "memory-test" not in mgr.registrations("cf_media_stores")


@pytest.mark.parametrize("name,fragment", [("broken", "boom at import"), ("misspelled", "cf_media_storez"),
                                           ("absent", "not installed")])
def test_required_plugin_that_fails_stops_startup(site, tmp_path, name, fragment):
    with pytest.raises(PluginError) as exc:
        get_plugin_manager(config_with(tmp_path, f'required = ["{name}"]\n'), entry_points=eps(site))
    assert name in str(exc.value) and fragment in str(exc.value)


def test_duplicate_registration_names_are_an_error(tmp_path):
    class A:
        @hookimpl
        def cf_sync_targets(self):
            return [SyncTargetType(name="ssh", create=lambda o, c: None)]

    mgr = get_plugin_manager(None, entry_points=[], extra=[("a", A()), ("b", A())])
    with pytest.raises(PluginError, match="two plugins register 'ssh' for cf_sync_targets"):
        mgr.registrations("cf_sync_targets")


def test_sync_targets_are_collected_and_no_longer_provisional(tmp_path):
    """The core calls cf_sync_targets for real since issue 17 (cf sync): not provisional any more."""
    class P:
        @hookimpl
        def cf_sync_targets(self):
            return [SyncTargetType(name="ssh", create=lambda o, c: None)]

    mgr = get_plugin_manager(None, entry_points=[], extra=[("p", P())])
    assert list(mgr.sync_target_types()) == ["ssh"]
    assert mgr.status("p").provisional == ()
    assert mgr.status("p").as_dict()["provisional"] == []


def test_transcribe_is_firstresult(tmp_path):
    class Declines:
        @hookimpl
        def cf_transcribe(self, audio, language):
            return None

    class English:
        @hookimpl
        def cf_transcribe(self, audio, language):
            return Transcript(recording_id=audio.recording_id, language=language, text="hello", engine="en")

    from hookspecs.types import AudioClip, ChannelRole

    mgr = get_plugin_manager(None, entry_points=[], extra=[("en", English()), ("no", Declines())])
    clip = AudioClip(recording_id="r1", role=ChannelRole.ADVISOR, pcm_s16le=b"\0\0")
    result = mgr.transcribe(clip, "en")
    assert isinstance(result, Transcript) and result.text == "hello"


def test_cli_commands_hook_adds_a_subcommand(tmp_path):
    import click
    from click.testing import CliRunner

    class P:
        @hookimpl
        def cf_cli_commands(self, cli):
            @cli.command("hello-plugin")
            def hello():
                click.echo("hello from a plugin")

    group = click.Group("cf")
    mgr = get_plugin_manager(None, entry_points=[], extra=[("p", P())])
    mgr.add_cli_commands(group)
    assert CliRunner().invoke(group, ["hello-plugin"]).output == "hello from a plugin\n"


def test_cf_plugins_json_lists_in_tree_plugins_with_true_status(run_cf):
    out = run_cf("plugins", "--json", check=True)
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    for name in ("pbx_asterisk", "pbx_avaya", "mobile_ons", "store_local", "store_s3", "crm_soap",
                 "notify_smtp", "notify_webhook", "transcribe_sphinx", "transcribe_whisper"):
        assert name in rows, name
        assert rows[name]["distribution"] == "callfort-" + name.replace("_", "-")
    for empty in ("pbx_avaya",):
        assert rows[empty]["status"] == "no hooks yet" and rows[empty]["hooks"] == []
    assert rows["mobile_ons"]["status"] == "ok"
    assert {"cf_capture_sources", "cf_fis_rules"} <= set(rows["mobile_ons"]["hooks"])
    assert rows["crm_soap"]["status"] == "ok"
    assert set(rows["crm_soap"]["hooks"]) == {"cf_plugin_options", "cf_web_apps", "cf_recording_archived",
                                             "cf_after_purge"}
    assert rows["transcribe_sphinx"]["hooks"] == ["cf_transcribe"]
    assert rows["transcribe_whisper"]["hooks"] == ["cf_transcribe"] and rows["transcribe_whisper"]["status"] == "ok"
    assert rows["store_local"]["status"] == "ok" and "cf_media_stores" in rows["store_local"]["hooks"]
    assert not any(r["builtin"] for r in rows.values())
    all_rows = {r["name"] for r in json.loads(run_cf("plugins", "--all", "--json", check=True).stdout)}
    assert {"keyring", "access_policy", "retention_rules", "fis_rules"} <= all_rows


def test_cf_plugins_shows_broken_and_required_through_real_discovery(run_cf, site, deployment):
    env = {"PYTHONPATH": str(site)}
    rows = {r["name"]: r for r in json.loads(run_cf("plugins", "--json", env=env, check=True).stdout)}
    assert rows["broken"]["status"] == "failed" and rows["good"]["status"] == "ok"
    text = deployment.read_text().replace("required = []", 'required = ["broken"]')
    deployment.write_text(text)
    proc = run_cf("recordings", "list", env=env)
    assert proc.returncode != 0
    last = proc.stderr.splitlines()[-1]
    assert last.startswith("cf: error: required plugin 'broken'") and "boom at import" in last
    assert "Traceback" not in proc.stderr
