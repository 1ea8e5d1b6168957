"""The PBX adapter example in docs/plugins.md runs as written, through the core's capture runner."""

from __future__ import annotations

import asyncio
import re
import struct
import sys
import types
from pathlib import Path

from access_helpers import ctx_for, make_user

from cfcore.archive import read_channel
from cfcore.capture import controller
from cfcore.capture.runner import CaptureRunner
from cfcore.config import load_config
from cfcore.db.models import Recording
from cfcore.plugins import get_plugin_manager
from cfcore.testing import entry_points_named

DOCS = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"


def example_module() -> types.ModuleType:
    text = DOCS.read_text()
    section = text.split("## Writing a PBX adapter", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    mod = types.ModuleType("cf_pbx_minimal")
    exec(compile(code, str(DOCS), "exec"), mod.__dict__)
    sys.modules.pop("cf_pbx_minimal", None)
    return mod


def test_minimal_pbx_adapter_from_the_docs_archives_its_call(deployment, make_app, frozen_clock):
    plugin = example_module()
    with deployment.open("a") as f:
        f.write('\n[plugins.pbx_minimal]\nadvisor = "A100"\n')
    pm = get_plugin_manager(load_config(deployment), entry_points=entry_points_named(("store_local",)),
                            extra=[("pbx_minimal", plugin)])
    assert pm.status("pbx_minimal").hooks == ("cf_capture_sources",)
    app = make_app(deployment, pm=pm)
    make_user(app, "anna", ["advisor"], advisor_id="A100")
    anna = ctx_for(app, "anna", function="call.record_both")

    async def run() -> list[str]:
        runner = CaptureRunner(app, poll_interval=0.05)
        task = asyncio.create_task(runner.run())
        await runner.started.wait()
        source = runner.sources["minimal"]
        for _ in range(400):
            if _answered(app):
                break
            await asyncio.sleep(0.05)
        frozen_clock.advance(2)  # two seconds of advisor-only talk, then "record both sides"
        await asyncio.to_thread(controller.trigger, app, anna, "call-1", "record_both", "web", 20)
        for _ in range(400):
            if source.archived:
                break
            await asyncio.sleep(0.05)
        status = runner.status()
        await runner.stop()
        await asyncio.wait_for(task, 30)
        assert status == [{"name": "minimal", "can_mute": False, "handed_over": 1, "connected": True, "active_legs": 0}]
        return source.archived

    (rec_id,) = asyncio.run(run())
    with app.catalog.session() as s:
        rec = s.get(Recording, rec_id)
        assert rec.advisor_id == "A100" and rec.two_sided
        assert [(seg.mode, seg.start, seg.end) for seg in rec.segments] == [("advisor_only", 0, 2), ("both", 2, 4)]
    advisor = struct.unpack("<32000h", read_channel(app, rec_id, "advisor"))
    customer = struct.unpack("<32000h", read_channel(app, rec_id, "customer"))
    assert set(advisor) == {1000}
    assert set(customer[:16000]) == {0}, "customer audio before consent must never be stored"
    assert set(customer[16000:]) == {2000}
    assert not list(Path(app.data_dir, "plugins", "pbx_minimal").glob("*.wav")), "PBX files removed after archive"


def _answered(app) -> bool:
    from cfcore.db.models_capture import LiveCall

    with app.catalog.session() as s:
        row = s.get(LiveCall, "call-1")
        return row is not None and row.state == "recording"
