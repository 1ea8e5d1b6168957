"""The example third-party plugin (examples/pbx_example), installed with pip like a vendor's
distribution: it captures a call, raises in one hook without stopping the others, and cannot get
customer audio from before the consent into the archive."""

from __future__ import annotations

import asyncio
import importlib.metadata as md
import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from access_helpers import ctx_for, make_user

from cfcore.archive import read_channel
from cfcore.capture import controller
from cfcore.capture.runner import CaptureRunner
from cfcore.config import load_config
from cfcore.db.models import Recording
from cfcore.plugins import get_plugin_manager
from cfcore.testing import entry_points_named
from hookspecs import hookimpl

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "pbx_example"


@pytest.fixture(scope="module")
def example_site(tmp_path_factory) -> Path:
    """``pip install`` of the example distribution into a directory of its own (not the test venv,
    so that it leaks into no other test)."""
    site = tmp_path_factory.mktemp("example-site")
    src = tmp_path_factory.mktemp("example-src") / "pbx_example"  # setuptools builds in the source tree
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(site), str(src)], check=True, capture_output=True, text=True, timeout=300)
    return site


class CrmListener:
    def __init__(self) -> None:
        self.archived: list[str] = []

    @hookimpl
    def cf_recording_archived(self, recording):
        self.archived.append(recording.id)


def wait_until(predicate, timeout=30.0):
    async def waiter():
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            assert loop.time() < deadline, "timed out"
            await asyncio.sleep(0.05)
    return waiter()


@pytest.mark.parametrize("hostile", [False, True], ids=["honest", "claims-both-from-start"])
def test_example_plugin_captures_isolates_and_cannot_bypass_consent(example_site, deployment, make_app,
                                                                    frozen_clock, monkeypatch, hostile):
    monkeypatch.syspath_prepend(str(example_site))
    eps = [ep for d in md.distributions(path=[str(example_site)]) for ep in d.entry_points if ep.group == "cfcore"]
    assert [ep.name for ep in eps] == ["example_pbx"]
    with deployment.open("a") as f:
        f.write(f'\n[plugins.example_pbx]\nadvisor = "A100"\nclaim_both_from_start = {str(hostile).lower()}\n')
    crm = CrmListener()
    pm = get_plugin_manager(load_config(deployment), entry_points=entry_points_named(("store_local",)) + eps,
                            extra=[("crm-listener", crm)])
    status = pm.status("example_pbx")
    assert status.status == "ok" and status.distribution == "callfort-example-pbx"
    assert status.hooks == ("cf_capture_sources", "cf_recording_archived")
    app = make_app(deployment, pm=pm)
    make_user(app, "anna", ["advisor"], advisor_id="A100")
    anna = ctx_for(app, "anna", function="call.record_both")

    async def run():
        runner = CaptureRunner(app, poll_interval=0.05)
        task = asyncio.create_task(runner.run())
        source = runner.sources["example-pbx"]
        await wait_until(lambda: source.started_at is not None and _live(app, source.call_id))
        frozen_clock.advance(2)  # two seconds of advisor-only talk, then "record both sides"
        req = await asyncio.to_thread(controller.trigger, app, anna, source.call_id, "record_both", "web", 20)
        await wait_until(lambda: source.archived)
        await runner.stop()
        await asyncio.wait_for(task, 30)
        return req, source

    req, source = asyncio.run(run())
    assert req.status == "applied" and source.both_at == 2.0
    (rec_id,) = source.archived
    with app.catalog.session() as s:
        rec = s.get(Recording, rec_id)
        assert rec.advisor_id == "A100" and rec.two_sided and rec.source == "example-pbx"
        assert [(seg.mode, seg.start, seg.end) for seg in rec.segments] == [("advisor_only", 0, 2), ("both", 2, 4)]
        assert [(c.by_user, c.method) for c in rec.consents] == [("anna", "web")]
    advisor = struct.unpack("<32000h", read_channel(app, rec_id, "advisor"))
    customer = struct.unpack("<32000h", read_channel(app, rec_id, "customer"))
    assert set(advisor) == {1000}
    assert set(customer[:16000]) == {0}, "customer audio before consent must never reach the archive"
    assert set(customer[16000:]) == {2000}
    refused = list(app.audit.entries(action="recording.consent_refused"))
    if hostile:
        assert len(refused) == 1 and refused[0].target_id == rec_id and refused[0].detail["stretches"] == [[0, 2]]
        assert refused[0].detail["source"] == "example-pbx"
    else:
        assert refused == []
    # the example's cf_recording_archived raised; the CRM listener was still called, the failure audited
    assert crm.archived == [rec_id]
    failed = [(e.target_id, e.detail["hook"]) for e in app.audit.entries(action="plugin.hook_failed")]
    assert failed == [("example_pbx", "cf_recording_archived")]
    assert not list(Path(app.data_dir, "plugins", "example_pbx").glob("*.wav")), "PBX files removed after archive"


def _live(app, call_id):
    from cfcore.db.models_capture import LiveCall

    with app.catalog.session() as s:
        row = s.get(LiveCall, call_id)
        return row is not None and row.state == "recording"


def test_cf_plugins_lists_the_installed_example(example_site, run_cf):
    out = run_cf("plugins", "--json", env={"PYTHONPATH": str(example_site)}, check=True)
    row = {r["name"]: r for r in json.loads(out.stdout)}["example_pbx"]
    assert row["status"] == "ok" and row["distribution"] == "callfort-example-pbx" and row["version"] == "0.1.0"


def test_an_unknown_option_of_the_example_is_refused_with_the_key(example_site, deployment, make_app, monkeypatch):
    from cfcore.capture.runner import discover_sources
    from cfcore.errors import ConfigError

    monkeypatch.syspath_prepend(str(example_site))
    eps = [ep for d in md.distributions(path=[str(example_site)]) for ep in d.entry_points if ep.group == "cfcore"]
    with deployment.open("a") as f:
        f.write('\n[plugins.example_pbx]\nadvisor = "A100"\ncall_secnds = 3\n')
    pm = get_plugin_manager(load_config(deployment), entry_points=entry_points_named(("store_local",)) + eps)
    app = make_app(deployment, pm=pm)
    with pytest.raises(ConfigError, match=r"plugins\.example_pbx\.call_secnds is not an option \(choose one of: "
                                          r"advisor, call_seconds, claim_both_from_start, customer_number\)"):
        discover_sources(app)
