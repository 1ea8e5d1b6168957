"""docs/access.md shows the policy's tables exactly; docs/api.md lists every endpoint."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from cfcore.defaults.access_policy import APPROVERS, MATRIX, ROLE_ORDER

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _table_after(text: str, header_start: str) -> list[list[str]]:
    lines = text.splitlines()
    i = next(n for n, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[i + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip().strip("`") for c in line.strip().strip("|").split("|")])
    return rows


def test_matrix_in_docs_is_the_policy():
    text = (DOCS / "access.md").read_text()
    header = "| action | " + " | ".join(ROLE_ORDER) + " |"
    assert header in text
    rows = _table_after(text, header)
    documented = {r[0]: dict(zip(ROLE_ORDER, r[1:], strict=True)) for r in rows}
    assert documented == MATRIX


def test_approvers_in_docs_are_the_policy():
    rows = _table_after((DOCS / "access.md").read_text(), "| four-eyes action | approved by |")
    documented = {r[0]: frozenset(x.strip() for x in r[1].split(",")) for r in rows}
    assert documented == APPROVERS


ACCESS_ROUTES = [f"cfcore.web.routes_{m}" for m in ("auth", "users", "recordings", "approvals", "audit", "stream")]


def test_every_access_api_route_is_documented():
    text = (DOCS / "api.md").read_text()
    documented = {re.sub(r"\{[^}]+\}", "{}", p) for p in re.findall(r"(/api/[^`? ]*)", text)}
    siblings = set(re.findall(r", `(/[a-z]+)`", text))  # "`/api/users/{name}/disable`, `/enable`"
    paths = {route.path for mod in ACCESS_ROUTES for route in importlib.import_module(mod).router.routes}
    assert len(paths) >= 20
    for path in paths:
        short = re.sub(r"\{[^}]+\}", "{}", path)
        assert short in documented or any(short.endswith(s) for s in siblings), path
