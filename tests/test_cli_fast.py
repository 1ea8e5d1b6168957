"""A fast ``cf`` (issue 14 item 6): an everyday command imports what it uses and nothing else.

No timing here (that is ``bench/bench_cli.py``): these tests pin the structure that keeps the
commands fast, so that a heavy import slipping back into every command fails a test. Each runs a
real ``cf`` command in a fresh interpreter on the test deployment and looks at ``sys.modules``."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

import click
import pytest
from access_helpers import ingest, login_env, make_user

from cfcore.cli.main import COMMAND_MODULES, LAZY_COMMANDS, LazyCommands
from cfcore.testing import TEST_ONLY_MARK

#: Libraries that only some commands need: never imported by a listing command. The ingest path
#: (numpy, soundfile) and the web stack must stay out of them too.
HEAVY = ("asyncssh", "httpx", "smtplib", "alembic", "numpy", "soundfile", "jinja2", "starlette", "uvicorn",
         "boto3", "botocore", "reportlab", "cfcore.web", "cfcore.ingest", "cf_mobile_ons.flow")

PROBE = """
import json, sys
from cfcore.cli.main import main
try:
    main(sys.argv[2:])
except SystemExit as exc:
    code = exc.code
else:
    code = 0
with open(sys.argv[1], "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


def test_lazy_commands_name_what_each_module_registers():
    assert sorted(LAZY_COMMANDS) == sorted(COMMAND_MODULES)
    for module, names in LAZY_COMMANDS.items():
        group = click.Group("cf")
        importlib.import_module(f"cfcore.cli.{module}").register(group)
        assert tuple(sorted(group.commands)) == tuple(sorted(names)), module


def test_lazy_commands_load_a_module_on_lookup_and_keep_a_plugin_command():
    group = click.Group("cf")
    group.commands = LazyCommands(group, {"hold_cmd": ("hold",), "audit_cmd": ("audit",)})
    assert sorted(group.commands) == ["audit", "hold"] and "hold" in group.commands

    @group.command("audit")  # a plugin's command of a built-in name, added before the module loads
    def plugin_audit() -> None:
        """A plugin's audit."""

    assert group.commands["audit"] is plugin_audit
    hold = group.commands["hold"]
    assert isinstance(hold, click.Group) and "list" in hold.commands
    assert "Examples:" in (hold.help or "")
    assert dict(group.commands) == {"audit": plugin_audit, "hold": hold}


def _probe(tmp_path, deployment, env, *args):
    out = tmp_path / "probe.json"
    proc = subprocess.run([sys.executable, "-c", PROBE, str(out), *args], capture_output=True, text=True,
                          env={**env, "CF_CONFIG": str(deployment)}, timeout=120)
    assert out.exists(), proc.stderr
    result = json.loads(out.read_text())
    assert result["code"] == 0, proc.stderr
    return set(result["modules"]), proc


@pytest.mark.parametrize("args", [("recordings", "list"), ("recordings", "show", "{rec}"),
                                  ("audit", "list", "--limit", "5"), ("approvals", "list"), ("users", "show"),
                                  ("calls", "list")])
def test_an_everyday_command_imports_only_its_own_area(app, deployment, frozen_clock, tmp_path, args):
    make_user(app, "dora", ["dpo"])
    if "{rec}" in args:
        rec = ingest(app, tmp_path, "A100")
        args = tuple(a.replace("{rec}", rec) for a in args)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CF_")}
    modules, proc = _probe(tmp_path, deployment, {**env, **login_env("dora"), "CF_NOW": frozen_clock.now().isoformat()},
                           *args)
    assert [m for m in HEAVY if m in modules] == []
    other = {f"cfcore.cli.{m}" for m in COMMAND_MODULES} - {f"cfcore.cli.{m}" for m, names in LAZY_COMMANDS.items()
                                                           if args[0] in names}
    assert sorted(modules & other) == []
    assert "cfcore.db.models_sync" not in modules and "cfcore.db.models_fis" not in modules
    # the plugins are all loaded (their hooks take part in every decision), the test kit's warning too
    assert {"cf_sync_ssh", "cf_notify_webhook", "cf_notify_smtp", "cf_mobile_ons", "cf_testkit"} <= modules
    assert TEST_ONLY_MARK in proc.stderr


def test_help_imports_no_database_layer(deployment, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CF_")}
    modules, proc = _probe(tmp_path, deployment, env, "--help")
    assert "recordings" in proc.stdout and "Examples:" in proc.stdout
    assert [m for m in (*HEAVY, "sqlalchemy", "cfcore.app") if m in modules] == []
