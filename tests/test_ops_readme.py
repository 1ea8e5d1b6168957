"""The README's "after the demo" commands work verbatim, and so does the demo's closing hint;
``scripts/setup`` installs packages only when something changed; LICENSE matches pyproject."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _after_demo_block() -> str:
    readme = (ROOT / "README.md").read_text()
    tail = readme.split("After `scripts/demo`", 1)[1]
    return re.search(r"```sh\n(.*?)```", tail, re.S).group(1)  # type: ignore[union-attr]


def test_the_readme_after_demo_commands_and_the_demo_hint_work(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("CF_CONFIG", "CF_USER", "CF_PASSWORD", "CF_TOKEN")}
    env["PATH"] = "/usr/bin:/bin"  # cf is not on PATH, as after scripts/demo
    run = subprocess.run([sys.executable, "-m", "cfcore", "demo", "--pace", "0.5"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)  # the README's .venv/bin/cf
    block = _after_demo_block()
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "intact" in proc.stdout.lower() or "ok" in proc.stdout.lower(), proc.stdout
    # the demo's closing hint: the lines after "Look at them", run as printed
    hint = run.stdout.split("Look at them", 1)[1].split("\n\n", 1)[0].splitlines()[1:]  # up to the browser hint
    commands = [line.strip() for line in hint if line.strip() and "recordings show ID" not in line]
    assert any("audit verify" in c for c in commands) and all(not c.startswith("cf ") for c in commands)
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(commands)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr


def _fake_repo(tmp_path: Path) -> tuple[Path, Path]:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    (repo / "scripts" / "setup").write_text((ROOT / "scripts" / "setup").read_text())
    (repo / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    (repo / "requirements-test.txt").write_text("pytest\n")
    (repo / "testkit").mkdir()
    (repo / "testkit" / "pyproject.toml").write_text((ROOT / "testkit" / "pyproject.toml").read_text())
    for d in sorted((ROOT / "plugins").iterdir()):
        if (d / "pyproject.toml").exists():
            (repo / "plugins" / d.name).mkdir(parents=True)
            (repo / "plugins" / d.name / "pyproject.toml").write_text((d / "pyproject.toml").read_text())
    log = tmp_path / "pip.log"
    # a python that records what it is asked to do (a venv exists already)
    fake = repo / ".venv" / "bin" / "python"
    fake.parent.mkdir(parents=True)
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\n")
    fake.chmod(0o755)
    return repo, log


def test_scripts_setup_installs_only_when_something_changed(tmp_path):
    repo, log = _fake_repo(tmp_path)
    env = {**os.environ, "PYTHON": sys.executable}

    def setup(**extra: str) -> list[str]:
        log.write_text("") if log.exists() else None
        subprocess.run(["bash", str(repo / "scripts" / "setup")], env={**env, **extra}, check=True, timeout=60)
        return [line for line in log.read_text().splitlines() if "pip install" in line] if log.exists() else []

    first = setup()
    assert any("-e .[postgres]" in line for line in first)
    assert setup() == []  # a second run installs nothing
    assert any("requirements-test.txt" in line for line in setup(WITH_TESTS="1"))  # tests asked for: install
    assert setup(WITH_TESTS="1") == []
    assert setup() != []  # back to a production set: the test-only plugin is removed again
    assert setup() == []
    (repo / "plugins" / "store_local" / "pyproject.toml").write_text(
        (repo / "plugins" / "store_local" / "pyproject.toml").read_text() + "\n# changed\n")
    assert setup(WITH_TESTS="1") != []  # a changed distribution: install again


def test_license_is_the_apache_2_text_pyproject_names():
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_bytes()
    # the text published at https://www.apache.org/licenses/LICENSE-2.0.txt
    assert hashlib.md5(text).hexdigest() == "3b83ef96387f14655fc854ddc3c6bd57"  # noqa: S324 - identifies a file
    assert b"END OF TERMS AND CONDITIONS" in text
