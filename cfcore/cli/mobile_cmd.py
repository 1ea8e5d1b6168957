"""``cf mobile ...``: mobile advisors (plugin mobile_ons): the carrier's call records, PIN hashes."""

from __future__ import annotations

from typing import Any

import click

from .output import emit


def register(cli: click.Group) -> None:
    @cli.group("mobile")
    def mobile() -> None:
        """Mobile advisors: carrier call records, dial-in PINs (see docs/mobile.md)."""

    @mobile.command("import-cdr")
    @click.argument("file", type=click.Path(dir_okay=False))
    @click.option("--min-seconds", type=float, default=10.0, show_default=True,
                  help="Shorter calls are not counted as advisory calls.")
    @click.option("--tolerance", type=float, default=120.0, show_default=True,
                  help="Seconds a recording's start may differ from the carrier's.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def import_cdr(state: Any, file: str, min_seconds: float, tolerance: float, as_json: bool) -> None:
        """Reconcile the carrier's call records (CSV) with the recordings; alert every unrecorded call."""
        from ..capture.cdr import import_cdr as run
        from .context import cli_context

        app = state.app
        ctx = cli_context(app, "cli.mobile.import-cdr")
        res = run(app, ctx, file, min_seconds=min_seconds, tolerance=tolerance)
        human = (f"{res['records']} call records, {res['advisory']} advisory calls of advisors' mobiles: "
                 f"{res['recorded']} recorded, {res['unrecorded']} NOT recorded (alerted), "
                 f"{res['already_alerted']} alerted before")
        if res["errors"]:
            human += "\n" + "\n".join(f"skipped {e}" for e in res["errors"][:50])
        emit(res, as_json, human)
        if res["errors"]:
            raise SystemExit(2)

    @mobile.command("hash-pin")
    def hash_pin_cmd() -> None:
        """Print the argon2id hash of a dial-in PIN (prompted, not echoed) for pin_hash in callfort.toml."""
        from argon2 import PasswordHasher

        pin = click.prompt("PIN (4-12 digits)", hide_input=True, confirmation_prompt=True)
        if not (pin.isdigit() and 4 <= len(pin) <= 12):
            raise click.UsageError("a PIN is 4 to 12 digits")
        click.echo(PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1).hash(pin))
