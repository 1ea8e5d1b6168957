"""``cf doctor``: one line per check of the deployment, non-zero exit when one fails."""

from __future__ import annotations

from typing import Any

import click

from .output import emit


def register(cli: click.Group) -> None:
    @cli.command("doctor", short_help="Check config, catalog, keys, stores, PBX sources, clock, anchors.")
    @click.option("--json", "as_json", is_flag=True, help="Print the checks as a JSON list of {name, ok, detail}.")
    @click.pass_obj
    def doctor(state: Any, as_json: bool) -> None:
        """Check that this deployment can do its job: the config loads, the catalog answers and is
        at the newest migration, every key file exists with mode 0600, each media store takes an
        object and returns it, each PBX source is connected to a running capture runner, each
        [plugins.<name>] and [notify.<name>] section matches the options its plugin declares, the clock
        is sane and the audit trail's newest anchor is current.

        One line per check; exit status 1 when any check fails. Needs no login and changes
        nothing (no migration, no audit entry).

        \b
        Example:
          cf --config /srv/callfort/callfort.toml doctor
        """
        from ..doctor import run_checks

        checks = run_checks(state.config_path)
        emit([c.as_dict() for c in checks], as_json, "\n".join(c.line() for c in checks))
        if not all(c.ok for c in checks):
            raise SystemExit(1)
