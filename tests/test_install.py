"""``pip install callfort`` gives a working deployment: the store that ``cf init`` names comes with
it. Built as wheels from this tree and installed into a fresh virtual environment, offline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = ("callfort", "cfcore", "hookspecs", "cf_", "__editable__", "_callfort", "distutils-precedence")


def pip(*args: str, python: str = sys.executable) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", "--python", python, *args, "--no-index",
                           "--disable-pip-version-check"], check=True, capture_output=True, text=True, timeout=600)


def copy_tree(src: Path, dst: Path, *names: str) -> Path:
    dst.mkdir(parents=True)
    for name in names:
        s = src / name
        if s.is_dir():
            shutil.copytree(s, dst / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
        else:
            shutil.copy2(s, dst / name)
    return dst


@pytest.mark.slow
def test_pip_install_of_the_core_gives_a_working_cf_init(tmp_path):
    wheels = tmp_path / "wheels"
    core = copy_tree(ROOT, tmp_path / "src" / "callfort", "pyproject.toml", "cfcore", "hookspecs")
    store = copy_tree(ROOT / "plugins" / "store_local", tmp_path / "src" / "store_local", "pyproject.toml",
                      "cf_store_local")
    for src in (core, store):
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                        "-q", "-w", str(wheels), str(src)], check=True, capture_output=True, text=True, timeout=600)
    assert sorted(p.name.split("-")[0] for p in wheels.glob("*.whl")) == ["callfort", "callfort_store_local"]

    # A fresh environment. The third-party dependencies (SQLAlchemy, FastAPI, …) come from this
    # test environment through a .pth file, without anything of CallFort's own, so that pip must
    # resolve callfort-store-local from the wheels by itself.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    deps = tmp_path / "deps"
    deps.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.lower().startswith(OURS) and entry.suffix != ".pth":
            (deps / entry.name).symlink_to(entry)
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "test-deps.pth").write_text(str(deps) + "\n")
    pip("install", "--find-links", str(wheels), "callfort", python=python)
    installed = pip("list", "--format=json", python=python).stdout
    names = {d["name"] for d in json.loads(installed)}
    assert {"callfort", "callfort-store-local"} <= names

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CF_", "PYTHON"))}
    cf = str(venv / "bin" / "cf")
    deploy = tmp_path / "deploy"
    init = subprocess.run([cf, "init", str(deploy)], capture_output=True, text=True, env=env, timeout=120,
                          cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    rows = json.loads(subprocess.run([cf, "--config", str(deploy / "callfort.toml"), "plugins", "--json"],
                                     check=True, capture_output=True, text=True, env=env, timeout=120,
                                     cwd=tmp_path).stdout)
    assert {r["name"]: (r["status"], r["distribution"]) for r in rows} == {
        "store_local": ("ok", "callfort-store-local")}
    where = subprocess.run([python, "-c", "import cfcore, cf_store_local; print(cfcore.__file__, cf_store_local.__file__)"],
                           check=True, capture_output=True, text=True, env=env, cwd=tmp_path).stdout
    assert str(ROOT) not in where and str(venv) in where  # the installed copies, not this tree
