"""``cf init DIR``: write a working default deployment (SQLite, local store, key ring)."""

from __future__ import annotations

from pathlib import Path

import click

from ..authority import system_context
from ..deployment import DEFAULT_CONFIG
from .output import emit


def register(cli: click.Group) -> None:
    @cli.command("init")
    @click.argument("directory", type=click.Path(file_okay=False))
    @click.option("--site", default="site-a", show_default=True, help="Name of this site.")
    @click.option("--json", "as_json", is_flag=True, help="Print {config, keys, next_steps} as JSON.")
    def init(directory: str, site: str, as_json: bool) -> None:
        """Write a working default deployment into DIRECTORY: a commented callfort.toml (SQLite
        catalog, local store), the key ring and the secret files in keys/ (mode 0600). Prints the
        next steps; the first is to back up keys/.

        \b
        Example:
          cf init /srv/callfort --site frankfurt
        """
        from ..app import App
        from ..clock import clock_from_plugins
        from ..config import load_config
        from ..errors import ConflictError
        from ..plugins import get_plugin_manager
        from ..secrets import create_secrets

        target = Path(directory)
        cfg_path = target / "callfort.toml"
        if cfg_path.exists():
            raise ConflictError(f"{cfg_path} exists already", hint="choose an empty directory")
        target.mkdir(parents=True, exist_ok=True)
        (target / "keys").mkdir(mode=0o700, exist_ok=True)
        (target / "media").mkdir(exist_ok=True)
        from ..config_schema import commented_sections

        written = ("deployment", "catalog", "keys", "archive", "plugins")
        cfg_path.write_text(DEFAULT_CONFIG.replace("{site}", site) + commented_sections(written), encoding="utf-8")
        # the only place secrets are created (existing files are never replaced)
        # (the real clock; only the test-only plugin can pin it)
        create_secrets(target / "keys", clock_from_plugins(get_plugin_manager(load_config(cfg_path))).now)
        app = App.open(cfg_path)
        try:
            app.keys.current_kek_id()
            app.stores  # noqa: B018 - validates the store section
            with app.catalog.session() as s:
                app.audit.append(s, system_context("cli.init"), "deployment.init", "deployment", site)
        finally:
            app.close()
        cfg, keys = cfg_path.resolve(), (target / "keys").resolve()
        steps = [
            f"back up {keys}/ now (and after every 'cf keys rotate'): without it no recording can be read again",
            f"export CF_CONFIG={cfg}",
            "cf users add admin --role administrator --bootstrap   (then a second person: cf users add dora "
            "--role dpo --bootstrap)",
            "cf doctor   (checks config, catalog, keys, stores, clock)",
            "cf serve    (API, capture, purge, FIS scan; see docs/operations.md for the service files)",
        ]
        emit({"config": str(cfg), "keys": str(keys), "next_steps": steps}, as_json,
             f"initialised {cfg}\nNext steps:\n" + "\n".join(f"  {i}. {s}" for i, s in enumerate(steps, 1)))
