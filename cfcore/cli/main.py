"""The ``cf`` entry point: one group, subcommands from ``*_cmd`` modules and from plugins."""

from __future__ import annotations

import gc
import importlib
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

import click

from .. import __version__
from ..errors import CallFortError
from .output import emit
from .started import seconds_since_start

if TYPE_CHECKING:
    pass

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
    """CallFort: compliant recording and archiving of advisory calls.

    \b
    Examples:
      cf init /srv/callfort && cd /srv/callfort && cf doctor
      cf --user sam recordings list --limit 10
      cf users add --help
    """
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
            _collect_again()
        return self._app


#: The core's command modules, each with ``register(cli)``. Listed, not discovered by file name:
#: a plugin adds commands through ``cf_cli_commands`` (a test checks that every ``*_cmd.py`` is here).
COMMAND_MODULES = (
    "approvals_cmd", "archive_cmd", "audit_cmd", "backup_cmd", "breach_cmd", "calls_cmd", "demo_cmd", "doctor_cmd",
    "dsar_cmd", "fis_cmd", "hold_cmd", "init_cmd", "keys_cmd", "mobile_cmd", "plugins_cmd", "retention_cmd",
    "serve_cmd", "store_cmd", "sync_cmd", "transcribe_cmd", "users_cmd",
)


#: The top-level commands each module registers: ``cf recordings list`` imports and registers
#: ``archive_cmd`` only, ``cf --help`` all of them (tests/test_cli_fast.py checks the names). A
#: module listed in ``COMMAND_MODULES`` but not here is registered at start-up.
LAZY_COMMANDS: dict[str, tuple[str, ...]] = {
    "approvals_cmd": ("approvals", "approve", "execute", "reject", "request", "requests"),
    "archive_cmd": ("archive", "export", "ingest", "recordings"),
    "audit_cmd": ("audit",),
    "backup_cmd": ("backup", "db", "restore"),
    "breach_cmd": ("breach",),
    "calls_cmd": ("calls", "capture"),
    "demo_cmd": ("demo",),
    "doctor_cmd": ("doctor",),
    "dsar_cmd": ("dsar", "dsar-export"),
    "fis_cmd": ("fis",),
    "hold_cmd": ("hold",),
    "init_cmd": ("init",),
    "keys_cmd": ("keys",),
    "mobile_cmd": ("mobile",),
    "plugins_cmd": ("plugins",),
    "retention_cmd": ("retention",),
    "serve_cmd": ("serve",),
    "store_cmd": ("store",),
    "sync_cmd": ("sync",),
    "transcribe_cmd": ("transcribe",),
    "users_cmd": ("users",),
}


class LazyCommands(MutableMapping[str, click.Command]):
    """The ``commands`` of the ``cf`` group: every name is known from the start, a command module is
    imported (and its ``register(cli)`` run) when one of its commands is looked up.

    Iterating gives the names without importing anything (click's list of close matches for a
    mistyped command); ``cf --help`` looks every command up and so imports every module. A command
    added before its module was loaded (a plugin's ``cf_cli_commands`` reusing a built-in name)
    stays, as it did when the built-ins were registered first."""

    def __init__(self, group: click.Group, modules: dict[str, tuple[str, ...]]) -> None:
        self._group = group
        self._loaded: dict[str, click.Command] = {}
        self._pending = {name: module for module, names in modules.items() for name in names}
        self._loading: list[str] = []  # modules being registered (one may look up another's group)

    def _load(self, module: str) -> None:
        self._loading.append(module)
        try:
            importlib.import_module(f"{__package__}.{module}").register(self._group)
        finally:
            self._loading.pop()
        for name, mod in list(self._pending.items()):
            if mod == module:
                del self._pending[name]
                cmd = self._loaded.get(name)
                if cmd is not None:
                    _add_examples_to(cmd, name)

    def __getitem__(self, name: str) -> click.Command:
        module = self._pending.get(name)
        if module is not None and module not in self._loading:
            self._load(module)
        return self._loaded[name]

    def __setitem__(self, name: str, cmd: click.Command) -> None:
        if self._loading and self._pending.get(name) != self._loading[-1] and name in self._loaded:
            return  # added by a plugin before this module was loaded: the plugin's stays
        self._loaded[name] = cmd
        if not self._loading:
            self._pending.pop(name, None)

    def __delitem__(self, name: str) -> None:
        if name in self._pending:
            del self._pending[name]
        else:
            del self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter([*self._loaded, *(n for n in self._pending if n not in self._loaded)])

    def __len__(self) -> int:
        return len(set(self._loaded) | set(self._pending))

    def __contains__(self, name: object) -> bool:
        return name in self._loaded or name in self._pending


