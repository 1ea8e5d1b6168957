"""The running deployment: config, clock, plugins, catalog, audit, keys and stores in one object.

Every service function takes an ``App``; tests build one per test on a temporary directory.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hookspecs.options import OptionsError, parse_options
from hookspecs.types import PluginContext

from .audit import AuditTrail
from .authority import system_context
from .clock import Clock, clock_from_plugins
from .config import Config, load_config
from .db.catalog import Catalog
from .errors import ConfigError
from .plugins import CorePluginManager, HookFailure, get_plugin_manager

if TYPE_CHECKING:
    from hookspecs.types import KeyProvider

    from .storage import StoreSet


#: A plugin's section under its 1.0 name: still read when ``[plugins.<plugin>]`` is absent, with a
#: deprecation warning (``cf doctor`` shows it too). Both at once is an error.
DEPRECATED_SECTIONS = {"crm_soap": "crm"}

log = logging.getLogger(__name__)


def deprecation(path: object, old: str, new: str) -> str:
    return (f"{path}: [{old}] is deprecated and read as [{new}] until CallFort 2.0; "
            f"rename the section (and its sub-tables [{old}.*]) to [{new}]")


class App:
    def __init__(self, config: Config, *, clock: Clock | None = None,
                 pm: CorePluginManager | None = None, upgrade: bool = True) -> None:
        from .secrets import check_secrets

        self.config = config
        self._deprecation_warned: set[str] = set()
        self.pm = pm or get_plugin_manager(config)
        self.clock = clock or clock_from_plugins(self.pm)
        self.data_dir = config.data_dir
        self.keys_dir = config.resolve_path(config.get("keys.dir", str, "keys"))
        # every secret first: a deployment with a missing key refuses to start (never recreated)
        check_secrets(self)
        url = config.get("catalog.url", str, "sqlite:///catalog.db")
        self.catalog = Catalog.from_url(url, config.base_dir)
        if upgrade:
            self.catalog.upgrade()
        self.audit = AuditTrail(self.catalog, self.clock, self.keys_dir / "audit-signing.key",
                                mac_key_path=self.keys_dir / "audit-mac.key", config=config)
        self.audit.anchor_stores = self._anchor_stores
        self.pm.on_failure = self._plugin_failed
        self.pm.context_for = self.integration_context

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def open(cls, config_path: str | Path | None = None, **kwargs: Any) -> App:
        return cls(load_config(config_path), **kwargs)

    def plugin_context(self, name: str, *, plugin: str | None = None, section: str | None = None) -> PluginContext:
        """The context handed to a plugin: its own ``[plugins.<plugin>]`` section, the clock and a
        data directory. ``name`` is what is being built (a store instance, a notifier) and names
        the data directory; ``plugin`` the registering plugin (default: ``name``). ``section`` is
        the 1.0 way (another section as ``ctx.config``), kept for callers not yet moved to typed
        options; new code passes the instance section through ``plugin_options`` instead."""
        cfg = self.config.section(section or f"plugins.{plugin or name}")
        return PluginContext(name=name, config=cfg, clock=self.clock.now, data_dir=self.data_dir / "plugins" / name)

    def plugin_section(self, plugin: str) -> str:
        """The dotted name of ``plugin``'s own section: ``plugins.<plugin>``, or its deprecated 1.0
        name (``DEPRECATED_SECTIONS``) while only that one is written."""
        old = DEPRECATED_SECTIONS.get(plugin)
        new = f"plugins.{plugin}"
        if old is None or old not in self.config.data:
            return new
        if plugin in self.config.section("plugins"):
            raise ConfigError(f"{self.config.path}: both [{old}] and [{new}] are written",
                              hint=f"move every key of [{old}] into [{new}] and delete [{old}]")
        if plugin not in self._deprecation_warned:
            self._deprecation_warned.add(plugin)
            log.warning("%s", deprecation(self.config.path, old, new))
        return old

    def integration_context(self, plugin: str) -> PluginContext:
        """The context of a plugin's event and web hooks (``cf_recording_archived``,
        ``cf_after_purge``, ``cf_web_apps``): its own section, built into ``ctx.options`` when the
        plugin declares its class (``cf_plugin_options``), the clock and its data directory."""
        where, section, options = self.own_options(plugin)
        return PluginContext(name=plugin, config=section, clock=self.clock.now, section=where, options=options,
                             data_dir=self.data_dir / "plugins" / plugin)

    def own_options(self, plugin: str) -> tuple[str, Mapping[str, Any], Any]:
        """``(section name, section, options)`` of ``plugin``'s own section; ``options`` is built
        into the class the plugin declares (``cf_plugin_options`` or its capture registration),
        ``None`` without one. A misspelt key or a wrong type: ``ConfigError`` naming it."""
        where = self.plugin_section(plugin)
        section = self.config.section(where)
        cls = self._options_classes.get(plugin)
        if cls is None:
            return where, section, None
        try:
            return where, section, parse_options(cls, section, where=where)
        except OptionsError as exc:
            raise ConfigError(f"{self.config.path}: {exc}") from None

    @functools.cached_property
    def _options_classes(self) -> dict[str, type]:
        return self.pm.plugin_options_classes()

    def plugin_options(self, registration: Any, section: Mapping[str, Any], where: str) -> Any:
        """A registration's options: its ``options`` class built from ``section`` (unknown keys and
        wrong types refused with a ``ConfigError`` naming the key), else the section as a mapping."""
        cls = getattr(registration, "options", None)
        if cls is None:
            return dict(section)
        try:
            return parse_options(cls, section, where=where)
        except OptionsError as exc:
            raise ConfigError(f"{self.config.path}: {exc}") from None

    def _plugin_failed(self, failure: HookFailure) -> None:
        self.audit.record(system_context("plugins"), "plugin.hook_failed", "plugin", failure.plugin, "error",
                          {"hook": failure.hook, "error": failure.error})

    @functools.cached_property
    def keys(self) -> KeyProvider:
        from .crypto.keyring import open_key_provider

        return open_key_provider(self)

    @functools.cached_property
    def stores(self) -> StoreSet:
        from .storage import open_stores

        return open_stores(self)

    def crash_point(self, name: str, exit_code: int) -> None:
        """A named crash point: only a test-only plugin (``cf_test_crash_point``) acts on it."""
        self.pm.hook.cf_test_crash_point(name=name, exit_code=exit_code)

    def _anchor_stores(self) -> dict[str, Any]:
        """The stores that keep the audit anchors: ``[audit] anchor_stores`` (default: every
        archive store)."""
        from .errors import ConfigError

        stores = self.stores.stores
        names = self.config.get("audit.anchor_stores", list, list(stores))
        missing = [n for n in names if n not in stores]
        if missing:
            raise ConfigError(f"{self.config.path}: audit.anchor_stores names unknown store(s) {', '.join(missing)}",
                              hint="choose from: " + ", ".join(stores))
        return {n: stores[n] for n in names}

    def close(self) -> None:
        failures = self.__dict__.get("_cf_auth_failures")
        if failures is not None:
            failures.flush(self)
        self.catalog.dispose()
