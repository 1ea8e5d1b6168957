"""Rooms a newcomer can find: no two core modules import each other, not even lazily inside a
function (the small circles of issue 12: access/approvals ↔ access/guard, fis/alerts ↔ fis/deliver,
dsar ↔ dsar/export, cli/main ↔ *_cmd); the CLI's and the API's areas are listed, not discovered."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CFCORE = ROOT / "cfcore"


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every cfcore module ``path`` imports at run time, at module level or inside functions."""
    mod = module_name(path)
    package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    # names imported for annotations only (``if TYPE_CHECKING:``) are no import at run time
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and getattr(block.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(block)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("cfcore")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("cfcore"):
                continue
            found.add(target)
            for alias in node.names:  # "from . import export" names a module
                if (CFCORE.parent / (target.replace(".", "/") + f"/{alias.name}.py")).exists():
                    found.add(f"{target}.{alias.name}")
    found.discard(mod)
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in CFCORE.rglob("*.py") if "migrations" not in p.parts}


def test_no_two_core_modules_import_each_other():
    g = graph()
    pairs = sorted({tuple(sorted((a, b))) for a, deps in g.items() for b in deps if a in g.get(b, set())})
    assert pairs == [], "modules that import each other: " + ", ".join(" <-> ".join(p) for p in pairs)


def test_the_circles_named_in_issue_12_are_gone():
    g = graph()
    assert "cfcore.access.guard" not in g["cfcore.access.approvals"]
    assert "cfcore.fis.alerts" not in g["cfcore.fis.deliver"]
    assert "cfcore.dsar.export" not in g["cfcore.dsar"] and "cfcore.dsar" not in g["cfcore.dsar.export"]
    for name, deps in g.items():
        if name.startswith("cfcore.cli.") and name.endswith("_cmd"):
            assert "cfcore.cli.main" not in deps, name


def test_every_command_and_route_module_is_listed():
    from cfcore.cli.main import COMMAND_MODULES
    from cfcore.web import ROUTE_MODULES

    assert sorted(COMMAND_MODULES) == sorted(p.stem for p in (CFCORE / "cli").glob("*_cmd.py"))
    assert sorted(ROUTE_MODULES) == sorted(p.stem for p in (CFCORE / "web").glob("routes_*.py"))
