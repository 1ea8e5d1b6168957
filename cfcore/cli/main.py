"""The ``cf`` entry point: one group, subcommands from ``*_cmd`` modules and from plugins."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any

import click

from .. import __version__
from ..errors import CallFortError
from .output import emit
from .started import seconds_since_start

__all__ = ["COMMAND_MODULES", "CliState", "cli", "emit", "main", "seconds_since_start"]



class CfGroup(click.Group):
    """Prints CallFort errors as one line on stderr and exits non-zero, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CallFortError as exc:
            click.echo(f"cf: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("cf: interrupted", err=True)
            ctx.exit(130)


@click.group(cls=CfGroup)
@click.option("--config", "config_path", envvar="CF_CONFIG", type=click.Path(dir_okay=False),
              help="Deployment config (default: ./callfort.toml, or $CF_CONFIG).")
@click.option("--user", "user", envvar="CF_USER",
              help="Log in as USER (or $CF_USER); the password comes from $CF_PASSWORD or a prompt.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(__version__, prog_name="cf")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, user: str | None, verbose: int) -> None:
    """CallFort: compliant recording and archiving of advisory calls."""
    # force: the plugin commands were registered (with a WARNING set-up) before -v was parsed
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)],
                        format="cf: %(levelname)s: %(message)s" if not verbose
                        else "%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    ctx.obj = CliState(config_path, user)
    ctx.call_on_close(ctx.obj.close)


class CliState:
    """Opens the deployment lazily, once per command, and closes it when the command ends."""

    def __init__(self, config_path: str | None, user: str | None = None) -> None:
        self.config_path = config_path
        self.user = user
        self._app: Any = None

    def close(self) -> None:
        if self._app is not None:
            app, self._app = self._app, None
            app.close()

    @property
    def app(self) -> Any:
        if self._app is None:
            from ..app import App
            from ..config import load_config

            config = load_config(self.config_path)
            pm = _PRELOADED.get(str(config.path))
            self._app = App(config, pm=pm)
        return self._app


#: The core's command modules, each with ``register(cli)``. Listed, not discovered by file name:
#: a plugin adds commands through ``cf_cli_commands`` (a test checks that every ``*_cmd.py`` is here).
COMMAND_MODULES = (
    "approvals_cmd", "archive_cmd", "audit_cmd", "backup_cmd", "breach_cmd", "calls_cmd", "demo_cmd", "doctor_cmd",
    "dsar_cmd", "fis_cmd", "hold_cmd", "init_cmd", "keys_cmd", "mobile_cmd", "plugins_cmd", "retention_cmd",
    "serve_cmd", "store_cmd", "sync_cmd", "transcribe_cmd", "users_cmd",
)


def _register_builtin_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}").register(cli)


def _register_plugin_commands(argv: list[str]) -> None:
    """Plugins add commands through ``cf_cli_commands``; that needs the config before parsing."""
    path = os.environ.get("CF_CONFIG")
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            path = argv[i + 1]
        elif arg.startswith("--config="):
            path = arg.split("=", 1)[1]
    if not path and os.path.exists("callfort.toml"):
        path = "callfort.toml"
    if not path or not os.path.exists(path):
        return
    from ..config import load_config
    from ..plugins import get_plugin_manager

    logging.basicConfig(level=logging.WARNING, format="cf: %(levelname)s: %(message)s")
    try:
        config = load_config(path)
        pm = get_plugin_manager(config)
        _PRELOADED[str(config.path)] = pm
        pm.add_cli_commands(cli)
    except CallFortError:
        return  # the command itself reports the config problem when it opens the deployment


_register_builtin_commands()

#: The plugin manager built before parsing (for plugin commands), reused by the command itself.
_PRELOADED: dict[str, Any] = {}


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    _register_plugin_commands(args)
    cli.main(args=args, prog_name="cf")
