"""The plugin manager: built by a function, nothing loaded at import time.

Order: the hook specs, in-tree defaults, then the installed distributions of entry-point group
``cfcore`` minus ``plugins.disabled``; a plugin implementing an unknown hook (a misspelling) is
refused; ``plugins.required`` is checked last. A broken optional plugin is reported and shown as
failed; a broken required plugin stops start-up with an error naming it.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import logging
from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import Any

import attrs
import pluggy

import hookspecs

from .config import Config
from .errors import PluginError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME

#: Hooks only a test kit implements (hookspecs/testing.py): a plugin implementing one can pin the
#: clock or end the process, so it is never part of a production install and is shown loudly.
TEST_ONLY_HOOKS = ("cf_test_pinned_time", "cf_test_crash_point")

TEST_ONLY_WARNING = ("TEST-ONLY plugin {names} loaded: the environment can pin the clock (CF_NOW) and "
                     "crash the process (CF_TEST_CRASH_AT); never run a production deployment with it "
                     "(pip uninstall callfort-testkit)")

#: In-tree default plugins: registered first, hidden from ``cf plugins`` unless ``--all``.
DEFAULT_PLUGINS = (
    "cfcore.defaults.keyring",
    "cfcore.defaults.access_policy",
    "cfcore.defaults.retention_rules",
    "cfcore.defaults.fis_rules",
)


@attrs.frozen(kw_only=True)
class PluginStatus:
    name: str
    distribution: str
    version: str
    hooks: tuple[str, ...]
    status: str  # ok | no hooks yet | failed | disabled
    builtin: bool = False
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


class CorePluginManager:
    """A small manager with typed methods that forward to hooks."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        for mod in hookspecs.SPEC_MODULES:
            self.pm.add_hookspecs(importlib.import_module(mod))
        self.statuses: list[PluginStatus] = []

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def register(self, plugin: Any, name: str, *, distribution: str = "cfcore", version: str = "",
                 builtin: bool = False) -> PluginStatus:
        """Register a plugin object; refuse it (and return a failed status) if it implements a hook
        that has no spec."""
        self.pm.register(plugin, name=name)
        unknown = sorted(hc.name for hc in self.pm.get_hookcallers(plugin) or [] if hc.spec is None)
        if unknown:
            self.pm.unregister(plugin)
            status = PluginStatus(name=name, distribution=distribution, version=version, hooks=(),
                                  status="failed", builtin=builtin,
                                  error=f"unknown hook {', '.join(unknown)} (misspelled? see docs/plugins.md)")
        else:
            hooks = tuple(sorted(hc.name for hc in self.pm.get_hookcallers(plugin) or []))
            status = PluginStatus(name=name, distribution=distribution, version=version, hooks=hooks,
                                  status="ok" if hooks else "no hooks yet", builtin=builtin)
        self._set_status(status)
        return status

    def unregister(self, name: str) -> None:
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        self.statuses = [s for s in self.statuses if s.name != name]

    def _set_status(self, status: PluginStatus) -> None:
        self.statuses = [s for s in self.statuses if s.name != status.name] + [status]

    def status(self, name: str) -> PluginStatus | None:
        return next((s for s in self.statuses if s.name == name), None)

    def loaded(self) -> list[str]:
        return [s.name for s in self.statuses if s.status in ("ok", "no hooks yet")]

    def test_only_plugins(self) -> list[str]:
        """Loaded plugins implementing a test-only hook (``TEST_ONLY_HOOKS``)."""
        return [s.name for s in self.statuses
                if s.status == "ok" and any(h in TEST_ONLY_HOOKS for h in s.hooks)]

    def test_only_warning(self) -> str | None:
        names = self.test_only_plugins()
        return TEST_ONLY_WARNING.format(names=", ".join(names)) if names else None

    # typed forwards ----------------------------------------------------------------------
    def registrations(self, hook_name: str, **kwargs: Any) -> dict[str, Any]:
        """Collect ``name``-d registrations from a discovery hook; duplicates are an error."""
        found: dict[str, Any] = {}
        for result in getattr(self.hook, hook_name)(**kwargs):
            for reg in result or []:
                if reg.name in found:
                    raise PluginError(f"two plugins register '{reg.name}' for {hook_name}")
                found[reg.name] = reg
        return found


