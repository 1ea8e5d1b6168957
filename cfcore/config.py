"""The deployment config: one TOML file, per-plugin sections, secrets from env or files.

A secret is written as ``{ env = "NAME" }`` or ``{ file = "path" }`` wherever a string is expected.
It is resolved when its value is read (``section()[key]``, ``get()``), not when the file is
loaded: a command resolves only the secrets of what it starts (an advisor's ``cf calls
record-both`` needs no AMI secret; the capture runner reads it when the Asterisk plugin starts).
A secret is never written back or logged. Errors name the file and the key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs

from hookspecs.options import Secret

from .errors import ConfigError

__all__ = ["CONFIG_NAME", "Config", "Secret", "load_config", "validate"]

T = TypeVar("T")

CONFIG_NAME = "callfort.toml"

#: Top-level sections the core knows; anything else is a plugin's or an error.
KNOWN_SECTIONS = frozenset(
    {
        "deployment", "catalog", "keys", "archive", "stores", "plugins", "access", "retention",
        "fis", "notify", "server", "capture", "sync", "crm", "dsar", "audit", "webui", "transcription",
    }
)


@attrs.frozen
class SecretRef:
    """A secret not read yet: ``{ env = NAME }`` or ``{ file = path }`` at ``where``."""

    env: str | None
    file: Path | None
    where: str
    config_path: Path

    def resolve(self) -> Secret:
        if self.env is not None:
            if self.env not in os.environ:
                raise ConfigError(f"{self.config_path}: {self.where}: environment variable {self.env} is not set")
            return Secret(os.environ[self.env])
        assert self.file is not None
        try:
            return Secret(self.file.read_text().strip())
        except OSError as exc:
            raise ConfigError(f"{self.config_path}: {self.where}: cannot read secret file {self.file}: "
                              f"{exc.strerror}") from None


def _resolved(value: Any) -> Any:
    if isinstance(value, SecretRef):
        return value.resolve()
    if isinstance(value, dict):
        return Section(value)
    if isinstance(value, list):
        return [_resolved(v) for v in value]
    return value


class Section(Mapping[str, Any]):
    """A config table whose secrets are read when a value is looked up."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return _resolved(self._data[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:  # never a secret (unread ones show as references)
        return f"Section({sorted(self._data)!r})"