def _register_builtin_commands() -> None:
    cli.commands = LazyCommands(cli, {m: LAZY_COMMANDS[m] for m in COMMAND_MODULES if m in LAZY_COMMANDS})
    for name in COMMAND_MODULES:
        if name not in LAZY_COMMANDS:
            before = set(cli.commands)
            importlib.import_module(f"{__package__}.{name}").register(cli)
            for added in set(cli.commands) - before:
                _add_examples_to(cli.commands[added], added)


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


#: One or two examples per command, added to its help as an "Examples:" block (``\b`` keeps the
#: lines). Keyed by the command's path; a command whose docstring has its own example keeps it.
#: tests/test_ops_help.py fails for any command (built-in or plugin) without an example.
EXAMPLES: dict[str, tuple[str, ...]] = {
    "approvals": ("cf approvals list --state requested",),
    "approvals approve": ("cf approve c3ab8ff13720e8ad9047dd39466b3c89  (the id from cf requests list)",),
    "approve": ("cf approve c3ab8ff13720e8ad9047dd39466b3c89  (the id from cf requests list)",),
    "approvals execute": ("cf execute c3ab8ff13720e8ad9047dd39466b3c89 --out call.wav",),
    "execute": ("cf execute c3ab8ff13720e8ad9047dd39466b3c89 --out call.wav",),
    "approvals list": ("cf approvals list --state requested --json",),
    "requests list": ("cf requests list --state approved",),
    "approvals reject": ("cf reject c3ab8ff13720e8ad9047dd39466b3c89 --note \"no case reference\"",),
    "reject": ("cf reject c3ab8ff13720e8ad9047dd39466b3c89 --note \"no case reference\"",),
    "approvals show": ("cf approvals show c3ab8ff13720e8ad9047dd39466b3c89",),
    "requests show": ("cf requests show c3ab8ff13720e8ad9047dd39466b3c89",),
    "requests": ("cf requests list", "cf requests show c3ab8ff13720e8ad9047dd39466b3c89"),
    "request": ("cf request recording.export 9f86d081884c7d659a2feaa0c55ad015 --reason \"complaint 2026-114\"",),
    "archive": ("cf archive sweep --older-than 86400",),
    "archive sweep": ("cf archive sweep", "cf archive sweep --json"),
    "audit": ("cf audit verify",),
    "audit checkpoint": ("cf audit checkpoint",),
    "audit list": ("cf audit list --action recording.play --limit 20", "cf audit list --user sam --json"),
    "audit verify": ("cf audit verify --progress",),
    "breach": ("cf breach open --alert 4be1c2d3e4f5", "cf breach list --status open"),
    "breach export": ("cf breach export 9e2d4c6b8a01 --lang de --out meldung.md",),
    "breach list": ("cf breach list --json",),
    "breach open": ("cf breach open --alert 4be1c2d3e4f5 --alert 7a0b1c2d3e4f",),
    "breach show": ("cf breach show 9e2d4c6b8a01",),
    "breach update": ("cf breach update 9e2d4c6b8a01 --nature \"laptop stolen\" --risk \"low: disk encrypted\"",),
    "calls": ("cf calls list",),
    "calls list": ("cf calls list --all --json",),
    "calls pause": ("cf calls pause 1733140012.42  (the call id from cf calls list)",),
    "calls record-both": ("cf calls record-both 1733140012.42",),
    "calls resume": ("cf calls resume 1733140012.42",),
    "capture": ("cf capture status",),
    "capture run": ("cf capture run", "cf capture run --for 60"),
    "capture status": ("cf capture status --json",),
    "demo": ("cf demo --dir demo",),
    "dsar": ("cf dsar --number +4930123456 --lang de --out auskunft.pdf",),
    "dsar-export": ("cf dsar-export --number +4930123456 --reason \"Art. 15 request 2026-07\"",),
    "export": ("cf export 9f86d081884c7d659a2feaa0c55ad015 --out call.wav --approval c3ab8ff13720e8ad9047dd39466b3c89",),
    "fis": ("cf fis scan", "cf fis alerts --undelivered"),
    "fis alerts": ("cf fis alerts --severity high --limit 20",),
    "fis deliver": ("cf fis deliver",),
    "fis rules": ("cf fis rules --json",),
    "fis scan": ("cf fis scan --quick",),
    "fis show": ("cf fis show 4be1c2d3e4f5",),
    "hold": ("cf hold set 9f86d081884c7d659a2feaa0c55ad015 --reason \"case 4711\"", "cf hold list"),
    "hold list": ("cf hold list --json",),
    "hold release": ("cf hold release 9f86d081884c7d659a2feaa0c55ad015 --reason \"case 4711 closed\"",),
    "hold set": ("cf hold set 9f86d081884c7d659a2feaa0c55ad015 --reason \"case 4711\"",),
    "ingest": ("cf ingest call.wav --agent A100 --customer-number +4930123456",),
    "keys": ("cf keys list",),
    "keys list": ("cf keys list --json",),
    "keys rewrap": ("cf keys rewrap",),
    "keys rotate": ("cf keys rotate --rewrap",),
    "mobile": ("cf mobile import-cdr carrier.csv",),
    "mobile hash-pin": ("cf mobile hash-pin",),
    "mobile import-cdr": ("cf mobile import-cdr carrier-2026-11.csv --min-seconds 5",),
    "plugins": ("cf plugins", "cf plugins --all --json"),
    "recordings": ("cf recordings list --limit 10",),
    "recordings list": ("cf recordings list --agent A100 --since 2026-11-01",),
    "recordings show": ("cf recordings show 9f86d081884c7d659a2feaa0c55ad015 --consent-proof",),
    "retention": ("cf retention show 9f86d081884c7d659a2feaa0c55ad015", "cf retention run --dry-run"),
    "retention erase": ("cf retention erase 9f86d081884c7d659a2feaa0c55ad015 --reason \"Art. 17 request 2026-09\"",),
    "retention extend": ("cf retention extend 9f86d081884c7d659a2feaa0c55ad015 --years 2 --reason \"authority request\"",),
    "retention run": ("cf retention run --dry-run", "cf retention run --progress"),
    "retention shorten": ("cf retention shorten 9f86d081884c7d659a2feaa0c55ad015 --years 5 --reason \"mandate ended\"",),
    "retention show": ("cf retention show 9f86d081884c7d659a2feaa0c55ad015",),
    "store": ("cf store check --quick",),
    "store check": ("cf store check", "cf store check --recording 9f86d081884c7d659a2feaa0c55ad015"),
    "store repair": ("cf store repair --recording 9f86d081884c7d659a2feaa0c55ad015",),
    "sync": ("cf sync --wait 30", "cf sync status"),
    "sync keys": ("cf sync keys --create",),
    "sync receive": ("cf sync receive --json",),
    "sync status": ("cf sync status --json",),
    "transcribe": ("cf transcribe run --limit 10",),
    "transcribe run": ("cf transcribe run --recording 9f86d081884c7d659a2feaa0c55ad015",),
    "users": ("cf users list", "cf users add sam --role advisor --advisor-id A100"),
    "users add": ("cf users add sam --role advisor --advisor-id A100",
                  "cf users add admin --role administrator --bootstrap"),
    "users disable": ("cf users disable sam",),
    "users enable": ("cf users enable sam",),
    "users list": ("cf users list --json",),
    "users password": ("cf users password", "printf '%s' \"$NEWPW\" | cf users password --password-stdin"),
    "users reset": ("cf users reset sam",),
    "users reset-password": ("cf users reset-password sam",),
    "users revoke": ("cf users revoke ID  (the id from cf users tokens)",),
    "users roles": ("cf users roles sam", "cf users roles sam --add supervisor --reason \"team lead from May\""),
    "users show": ("cf users show", "cf users show sam"),
    "users token": ("cf users token --name crm --days 30",),
    "users tokens": ("cf users tokens",),
    "users unlock": ("cf users unlock sam",),
    "db": ("cf db upgrade",),
}