def _entry_points() -> Iterable[md.EntryPoint]:
    return md.entry_points(group=ENTRY_POINT_GROUP)


def get_plugin_manager(config: Config | None = None, *, entry_points: Sequence[md.EntryPoint] | None = None,
                       extra: Sequence[tuple[str, Any]] = (), load_test_only: bool = True) -> CorePluginManager:
    """Build a fresh manager for ``config`` (``None``: defaults only plus all installed plugins).

    ``load_test_only=False`` leaves out installed plugins that implement a test-only hook (the
    in-process test apps, which get their clock passed in, do not need the test kit)."""
    plugins_cfg = config.section("plugins") if config else {}
    disabled = set(plugins_cfg.get("disabled", []))
    required = list(plugins_cfg.get("required", []))
    mgr = CorePluginManager()
    for modname in DEFAULT_PLUGINS:
        mod = importlib.import_module(modname)
        mgr.register(mod, modname.rsplit(".", 1)[-1], version=_version("callfort"), builtin=True)
    for ep in entry_points if entry_points is not None else _entry_points():
        dist = ep.dist.name if ep.dist else "?"
        version = ep.dist.version if ep.dist else "?"
        if ep.name in disabled:
            mgr._set_status(PluginStatus(name=ep.name, distribution=dist, version=version, hooks=(),
                                         status="disabled"))
            continue
        try:
            plugin: ModuleType | Any = ep.load()
        except Exception as exc:  # a broken plugin must not crash start-up unless required
            mgr._set_status(PluginStatus(name=ep.name, distribution=dist, version=version, hooks=(),
                                         status="failed", error=f"{type(exc).__name__}: {exc}"))
            log.warning("plugin %s failed to load: %s: %s", ep.name, type(exc).__name__, exc)
            continue
        status = mgr.register(plugin, ep.name, distribution=dist, version=version)
        if not load_test_only and any(h in TEST_ONLY_HOOKS for h in status.hooks):
            mgr.unregister(ep.name)
            continue
        if status.status == "failed":
            log.warning("plugin %s refused: %s", ep.name, status.error)
    for name, plugin in extra:
        mgr.register(plugin, name, distribution="(test)")
    mgr.pm.check_pending()
    _check_plugin_names(config, mgr, disabled, required)
    warning = mgr.test_only_warning()
    if warning:
        log.warning("%s", warning)
    for name in required:
        st = mgr.status(name)
        if st is None:
            raise PluginError(f"required plugin '{name}' is not installed",
                              hint="install its distribution or remove it from plugins.required")
        if st.status not in ("ok", "no hooks yet"):
            raise PluginError(f"required plugin '{name}' is {st.status}: {st.error or 'see cf plugins'}")
    return mgr


def _check_plugin_names(config: Config | None, mgr: CorePluginManager, disabled: set[str],
                        required: list[str]) -> None:
    """A misspelt plugin name in ``disabled`` or ``[plugins.<name>]`` stops start-up (a disabled
    plugin that still runs, or options that reach nobody, would go unnoticed)."""
    import difflib

    if config is None:
        return
    known = {s.name for s in mgr.statuses}
    sections = [k for k, v in config.section("plugins").items() if k not in ("disabled", "required")]
    for kind, names in (("plugins.disabled", sorted(disabled)), ("[plugins.<name>]", sections)):
        for name in names:
            if name in known:
                continue
            near = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
            where = f"plugins.disabled names '{name}'" if kind == "plugins.disabled" else f"[plugins.{name}]"
            raise PluginError(f"{config.path}: {where}, but no plugin of that name is installed"
                              + (f" (did you mean {near[0]}?)" if near else ""),
                              hint="cf plugins --all lists the installed plugins")


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "0+unknown"
