"""``cf serve`` as a real process, and the background jobs it runs."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import timedelta

import httpx
import pytest
from access_helpers import NOW, PASSWORD, ApiServer, ctx_for, ingest, last_audit, make_user
from scaleout_helpers import stop_worker

from cfcore.access import approvals
from cfcore.errors import PluginError
from cfcore.jobs import Job, JobRunner, registered_jobs
from cfcore.web import create_app
from hookspecs import hookimpl
from hookspecs.types import BackgroundJob, WebApp


def wait_for(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"cf serve exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("cf serve did not come up")


def test_cf_serve_runs_the_api_and_the_expiry_job(deployment, make_app, free_port, tmp_path):
    deployment.write_text(deployment.read_text() + f"\n[server]\nhost = \"127.0.0.1\"\nport = {free_port}\n")
    app = make_app(deployment)
    make_user(app, "sam", ["supervisor"])
    make_user(app, "dora", ["dpo"])
    rec = ingest(app, tmp_path, "A2")
    aid = approvals.request(app, ctx_for(app, "sam"), "recording.play", rec, "coaching")
    later = (NOW + timedelta(hours=25)).isoformat()  # the server's clock: the request is overdue
    env = {**os.environ, "CF_CONFIG": str(deployment), "CF_NOW": later}
    for k in ("CF_USER", "CF_PASSWORD", "CF_TOKEN"):
        env.pop(k, None)
    proc = subprocess.Popen([sys.executable, "-m", "cfcore", "serve", "--log-level", "warning"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{free_port}"
    try:
        wait_for(f"{base}/api/openapi.json", proc)
        deadline = time.monotonic() + 60
        while approvals.get_request(app, ctx_for(app, "dora"), aid).state != "expired":
            assert time.monotonic() < deadline, "the approvals.expire job did not run"
            time.sleep(0.2)
        e = last_audit(app, action="approval.expire", target_id=aid)
        assert e.user == "system" and e.outcome == "expired"
        with httpx.Client(base_url=base, headers={"X-Client-Host": "ws-42"}, timeout=30) as c:
            token = c.post("/api/auth/login", json={"username": "dora", "password": PASSWORD}).json()["token"]
            me = c.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}).json()
        assert me["username"] == "dora" and me["host"] == "ws-42" and me["ip"] == "127.0.0.1"
        login = last_audit(app, action="auth.login", user="dora")
        assert (login.outcome, login.host, login.ip, login.function) == ("ok", "ws-42", "127.0.0.1", "api.auth.login")
        start = last_audit(app, action="server.start")
        assert start.user.startswith("system:") and start.target_id == f"127.0.0.1:{free_port}"
        assert "approvals.expire" in start.detail["jobs"]
    finally:
        stop_worker(proc)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""


def test_jobs_run_periodically_and_survive_failures(app):
    calls: list[str] = []

    def ticker(a):
        calls.append("tick")

    def broken(a):
        calls.append("broken")
        raise RuntimeError("boom")

    async def once(a):
        calls.append("once")

    jobs = {j.name: j for j in (Job(name="tick", interval_seconds=0.05, run=ticker),
                                Job(name="broken", interval_seconds=0.05, run=broken),
                                Job(name="once", interval_seconds=0, run=once))}

    async def main():
        runner = JobRunner(app, jobs)
        await runner.start()
        for _ in range(200):
            if calls.count("tick") >= 3 and calls.count("broken") >= 3:
                break
            await asyncio.sleep(0.02)
        await runner.stop()
        return runner

    runner = asyncio.run(main())
    assert calls.count("once") == 1 and calls.count("tick") >= 3 and calls.count("broken") >= 3
    assert runner.status["broken"].failures >= 3 and "boom" in runner.status["broken"].last_error
    assert runner.status["tick"].failures == 0 and runner.status["tick"].runs >= 3


class SeenJobPlugin:
    """A plugin's background job, registered through cf_background_jobs."""

    def __init__(self) -> None:
        self.seen: list[object] = []

    @hookimpl
    def cf_background_jobs(self):
        return [BackgroundJob(name="test.seen", interval_seconds=0.05, run=self.seen.append)]


def test_create_app_runs_registered_jobs_with_the_server(app):
    plugin = SeenJobPlugin()
    app.pm.register(plugin, "seen-job")
    assert {"approvals.expire", "retention.purge", "fis.scan", "capture", "test.seen"} <= set(registered_jobs(app))
    server = ApiServer(app)
    server.server.config.app = create_app(app, run_jobs=True)
    server.start()
    try:
        deadline = time.monotonic() + 20
        while not plugin.seen:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert plugin.seen[0] is app
    finally:
        server.stop()


def test_two_jobs_under_one_name_are_an_error(app):
    app.pm.register(SeenJobPlugin(), "seen-a")
    app.pm.register(SeenJobPlugin(), "seen-b")
    with pytest.raises(PluginError, match="two plugins register 'test.seen' for cf_background_jobs"):
        registered_jobs(app)


class CrmPlugin:
    """A plugin that mounts its own ASGI app (like the CRM SOAP endpoint) through cf_web_apps."""

    @hookimpl
    def cf_web_apps(self, ctx):
        async def asgi(scope, receive, send):
            assert scope["type"] == "http"
            body = f"crm {scope['path']} {ctx.name}".encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        return [WebApp(path="/crm", app=asgi, name="crm")]


def test_cf_web_apps_are_mounted(app):
    app.pm.register(CrmPlugin(), "crm_test")
    try:
        server = ApiServer(app).start()
        try:
            r = httpx.get(f"{server.base}/crm/soap", timeout=30)
            assert r.status_code == 200 and r.text == "crm /crm/soap crm_test"  # its own context; Starlette keeps the full path
            assert httpx.get(f"{server.base}/api/openapi.json", timeout=30).status_code == 200
        finally:
            server.stop()
    finally:
        app.pm.unregister("crm_test")
