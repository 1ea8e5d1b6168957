"""Key rotation as a guarded, audited function (four-eyes ``keys.rotate``).

``rotate_keys`` is what ``cf keys rotate`` and the approved four-eyes request run: a new current
KEK, an audit entry ``keys.rotate``, and optionally the re-wrap of every data key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hookspecs.types import AccessTarget, RequestContext

from .keyring import rewrap_all

if TYPE_CHECKING:
    from ..app import App

KEYS_TARGET = AccessTarget(kind="keys")


def rotate_keys(app: App, ctx: RequestContext, *, rewrap: bool = False) -> dict[str, Any]:
    from ..access.guard import authorize

    authorize(app, ctx, "keys.rotate", KEYS_TARGET)
    old = app.keys.current_kek_id()
    new = app.keys.rotate()
    app.audit.record(ctx, "keys.rotate", "keys", new, "ok", {"previous": old, "current": new})
    result: dict[str, Any] = {"previous": old, "current": new}
    if rewrap:
        result["rewrap"] = rewrap_all(app, ctx)
    return result


def _exec_rotate(app: App, ctx: RequestContext, target_id: str, params: dict[str, Any]) -> dict[str, Any]:
    from ..access.approvals import param_flag

    return rotate_keys(app, ctx, rewrap=bool(param_flag(params, "rewrap", False)))


