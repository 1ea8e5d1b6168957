"""``cf init DIR``: write a working default deployment (SQLite, local store, key ring)."""

from __future__ import annotations

from pathlib import Path

import click

from ..deployment import DEFAULT_CONFIG
from .main import emit


def register(cli: click.Group) -> None:
    @cli.command("init")
    @click.argument("directory", type=click.Path(file_okay=False))
    @click.option("--site", default="site-a", show_default=True, help="Name of this site.")
    @click.option("--json", "as_json", is_flag=True)
    def init(directory: str, site: str, as_json: bool) -> None:
        """Write a working default deployment into DIRECTORY."""
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
        cfg_path.write_text(DEFAULT_CONFIG.replace("{site}", site), encoding="utf-8")
        # the only place secrets are created (existing files are never replaced)
        # (the real clock; only the test-only plugin can pin it)
        create_secrets(target / "keys", clock_from_plugins(get_plugin_manager(load_config(cfg_path))).now)
        app = App.open(cfg_path)
        try:
            app.keys.current_kek_id()
            app.stores  # noqa: B018 - validates the store section
            with app.catalog.session() as s:
                app.audit.append(s, None, "deployment.init", "deployment", site)
        finally:
            app.close()
        emit({"config": str(cfg_path.resolve())}, as_json, f"initialised {cfg_path.resolve()}")