@attrs.frozen
class Config:
    path: Path
    data: Mapping[str, Any]

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def section(self, dotted: str) -> Mapping[str, Any]:
        node: Any = self.data
        for part in dotted.split("."):
            node = node.get(part, {}) if isinstance(node, Mapping) else {}
        if not isinstance(node, Mapping):
            raise ConfigError(f"{self.path}: [{dotted}] must be a table")
        return Section(node)

    def get(self, dotted: str, kind: type[T], default: T | None = None) -> T:
        parent, _, key = dotted.rpartition(".")
        node = self.section(parent) if parent else self.data
        if key not in node:
            if default is None:
                raise ConfigError(f"{self.path}: {dotted} is required")
            return default
        value = node[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(
                f"{self.path}: {dotted} must be {kind.__name__}, got {type(value).__name__}"
            )
        return value

    def resolve_path(self, value: str | Path) -> Path:
        p = Path(value)
        return p if p.is_absolute() else (self.base_dir / p)

    @property
    def data_dir(self) -> Path:
        return self.resolve_path(self.get("deployment.data_dir", str, "."))

    @property
    def site(self) -> str:
        return self.get("deployment.site", str, "site-a")


def _resolve_secrets(node: Any, where: str, path: Path) -> Any:
    """Replace every ``{ env = ... }`` / ``{ file = ... }`` by a ``SecretRef`` (read on use)."""
    if isinstance(node, dict):
        if set(node) in ({"env"}, {"file"}):
            value = node.get("env", node.get("file"))
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{path}: {where}: a secret's env / file must be a non-empty string")
            if "env" in node:
                return SecretRef(env=value, file=None, where=where, config_path=path)
            file = Path(value)
            return SecretRef(env=None, file=file if file.is_absolute() else path.parent / file, where=where,
                             config_path=path)
        return {k: _resolve_secrets(v, f"{where}.{k}" if where else k, path) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_secrets(v, f"{where}[{i}]", path) for i, v in enumerate(node)]
    return node


#: No CallFort setting nests deeper; a deeper file is refused before anything walks it.
MAX_DEPTH = 16


def _depth(value: Any) -> int:
    """Nesting depth of tables and arrays, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load ``path``, else ``$CF_CONFIG``, else ``./callfort.toml``; validate the core sections."""
    chosen = Path(path or os.environ.get("CF_CONFIG") or CONFIG_NAME)
    if not chosen.is_file():
        raise ConfigError(
            f"no config file at {chosen}", hint="run 'cf init DIR' or pass --config / set CF_CONFIG"
        )
    try:
        raw = tomllib.loads(chosen.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{chosen}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{chosen}: not UTF-8 text") from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise ConfigError(f"{chosen}: nested more than {MAX_DEPTH} levels deep") from None
    if _depth(raw) > MAX_DEPTH:
        raise ConfigError(f"{chosen}: nested more than {MAX_DEPTH} levels deep")
    cfg = Config(path=chosen.resolve(), data=_resolve_secrets(raw, "", chosen.resolve()))
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    from .capture.witness import source_policies
    from .config_schema import closest

    unknown = sorted(set(cfg.data) - KNOWN_SECTIONS)
    if unknown:
        near = closest(unknown[0], KNOWN_SECTIONS)
        raise ConfigError(
            f"{cfg.path}: unknown section [{unknown[0]}]" + (f" (did you mean [{near}]?)" if near else ""),
            hint="choose one of: " + ", ".join(sorted(KNOWN_SECTIONS)),
        )
    _check_keys(cfg)
    _check_clear_secrets(cfg, cfg.data, "")
    source_policies(cfg)  # [capture.sources.<name>]
    cfg.get("deployment.site", str, "site-a")
    role = cfg.get("deployment.role", str, "standalone")
    if role not in ("standalone", "site", "archive"):  # see cfcore.sync.settings
        raise ConfigError(f"{cfg.path}: deployment.role '{role}' is unknown",
                          hint="choose one of: standalone, site, archive")
    for key in ("disabled", "required"):
        names = cfg.section("plugins").get(key, [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"{cfg.path}: plugins.{key} must be a list of plugin names")
    stores = cfg.section("stores")
    for name, opts in stores.items():
        if not isinstance(opts, Mapping) or not isinstance(opts.get("type"), str):
            raise ConfigError(f"{cfg.path}: stores.{name}.type is required (e.g. \"local\")")
    names = cfg.section("archive").get("stores", list(stores))
    for name in names:
        if name not in stores:
            raise ConfigError(
                f"{cfg.path}: archive.stores names '{name}', which has no [stores.{name}] section",
                hint="choose one of: " + (", ".join(stores) or "(none defined)"),
            )
    copies = cfg.get("archive.required_copies", int, 1)
    if copies < 1 or copies > max(1, len(names)):
        raise ConfigError(f"{cfg.path}: archive.required_copies must be between 1 and {len(names)}")


def _check_keys(cfg: Config) -> None:
    """Every key of a core section is declared (``cfcore.config_schema``)."""
    from .config_schema import SECTIONS, closest

    for dotted, keys in SECTIONS.items():
        if "<" in dotted:
            continue  # [capture.sources.<name>]: per-name tables, checked by their owner
        if dotted == "keys" and cfg.get("keys.provider", str, "keyring") != "keyring":
            continue  # a provider plugin's options; checked by the plugin
        node: Any = cfg.data
        for part in dotted.split("."):
            node = node.get(part, {}) if isinstance(node, Mapping) else {}
        if not isinstance(node, Mapping):
            raise ConfigError(f"{cfg.path}: [{dotted}] must be a table")
        names = [k.name for k in keys]
        for key in node:
            if key in names or (dotted in ("plugins", "sync") and isinstance(node[key], Mapping)):
                continue  # [plugins.<name>], [sync.targets|sites.<name>]: checked by their owners
            near = closest(key, names)
            raise ConfigError(f"{cfg.path}: unknown key {dotted}.{key}" + (f" (did you mean {near}?)" if near else ""),
                              hint="see docs/config.md for every key")


def _check_clear_secrets(cfg: Config, node: Any, where: str) -> None:
    """A key that names a secret (``password``, ``secret_key`` …) must be ``{ env }``/``{ file }``."""
    from .config_schema import SECRET_NAMES

    if not isinstance(node, Mapping):
        return
    for key, value in node.items():
        here = f"{where}.{key}" if where else str(key)
        if key in SECRET_NAMES and isinstance(value, str):
            raise ConfigError(f"{cfg.path}: {here} is a secret written in clear",
                              hint=f'write {key} = {{ env = "NAME" }} or {{ file = "path" }} (mode 0600) instead')
        if isinstance(value, Mapping):
            _check_clear_secrets(cfg, value, here)
