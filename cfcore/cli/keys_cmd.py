"""``cf keys rotate|rewrap|list``: key-encryption keys of the envelope encryption."""

from __future__ import annotations

from typing import Any

import click

from .output import emit


def register(cli: click.Group) -> None:
    @cli.group("keys")
    def keys() -> None:
        """Rotate key-encryption keys and re-wrap data keys."""

    @keys.command("rotate")
    @click.option("--rewrap", is_flag=True, help="Re-wrap every data key under the new key right away.")
    @click.option("--approval", default=None, help="Four-eyes approval id (keys.rotate needs one).")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def rotate(state: Any, rewrap: bool, approval: str | None, as_json: bool) -> None:
        """Create a new current key-encryption key (old ones stay for unwrapping). Four-eyes."""
        import attrs

        from ..crypto.rotation import rotate_keys
        from .context import cli_context

        app = state.app
        ctx = cli_context(app, "cli.keys.rotate")
        if approval:
            ctx = attrs.evolve(ctx, approval_id=approval)
        data = rotate_keys(app, ctx, rewrap=rewrap)
        emit(data, as_json, f"new key-encryption key {data['current']} (was {data['previous']})"
             + (f"; re-wrapped {data['rewrap']['rewrapped']} data keys" if rewrap else ""))

    @keys.command("rewrap")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def rewrap(state: Any, as_json: bool) -> None:
        """Re-wrap every data key under the current key-encryption key (media is not touched).

        Maintenance (``store.repair``): it changes no one's access, only which KEK wraps the keys."""
        from hookspecs.types import AccessTarget

        from ..access.guard import authorize
        from ..crypto.keyring import rewrap_all
        from .context import cli_context

        app = state.app
        ctx = cli_context(app, "cli.keys.rewrap")
        authorize(app, ctx, "store.repair", AccessTarget(kind="keys"))
        result = rewrap_all(app, ctx)
        emit(result, as_json, f"re-wrapped {result['rewrapped']} data keys under {result['current']}")

    @keys.command("list")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def list_(state: Any, as_json: bool) -> None:
        """Key ids and how many data keys each wraps (no key material is shown)."""
        from sqlalchemy import func, select

        from hookspecs.types import AccessTarget

        from ..access.guard import authorize
        from ..db.models import DataKey
        from .context import cli_context

        app = state.app
        ctx = cli_context(app, "cli.keys.list")
        authorize(app, ctx, "store.repair", AccessTarget(kind="keys"), audit_allowed=True)
        current = app.keys.current_kek_id()
        with app.catalog.session() as s:
            counts = dict(s.execute(select(DataKey.kek_id, func.count()).where(DataKey.wrapped.is_not(None))
                                    .group_by(DataKey.kek_id)).all())
        ids = getattr(app.keys, "key_ids", lambda: [current])()
        data = [{"id": k, "current": k == current, "data_keys": counts.get(k, 0)} for k in ids]
        emit(data, as_json, "\n".join(f"{d['id']}{' (current)' if d['current'] else ''}: {d['data_keys']} data keys"
                                      for d in data))
