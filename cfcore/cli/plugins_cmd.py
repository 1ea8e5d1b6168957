"""``cf plugins``: what is loaded, from which distribution, at which version, and its status."""

from __future__ import annotations

import click

from .output import emit


def register(cli: click.Group) -> None:
    @cli.command("plugins")
    @click.option("--all", "show_all", is_flag=True, help="Include the in-tree default plugins.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def plugins(state, show_all: bool, as_json: bool) -> None:  # type: ignore[no-untyped-def]
        """List plugins with their hooks and status."""
        from ..config import load_config
        from ..plugins import get_plugin_manager

        try:
            config = load_config(state.config_path)
        except Exception:
            if state.config_path:
                raise
            config = None
        mgr = get_plugin_manager(config)
        rows = [s for s in mgr.statuses if show_all or not s.builtin]
        lines = []
        for s in rows:
            hooks = ", ".join(f"{h} (provisional)" if h in s.provisional else h for h in s.hooks) or "-"
            extra = f" ({s.error})" if s.error else ""
            lines.append(f"{s.name:<16} {s.distribution:<22} {s.version:<10} {s.status:<13} {hooks}{extra}")
        warning = mgr.test_only_warning()
        if warning:
            lines.append(f"WARNING: {warning}")
        emit([s.as_dict() | {"test_only": s.name in mgr.test_only_plugins()} for s in rows], as_json,
             "\n".join(lines) or "no plugins installed")