def add_examples(group: click.Group, prefix: str = "") -> None:
    """Append each command's examples (from ``EXAMPLES``) to its help text, once."""
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is not None:
            _add_examples_to(cmd, f"{prefix}{name}")


def _add_examples_to(cmd: click.Command, path: str) -> None:
    lines = EXAMPLES.get(path)
    help_text = cmd.help or ""
    if lines and not re.search(r"^\s*Examples?:", help_text, re.M):
        cmd.help = help_text.rstrip() + "\n\n\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)
    if isinstance(cmd, click.Group):
        add_examples(cmd, f"{path} ")


_register_builtin_commands()  # lazily: the examples are added as each module is loaded

#: The plugin manager built before parsing (for plugin commands), reused by the command itself.
_PRELOADED: dict[str, Any] = {}


#: Seconds after which ``cf`` turns the cyclic garbage collector back on even if the command has
#: not opened its deployment yet (a long-running command of a plugin, ``cf demo``).
GC_PAUSE_SECONDS = 2.0


def _collect_again() -> None:
    """End the start-up pause of the garbage collector: what start-up built (modules, mapped
    classes, plugins) is frozen, so that later collections do not walk it again."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def main(argv: list[str] | None = None) -> None:
    # Start-up (imports, the catalog's mapped classes, plugins, login) allocates hundreds of
    # thousands of objects and no garbage worth collecting: the collector's full passes over the
    # growing heap cost a fifth of an everyday command's CPU. It is paused until the deployment is
    # open (``CliState.app``), for at most ``GC_PAUSE_SECONDS``, and in a forked child never.
    gc.disable()
    os.register_at_fork(after_in_child=_collect_again)
    timer = threading.Timer(GC_PAUSE_SECONDS, _collect_again)
    timer.daemon = True
    timer.start()
    try:
        args = list(sys.argv[1:] if argv is None else argv)
        _register_plugin_commands(args)
        cli.main(args=args, prog_name="cf")
    finally:
        timer.cancel()
        _collect_again()
