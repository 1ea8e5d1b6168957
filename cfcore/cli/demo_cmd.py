"""``cf demo``: see recordings arrive. A simulated Asterisk PBX with three advisors makes calls
through the pbx_asterisk plugin into a demo deployment (``./demo``, created with ``cf init`` when
missing). Finishes by itself in about fifteen seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .output import emit

if TYPE_CHECKING:
    from ..app import App


def register(cli: click.Group) -> None:
    @cli.command("demo")
    @click.option("--dir", "directory", default="demo", show_default=True, type=click.Path(file_okay=False),
                  help="Demo deployment directory (created with 'cf init' when missing).")
    @click.option("--pace", type=float, default=1.0, show_default=True, help="Scale the pauses between steps.")
    @click.option("--force", is_flag=True, help="Run against a --config deployment that cf demo did not create.")
    @click.option("--sites", type=click.IntRange(1, 26), default=None,
                  help="Instead: N sites record and hand over to one archive over SFTP (in --dir, default demo-sites).")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def demo(state: Any, directory: str, pace: float, force: bool, sites: int | None, as_json: bool) -> None:
        """Run a simulated Asterisk with advisors making calls; recordings arrive in the archive."""
        import asyncio

        if sites is not None:
            from ..sim.sites_demo import run_sites_demo

            root = Path("demo-sites" if directory == "demo" else directory)
            say_lines: list[str] = []

            def say_sites(text: str) -> None:
                say_lines.append(text)
                if not as_json:
                    click.echo(text)

            result = asyncio.run(run_sites_demo(root, sites, say_sites))
            if as_json:
                emit({**result, "log": say_lines}, True)
            return
        from ..app import App
        from ..errors import ConflictError
        from ..sim.demo import MARKER, MOBILE_SOURCE, PASSWORD_FILE, USERS, run_demo, seed_users

        if state.config_path:
            cfg = Path(state.config_path)
            root = cfg.parent
            if not (root / MARKER).exists() and not force:
                raise ConflictError(f"{cfg} is not a demo deployment: cf demo would add simulated calls and demo users",
                                    hint="run 'cf demo' without --config/CF_CONFIG to use ./demo, or pass --force")
        else:
            root = Path(directory)
            cfg = root / "callfort.toml"
            if cfg.exists() and not (root / MARKER).exists() and not force:
                raise ConflictError(f"{cfg} exists and is not a demo deployment",
                                    hint="choose another --dir, or pass --force")
            if not cfg.exists():
                ctx = click.get_current_context()
                init_cmd = cli.get_command(ctx, "init")
                assert init_cmd is not None
                ctx.invoke(init_cmd, directory=str(root), site="demo", as_json=False)
                with cfg.open("a") as f:  # the simulated dial-in reports the customer's opt-in
                    f.write(f"\n[capture.sources.{MOBILE_SOURCE}]\nconsent_witness = true\n")
                (root / MARKER).write_text("created by cf demo\n")
        app = App.open(cfg)
        lines: list[str] = []

        def say(text: str) -> None:
            lines.append(text)
            if not as_json:
                click.echo(text)

        try:
            password = seed_users(app, root)
            say(f"demo deployment {cfg.resolve()} / Demo-Installation")
            result = asyncio.run(run_demo(app, root, say, pace=pace))
            recs = _recordings(app, [leg["recording_id"] for leg in result["legs"] if leg["recording_id"]])
        finally:
            app.close()
        pw_path = (root / PASSWORD_FILE).resolve()
        if as_json:
            emit({"config": str(cfg.resolve()), "recordings": recs, "legs": result["legs"], "notes": result["notes"],
                  "users": [u[0] for u in USERS], "password_file": str(pw_path)}, True)
            return
        click.echo(f"\n{len(recs)} recordings archived / Aufnahmen archiviert:")
        for r in recs:
            segs = ", ".join(f"{s['mode']} {s['start']:.1f}-{s['end']:.1f}s" for s in r["segments"])
            click.echo(f"  {r['id']}  advisor {r['advisor_id']}  {r['direction']:<3} {r['duration']:5.1f}s  "
                       f"{'both sides' if r['two_sided'] else 'advisor only'}  [{segs}]")
        cf = _cf_command()
        click.echo("\nLook at them as the supervisor sam, check the audit trail as the DPO dirk (one password, "
                   "in the demo directory) / als Teamleitung sam ansehen, als DSB dirk den Audit-Trail prüfen:")
        click.echo(f"  export CF_CONFIG={cfg.resolve()} CF_PASSWORD=\"$(cat {pw_path})\"")
        click.echo(f"  CF_USER=sam {cf} recordings list\n  CF_USER=sam {cf} recordings show ID\n"
                   f"  CF_USER=sam {cf} calls list --all\n  CF_USER=dirk {cf} audit verify")
        click.echo("\nOr in the browser / oder im Browser (user anna or sam, the same password):")
        click.echo(f"  {cf} --config {cfg.resolve()} serve    # then open http://127.0.0.1:8750/")
        del password


def _cf_command() -> str:
    """``cf`` if it is on PATH, else the full path of the ``cf`` next to this Python (the venv's)."""
    import shutil
    import sys
    from pathlib import Path

    if shutil.which("cf"):
        return "cf"
    beside = Path(sys.executable).parent / "cf"
    return str(beside) if beside.exists() else f"{sys.executable} -m cfcore"


def _recordings(app: App, ids: list[str]) -> list[dict[str, Any]]:
    from ..archive import get_recording

    out = []
    with app.catalog.session() as s:
        for rid in ids:
            rec = get_recording(s, rid)
            out.append({"id": rec.id, "advisor_id": rec.advisor_id, "direction": rec.direction,
                        "duration": round(float(rec.duration), 2), "two_sided": bool(rec.two_sided),
                        "segments": [{"start": g.start, "end": g.end, "mode": g.mode} for g in rec.segments],
                        "consents": [{"by": c.by_user, "offset": round(c.offset, 2)} for c in rec.consents]})
    return out
