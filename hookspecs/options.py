"""Typed options for a plugin's config section, and ``Secret``.

A plugin declares what its section may hold as a frozen attrs class and names it in its
registration (``StoreType(..., options=LocalOptions)``). The core builds the object from the
section with ``parse_options`` before it calls ``create(options, ctx)``: a misspelled key, a value
of the wrong type or a missing required value stops start-up with one line that names the key, and
no plugin re-implements getters::

    @attrs.frozen(kw_only=True)
    class AcmeOptions:
        host: str
        port: int = 5038
        secret: Secret | None = None
        advisors: Mapping[str, str] = attrs.field(factory=dict)

    parse_options(AcmeOptions, {"host": "pbx1", "port": "x"}, where="plugins.pbx_acme")
    # OptionsError: plugins.pbx_acme.port must be int, got str

Added in 1.1.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, TypeVar

import attrs

T = TypeVar("T")


class Secret(str):
    """A secret from the config (``{ env = "NAME" }`` or ``{ file = "path" }``), already resolved.

    It is a ``str``, so a plugin uses it as one; its ``repr`` is masked, so that it never reaches a
    log by accident. Added in 1.1 (before: ``cfcore.config.Secret``).
    """

    def __repr__(self) -> str:
        return "Secret('***')"


class OptionsError(ValueError):
    """A config section does not fit the plugin's options class. The message names the key."""


def _check(value: Any, kind: Any, where: str) -> Any:
    if kind is Any:
        return value
    origin = typing.get_origin(kind)
    if origin in (typing.Union, UnionType):
        args = typing.get_args(kind)
        if value is None and NoneType in args:
            return None
        errors = []
        for arg in args:
            if arg is NoneType:
                continue
            try:
                return _check(value, arg, where)
            except OptionsError as exc:
                errors.append(str(exc))
        raise OptionsError(errors[0] if len(errors) == 1 else f"{where} has the wrong type ({type(value).__name__})")
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise OptionsError(f"{where} must be a list, got {type(value).__name__}")
        (item,) = typing.get_args(kind)[:1] or (Any,)
        items = [_check(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping, typing.Mapping) or kind in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise OptionsError(f"{where} must be a table, got {type(value).__name__}")
        args = typing.get_args(kind)
        vkind = args[1] if len(args) == 2 else Any
        return {str(k): _check(v, vkind, f"{where}.{k}") for k, v in value.items()}
    if isinstance(kind, type) and attrs.has(kind):  # a sub-table with its own options class
        if not isinstance(value, Mapping):
            raise OptionsError(f"{where} must be a table, got {type(value).__name__}")
        return parse_options(kind, value, where=where)
    if kind is Secret:
        if not isinstance(value, Secret):
            raise OptionsError(f'{where} is a secret: write it as {{ env = "NAME" }} or {{ file = "path" }}')
        return value
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise OptionsError(f"{where} must be float, got {type(value).__name__}")
    if kind is int or kind is bool:
        if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
            return value
        raise OptionsError(f"{where} must be {kind.__name__}, got {type(value).__name__}")
    if kind is Path:
        if isinstance(value, str | Path):
            return Path(value)
        raise OptionsError(f"{where} must be a path, got {type(value).__name__}")
    if kind is str:
        if isinstance(value, str):
            return value
        raise OptionsError(f"{where} must be str, got {type(value).__name__}")
    if isinstance(kind, type) and not isinstance(value, kind):
        raise OptionsError(f"{where} must be {kind.__name__}, got {type(value).__name__}")
    return value


def parse_options(cls: type[T], section: Mapping[str, Any], *, where: str) -> T:
    """Build ``cls`` (a frozen attrs class) from a config ``section``.

    Unknown keys are refused with "choose one of: …", values are checked against the annotations
    (``int`` is accepted for ``float``; ``str`` for ``Path``; ``Secret`` must come from
    ``{ env = … }`` / ``{ file = … }``; a field typed with another attrs class is a sub-table built
    the same way, also inside ``Mapping[str, Sub]``, added in 1.2), required fields must be present.
    The class's own validators run as usual. ``where`` is the section's dotted name for messages (``stores.archive``).
    Added in 1.1.
    """
    if not attrs.has(cls):
        raise TypeError(f"{cls!r} is not an attrs class")
    fields = {f.name: f for f in attrs.fields(cls)}  # type: ignore[misc]
    unknown = sorted(set(section) - set(fields))
    if unknown:
        choices = ", ".join(sorted(fields)) or "(this plugin takes no options)"
        raise OptionsError(f"{where}.{unknown[0]} is not an option (choose one of: {choices})")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in section:
            if field.default is attrs.NOTHING:
                raise OptionsError(f"{where}.{name} is required")
            continue
        values[name] = _check(section[name], hints.get(name, Any), f"{where}.{name}")
    try:
        return cls(**values)  # type: ignore[return-value]
    except (TypeError, ValueError) as exc:
        if isinstance(exc, OptionsError):
            raise
        raise OptionsError(f"{where}: {exc}") from None
