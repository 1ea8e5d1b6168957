"""``cf serve``: the REST API (uvicorn) and the background jobs, in one process.

Listens on ``[server] host`` / ``port`` (default 127.0.0.1:8750). Put a TLS-terminating reverse
proxy in front for anything but loopback and list it in ``[server] trusted_proxies``, or let
uvicorn speak TLS itself, with client certificates required (``[server] tls_cert``, ``tls_key``,
``tls_client_ca``; ``cfcore.web.tls``). ``cf serve``
is a system path: it needs no login (it runs as the service account), and records its start in
the audit trail with the operating-system user, host and IP.
"""

from __future__ import annotations

import signal
from typing import Any

import click

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8750


def register(cli: click.Group) -> None:
    @cli.command("serve")
    @click.option("--host", default=None, help=f"Listen address (default [server] host or {DEFAULT_HOST}).")
    @click.option("--port", type=int, default=None, help=f"Port (default [server] port or {DEFAULT_PORT}).")
    @click.option("--no-jobs", is_flag=True, help="Serve the API only; run no background jobs.")
    @click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]),
                  default="info", show_default=True)
    @click.option("--log-format", type=click.Choice(["text", "json", "kv"]), default=None,
                  help="Log lines as text, JSON lines or key=value, each with a UTC timestamp "
                       "(default [server] log_format or text).")
    @click.pass_obj
    def serve(state: Any, host: str | None, port: int | None, no_jobs: bool, log_level: str,
              log_format: str | None) -> None:
        """Run the REST API and the background jobs (retention purge, FIS scan, capture, expiry).

        Also serves /health, /ready and /metrics (Prometheus) for load balancers and monitoring.

        \b
        Example:
          cf --config /srv/callfort/callfort.toml serve --log-format json
        """
        import logging

        import uvicorn

        from ..jobs import registered_jobs
        from ..logs import FORMATS, configure
        from ..web import create_app, redact_access_log
        from .context import system_cli_context

        app = state.app
        fmt = log_format or app.config.get("server.log_format", str, "text")
        if fmt not in FORMATS:
            from ..errors import ConfigError

            raise ConfigError(f"{app.config.path}: server.log_format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        configure(fmt, getattr(logging, log_level.upper()))
        host = host or app.config.get("server.host", str, DEFAULT_HOST)
        port = port if port is not None else app.config.get("server.port", int, DEFAULT_PORT)
        jobs = [] if no_jobs else sorted(registered_jobs(app))
        from ..leases import worker_id

        # the worker's lease identity: which of several workers on one catalog did what
        app.audit.record(system_cli_context("cli.serve"), "server.start", "server", f"{host}:{port}", "ok",
                         {"jobs": jobs, "worker": worker_id(app)})
        from ..web.tls import tls_options

        tls = tls_options(app)
        fa = create_app(app, run_jobs=not no_jobs)
        scheme = "https" if tls else "http"
        click.echo(f"CallFort API on {scheme}://{host}:{port}/api (OpenAPI: /api/openapi.json); "
                   f"jobs: {', '.join(jobs) or 'none'}", err=True)
        # proxy_headers off: the client IP of the audit trail comes from the connection, or from
        # X-Forwarded-For only behind [server] trusted_proxies (cfcore.web.deps).
        server = uvicorn.Server(uvicorn.Config(fa, host=host, port=port, log_level=log_level, proxy_headers=False,
                                               server_header=False, log_config=None, **tls))
        redact_access_log()  # after uvicorn configured its loggers: link tokens never reach the log
        # uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal: a stop
        # asked for is a normal end (exit 0), not an interruption.
        previous = signal.signal(signal.SIGTERM, _stopped)
        try:
            server.run()
        except (KeyboardInterrupt, _Stop):
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
        app.audit.record(system_cli_context("cli.serve"), "server.stop", "server", f"{host}:{port}", "ok")
        click.echo("CallFort API stopped", err=True)


class _Stop(Exception):
    pass


def _stopped(signum: int, frame: Any) -> None:
    raise _Stop
