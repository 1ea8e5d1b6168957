"""Every route the API publishes refuses a caller who is not logged in, or whose token is forged,
and never answers with a server error — taken from the OpenAPI document, so a route added later
is covered without touching this test."""

from __future__ import annotations

import re

import httpx
import pytest
from access_helpers import world_for

#: Routes that authenticate otherwise: the login itself, and streaming (a signed link is the credential).
# Open by design: log-in, and completing a password reset (the user has no login then; both
# halves of the reset code and the log-in throttle protect it). Streaming links carry their token.
# Load balancers and monitoring: /health, /ready and /metrics carry no personal data (ops
# test_ops_metrics checks that) and are outside /api, for the proxy to keep internal.
OPEN = {("POST", "/api/auth/login"), ("POST", "/api/auth/reset"), ("GET", "/api/stream/{rec_id}"),
        ("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics")}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with world_for(tmp_path_factory.mktemp("everyroute")) as w:
        yield w


def routes(world) -> list[tuple[str, str]]:
    with httpx.Client(base_url=world.server.base, timeout=30) as c:
        spec = c.get("/api/openapi.json").json()
    return sorted((m.upper(), p) for p, ops in spec["paths"].items() for m in ops
                  if m in ("get", "post", "put", "patch", "delete"))


def test_openapi_lists_the_routes_of_every_area(world):
    paths = {p for _, p in routes(world)}
    for prefix in ("/api/recordings", "/api/approvals", "/api/audit", "/api/users", "/api/retention",
                   "/api/dsar", "/api/fis", "/api/breach", "/api/calls", "/api/stream"):
        assert any(p.startswith(prefix) for p in paths), prefix


def test_every_route_needs_a_login(world):
    checked = 0
    with httpx.Client(base_url=world.server.base, timeout=30) as c:
        for method, template in routes(world):
            if (method, template) in OPEN:
                continue
            path = re.sub(r"\{rec_id\}|\{recording_id\}", world.rec_own, template)
            path = re.sub(r"\{[a-z_]+\}", "0" * 32, path)
            body = {} if method in ("POST", "PUT", "PATCH") else None
            anonymous = c.request(method, path, json=body)
            assert anonymous.status_code == 401, (method, template, anonymous.status_code, anonymous.text)
            assert "error" in anonymous.json()
            forged = c.request(method, path, json=body, headers={"Authorization": "Bearer cfs_forged-token"})
            assert forged.status_code == 401, (method, template, forged.status_code, forged.text)
            checked += 1
    assert checked >= 30
