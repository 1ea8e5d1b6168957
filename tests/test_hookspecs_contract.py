"""The contract: import purity, every hook documented and tested, markers, value types."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import attrs
import pytest

import hookspecs
from hookspecs import types as t

ROOT = Path(__file__).resolve().parent.parent


def all_hook_names() -> list[str]:
    names = []
    for modname in hookspecs.SPEC_MODULES:
        mod = importlib.import_module(modname)
        names += [n for n, f in vars(mod).items() if n.startswith("cf_") and callable(f)]
    return sorted(names)


def test_hookspecs_imports_nothing_from_cfcore():
    for path in (ROOT / "hookspecs").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] == "cfcore" for a in node.names), path
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module.split(".")[0] != "cfcore", path


def test_plugins_import_no_cfcore_at_run_time():
    for path in (ROOT / "plugins").glob("*/cf_*/**/*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(m.split(".")[0] == "cfcore" for m in mods), f"{path} imports cfcore"


@pytest.mark.parametrize("hook", all_hook_names())
def test_every_hook_is_documented(hook):
    docs = (ROOT / "docs" / "plugins.md").read_text()
    assert f"`{hook}" in docs, f"{hook} is not documented in docs/plugins.md"


@pytest.mark.parametrize("hook", all_hook_names())
def test_every_hook_has_a_test(hook):
    this = Path(__file__).name
    found = [p for p in (ROOT / "tests").rglob("*.py") if p.name != this and hook in p.read_text()]
    assert found, f"no test mentions {hook}"


@pytest.mark.parametrize("hook", all_hook_names())
def test_every_hook_spec_is_typed_and_described(hook):
    mod = next(importlib.import_module(m) for m in hookspecs.SPEC_MODULES
               if hasattr(importlib.import_module(m), hook))
    fn = getattr(mod, hook)
    doc = inspect.getdoc(fn) or ""
    assert "Added in" in doc and "eturn" in doc or "ignored" in doc, hook
    assert "return" in fn.__annotations__, hook


def test_only_the_impl_marker_is_public():
    assert hasattr(hookspecs, "hookimpl") and not hasattr(hookspecs, "hookspec")
    assert re.fullmatch(r"\d+\.\d+", hookspecs.HOOKSPEC_VERSION)


def test_value_types_are_frozen_and_validated():
    from datetime import datetime

    for name in hookspecs.__all__:
        obj = getattr(hookspecs, name)
        if attrs.has(obj):
            assert obj.__setattr__ is not object.__setattr__, f"{name} is not frozen"
    with pytest.raises(ValueError, match="timezone-aware"):
        t.CallEvent(kind=t.CallEventKind.STARTED, call_id="c", source="s", at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="before it starts"):
        t.ModeSegment(start=5, end=1, mode=t.RecordingMode.BOTH)
    with pytest.raises(ValueError, match="not an IP address"):
        t.RequestContext(actor=t.Actor(user_id="u", username="u"), host="pc", ip="nope", function="f")
