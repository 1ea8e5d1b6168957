"""``cf calls ...`` (the advisor's recording controls) and ``cf capture ...`` (the capture runner).

``cf calls record-both CALL_ID`` works across processes: it writes a request to the catalog, the
running capture runner (``cf capture run`` or ``cf serve``) asks the PBX, and this command waits
for the outcome.
"""

from __future__ import annotations

import contextlib
import signal
from typing import Any

import click

from .output import emit


def _call_line(c: dict[str, Any]) -> str:
    rec = f"  rec {c['recording_id']}" if c.get("recording_id") else ""
    return (f"{c['call_id']:<34} {c['started_at'][:19]}  advisor {c['advisor_id']:<8} {c['direction']:<3} "
            f"{c['state']:<9} {c['mode']:<12} {c['customer'] or '-'}{rec}")


def _control(state: Any, call_id: str, action: str, timeout: float, as_json: bool) -> None:
    from datetime import timedelta

    from ..capture import controller
    from .context import cli_context
    from .started import seconds_since_start

    app = state.app
    ctx = cli_context(app, f"cli.calls.{action.replace('_', '-')}")
    # The advisor acted when the command started, not when (after start-up and login) the
    # request row is written.
    acted_at = app.clock.now() - timedelta(seconds=seconds_since_start())
    req = controller.trigger(app, ctx, call_id, action, method="cli", timeout=timeout, acted_at=acted_at)
    texts = {
        "record_both": ("recording both sides of call {id} (consent recorded)",
                        "beide Seiten von Gespräch {id} werden aufgezeichnet (Einwilligung vermerkt)"),
        "pause": ("recording of call {id} paused", "Aufzeichnung von Gespräch {id} pausiert"),
        "resume": ("recording of call {id} resumed ({mode})", "Aufzeichnung von Gespräch {id} fortgesetzt ({mode})"),
    }
    en, de = texts[action]
    emit(req.as_dict(), as_json, f"{en} / {de}".format(id=call_id, mode=req.mode or "-"))


def register(cli: click.Group) -> None:
    @cli.group("calls")
    def calls() -> None:
        """Calls in progress and the advisor's recording controls."""

    @calls.command("list")
    @click.option("--all", "show_all", is_flag=True, help="Include ended and archived calls.")
    @click.option("--limit", type=int, default=200, show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def list_(state: Any, show_all: bool, limit: int, as_json: bool) -> None:
        """List calls (advisors see their own only)."""
        from ..capture import controller
        from .context import cli_context

        app = state.app
        ctx = cli_context(app, "cli.calls.list")
        rows = [c.as_dict() for c in controller.list_calls(app, ctx, active_only=not show_all, limit=limit)]
        emit(rows, as_json, "\n".join(_call_line(c) for c in rows) or "no calls in progress / keine laufenden Gespräche")

    @calls.command("record-both")
    @click.argument("call_id")
    @click.option("--timeout", type=float, default=15.0, show_default=True, help="Seconds to wait for the PBX.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def record_both(state: Any, call_id: str, timeout: float, as_json: bool) -> None:
        """Record the customer's side too, after informing the customer (your own calls only)."""
        _control(state, call_id, "record_both", timeout, as_json)

    @calls.command("pause")
    @click.argument("call_id")
    @click.option("--timeout", type=float, default=15.0, show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def pause(state: Any, call_id: str, timeout: float, as_json: bool) -> None:
        """Pause recording (e.g. while card data is spoken)."""
        _control(state, call_id, "pause", timeout, as_json)

    @calls.command("resume")
    @click.argument("call_id")
    @click.option("--timeout", type=float, default=15.0, show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def resume(state: Any, call_id: str, timeout: float, as_json: bool) -> None:
        """Resume recording in the mode before the pause."""
        _control(state, call_id, "resume", timeout, as_json)

    @cli.group("capture")
    def capture() -> None:
        """Run the capture sources (PBX adapters)."""

    @capture.command("run")
    @click.option("--for", "seconds", type=float, default=None, help="Stop after this many seconds.")
    @click.pass_obj
    def run(state: Any, seconds: float | None) -> None:
        """Run the configured capture sources until interrupted (SIGINT/SIGTERM)."""
        import asyncio

        from ..capture.runner import CaptureRunner
        from .context import system_cli_context

        app = state.app
        runner = CaptureRunner(app)
        if not runner.sources:
            from ..errors import ConfigError

            raise ConfigError("no capture source is configured",
                              hint="configure e.g. [plugins.pbx_asterisk] (see docs/asterisk.md)")
        app.audit.record(system_cli_context("cli.capture.run"), "capture.start", "capture", runner.id,
                         "ok", {"sources": sorted(runner.sources)})
        click.echo(f"capture runner {runner.id}: sources {', '.join(sorted(runner.sources))} (Ctrl-C stops)")

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError):
                    loop.add_signal_handler(sig, lambda: asyncio.ensure_future(runner.stop()))
            if seconds is not None:
                loop.call_later(seconds, lambda: asyncio.ensure_future(runner.stop()))
            await runner.run()

        loop_name = app.config.get("capture.event_loop", str, "asyncio")
        if loop_name == "uvloop":
            try:
                import uvloop
            except ImportError:
                from ..errors import ConfigError

                raise ConfigError("capture.event_loop = \"uvloop\" but uvloop is not installed",
                                  hint="pip install uvloop (it comes with callfort-pbx-siprec)") from None
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
                r.run(main())
        elif loop_name == "asyncio":
            asyncio.run(main())
        else:
            from ..errors import ConfigError

            raise ConfigError(f"capture.event_loop {loop_name!r} is unknown", hint="choose asyncio or uvloop")
        click.echo("capture runner stopped")

    @capture.command("status")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def status(state: Any, as_json: bool) -> None:
        """Running capture runners and their sources (connected, last error)."""
        from ..capture import controller

        rows = controller.runners(state.app)
        lines = []
        for r in rows:
            lines.append(f"runner {r['id']} on {r['host']} (pid {r['pid']}), heartbeat {r['heartbeat_at'][:19]}")
            for s in r["sources"]:
                conn = "connected" if s.get("connected") else "NOT connected"
                err = f" - {s['last_error']}" if s.get("last_error") else ""
                lines.append(f"  {s['name']}: {conn}, {s.get('active_legs', 0)} active legs{err}")
        emit(rows, as_json, "\n".join(lines) or "no capture runner is running (start 'cf capture run' or 'cf serve')")
