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


def documented_signatures() -> dict[str, tuple[str, ...]]:
    """``hook -> argument names`` from the first column of the hook table in docs/plugins.md."""
    docs = (ROOT / "docs" / "plugins.md").read_text()
    table = docs.split("## Hook reference", 1)[1].split("\n## ", 1)[0]
    found = {}
    for m in re.finditer(r"^\| `(cf_\w+)\(([^)]*)\)` \|", table, re.M):
        found[m.group(1)] = tuple(a.strip() for a in m.group(2).split(",") if a.strip())
    return found


def spec_argnames(hook: str) -> tuple[str, ...]:
    from pluggy import PluginManager

    pm = PluginManager(hookspecs.PROJECT_NAME)
    for modname in hookspecs.SPEC_MODULES:
        pm.add_hookspecs(importlib.import_module(modname))
    return tuple(getattr(pm.hook, hook).spec.argnames)


@pytest.mark.parametrize("hook", all_hook_names())
def test_every_hook_is_documented_with_the_spec_signature(hook):
    documented = documented_signatures()
    assert hook in documented, f"{hook} is not in the hook table of docs/plugins.md"
    assert documented[hook] == spec_argnames(hook), (
        f"docs/plugins.md documents {hook}({', '.join(documented[hook])}), the spec takes "
        f"({', '.join(spec_argnames(hook))})")


def test_the_docs_table_names_no_hook_that_does_not_exist():
    assert sorted(documented_signatures()) == all_hook_names()


def test_the_signature_check_would_catch_a_drift(monkeypatch):
    assert spec_argnames("cf_access_decision") == ("actor", "action", "target", "context")
    assert documented_signatures()["cf_transcribe"] == ("audio", "language", "settings")
    assert documented_signatures()["cf_media_stores"] == ()


def test_provisional_parts_are_marked_in_their_specs_and_docs():
    docs = (ROOT / "docs" / "plugins.md").read_text()
    for name in hookspecs.PROVISIONAL:
        assert f"`{name}`" in docs.split("**Provisional**", 1)[1].split("\n\n", 1)[0], name
        if name.startswith("cf_"):
            mod = next(importlib.import_module(m) for m in hookspecs.SPEC_MODULES
                       if hasattr(importlib.import_module(m), name))
            assert "Provisional" in (inspect.getdoc(getattr(mod, name)) or ""), name


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
    # (a precedence bug made this pass for any docstring that said "ignored")
    assert "Added in" in doc and ("eturn" in doc or "ignored" in doc), hook
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
