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
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import ModuleType
from typing import Any, TypeVar

import attrs
import pluggy

import hookspecs
from hookspecs.types import (
    AccessDecision,
    AccessTarget,
    Actor,
    ApprovalAction,
    ArchiveGateway,
    AudioClip,
    BackgroundJob,
    BrokenCopy,
    CaptureSourceType,
    Decision,
    FisRule,
    KeyProviderType,
    NotifierType,
    PluginContext,
    RecordingInfo,
    RequestContext,
    RetentionRule,
    StoreType,
    SyncTargetType,
    Tombstone,
    Transcript,
    TranscriptionUnavailable,
    WebApp,
)

from .config import Config
from .errors import PluginError

log = logging.getLogger(__name__)
R = TypeVar("R")

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
    "cfcore.defaults.sync_rules",
    "cfcore.defaults.jobs",
    "cfcore.defaults.approval_actions",
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

    @property
    def provisional(self) -> tuple[str, ...]:
        """The hooks this plugin implements whose shape may still change (``hookspecs.PROVISIONAL``)."""
        return tuple(h for h in self.hooks if h in hookspecs.PROVISIONAL)

    def as_dict(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "provisional": list(self.provisional)}


@attrs.frozen(kw_only=True)
class HookFailure:
    """One implementation of a hook raised; the others were still called."""

    hook: str
    plugin: str
    error: str


class CorePluginManager:
    """A small manager with typed methods that forward to hooks.

    Every hook is called implementation by implementation (in pluggy's order: the last registered
    first, ``tryfirst``/``trylast`` respected), so that one plugin that raises never silences the
    others. What a failure means depends on the hook and is said by each method: a listener's
    failure is reported and the others go on; a policy's failure counts against the access (fail
    closed); a retention rule's failure stops the decision (a rule must never be skipped).
    Failures are logged by plugin name and handed to ``on_failure`` (the ``App`` audits them as
    ``plugin.hook_failed``).
    """

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        for mod in hookspecs.SPEC_MODULES:
            self.pm.add_hookspecs(importlib.import_module(mod))
        self.statuses: list[PluginStatus] = []
        self.on_failure: Callable[[HookFailure], None] | None = None
        #: a plugin's own context for the event hooks (set by the ``App``)
        self.context_for: Callable[[str], PluginContext] | None = None
        self._owners: dict[tuple[str, str], str] = {}

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def register(self, plugin: Any, name: str, *, distribution: str = "cfcore", version: str = "",
                 builtin: bool = False) -> PluginStatus:
        """Register a plugin object; refuse it (and return a failed status) if it implements a hook
        that has no spec, or implements one as a wrapper (wrappers are not part of the contract:
        the core calls each implementation on its own)."""
        self.pm.register(plugin, name=name)
        callers = self.pm.get_hookcallers(plugin) or []
        unknown = sorted(hc.name for hc in callers if hc.spec is None)
        wrappers = sorted(hc.name for hc in callers for impl in hc.get_hookimpls()
                          if impl.plugin is plugin and (impl.wrapper or impl.hookwrapper))
        if unknown or wrappers:
            self.pm.unregister(plugin)
            error = (f"unknown hook {', '.join(unknown)} (misspelled? see docs/plugins.md)" if unknown else
                     f"{', '.join(wrappers)} implemented as a wrapper (not supported; see docs/plugins.md)")
            status = PluginStatus(name=name, distribution=distribution, version=version, hooks=(),
                                  status="failed", builtin=builtin, error=error)
        else:
            hooks = tuple(sorted(hc.name for hc in callers))
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

    # calling, one implementation at a time -----------------------------------------------
    def _impls(self, hook_name: str) -> list[Any]:
        return list(reversed(getattr(self.pm.hook, hook_name).get_hookimpls()))

    def _failed(self, hook_name: str, plugin: str, exc: BaseException) -> HookFailure:
        failure = HookFailure(hook=hook_name, plugin=plugin, error=f"{type(exc).__name__}: {exc}"[:500])
        log.error("plugin %s failed in %s: %s", plugin, hook_name, failure.error,
                  exc_info=(type(exc), exc, exc.__traceback__))
        if self.on_failure is not None:
            try:
                self.on_failure(failure)
            except Exception:  # reporting must not turn one plugin's failure into the caller's
                log.exception("could not record the failure of plugin %s in %s", plugin, hook_name)
        return failure

    def call_each(self, hook_name: str, **kwargs: Any) -> tuple[list[tuple[str, Any]], list[HookFailure]]:
        """Call every implementation of ``hook_name``: ``([(plugin, result)], [failures])``.

        An implementation receives only the arguments it names (as with pluggy); one that raises
        is reported (log and ``on_failure``) and the next is called."""
        results: list[tuple[str, Any]] = []
        failures: list[HookFailure] = []
        for impl in self._impls(hook_name):
            try:
                result = impl.function(**{k: kwargs[k] for k in impl.argnames})
            except Exception as exc:
                failures.append(self._failed(hook_name, impl.plugin_name, exc))
                continue
            results.append((impl.plugin_name, result))
        return results, failures

    def broadcast(self, hook_name: str, **kwargs: Any) -> list[HookFailure]:
        """A notification hook (results ignored): every listener is called; returns the failures."""
        return self.call_each(hook_name, **kwargs)[1]

    def _first(self, hook_name: str, **kwargs: Any) -> tuple[str | None, Any]:
        """firstresult, one implementation at a time; a failing one is reported and skipped."""
        for impl in self._impls(hook_name):
            try:
                result = impl.function(**{k: kwargs[k] for k in impl.argnames})
            except Exception as exc:
                self._failed(hook_name, impl.plugin_name, exc)
                continue
            if result is not None:
                return impl.plugin_name, result
        return None, None

    # discovery ---------------------------------------------------------------------------
    def registrations(self, hook_name: str, kind: type[R] | None = None, **kwargs: Any) -> dict[str, R]:
        """Collect ``name``-d registrations from a discovery hook; duplicates are an error.

        A plugin whose discovery hook raises is reported and contributes nothing; the others'
        registrations stand. ``kind`` checks each registration's type."""
        found: dict[str, Any] = {}
        results, _ = self.call_each(hook_name, **kwargs)
        for plugin, result in results:
            for reg in result or []:
                if kind is not None and not isinstance(reg, kind):
                    self._failed(hook_name, plugin, TypeError(
                        f"returned {type(reg).__name__}, not {kind.__name__}"))
                    continue
                if reg.name in found:
                    raise PluginError(f"two plugins register '{reg.name}' for {hook_name} "
                                      f"({self._owners.get((hook_name, reg.name))} and {plugin})")
                found[reg.name] = reg
                self._owners[(hook_name, reg.name)] = plugin
        return found

    def registered_by(self, hook_name: str, name: str) -> str | None:
        """The plugin that registered ``name`` at the last collection of ``hook_name``."""
        return self._owners.get((hook_name, name))

    def capture_source_types(self) -> dict[str, CaptureSourceType]:
        return self.registrations("cf_capture_sources", CaptureSourceType)

    def plugin_options_classes(self) -> dict[str, type]:
        """``plugin -> options class`` of its own ``[plugins.<plugin>]``: what ``cf_plugin_options``
        declares, else the ``options`` of the plugin's capture source registration."""
        found: dict[str, type] = {}
        results, _ = self.call_each("cf_plugin_options")
        for plugin, cls in results:
            if not (isinstance(cls, type) and attrs.has(cls)):
                self._failed("cf_plugin_options", plugin, TypeError(f"returned {cls!r}, not an attrs class"))
                continue
            found[plugin] = cls
        for name, reg in self.capture_source_types().items():
            owner = self.registered_by("cf_capture_sources", name)
            if reg.options is not None and owner is not None:
                found.setdefault(owner, reg.options)
        return found

    def store_types(self) -> dict[str, StoreType]:
        return self.registrations("cf_media_stores", StoreType)

    def key_provider_types(self) -> dict[str, KeyProviderType]:
        return self.registrations("cf_key_providers", KeyProviderType)

    def notifier_types(self) -> dict[str, NotifierType]:
        return self.registrations("cf_notifiers", NotifierType)

    def sync_target_types(self) -> dict[str, SyncTargetType]:
        return self.registrations("cf_sync_targets", SyncTargetType)

    def fis_rules(self) -> dict[str, FisRule]:
        return self.registrations("cf_fis_rules", FisRule)

    def background_jobs(self) -> dict[str, BackgroundJob]:
        return self.registrations("cf_background_jobs", BackgroundJob)

    def approval_actions(self) -> dict[str, ApprovalAction]:
        """Four-eyes actions; a ``fallback`` registration yields to another one of the same name."""
        found: dict[str, ApprovalAction] = {}
        results, _ = self.call_each("cf_approval_actions")
        for plugin, result in results:
            for reg in result or []:
                if not isinstance(reg, ApprovalAction):
                    self._failed("cf_approval_actions", plugin, TypeError(
                        f"returned {type(reg).__name__}, not ApprovalAction"))
                    continue
                old = found.get(reg.name)
                if old is not None and not (old.fallback or reg.fallback):
                    raise PluginError(f"two plugins register '{reg.name}' for cf_approval_actions "
                                      f"({self._owners.get(('cf_approval_actions', reg.name))} and {plugin})")
                if old is None or old.fallback:
                    found[reg.name] = reg
                    self._owners[("cf_approval_actions", reg.name)] = plugin
        return found

    def web_apps(self, ctx_for: Callable[[str], PluginContext],
                 archive_for: Callable[[str], ArchiveGateway]) -> list[WebApp]:
        """Every plugin's web apps; each plugin is called with its own context and the archive
        gateway acting for it (``ctx_for(plugin)``, ``archive_for(plugin)``)."""
        apps: list[WebApp] = []
        for impl in self._impls("cf_web_apps"):
            plugin = impl.plugin_name
            try:
                kwargs = {"ctx": ctx_for(plugin), "archive": archive_for(plugin)}
                result = impl.function(**{k: kwargs[k] for k in impl.argnames})
                found = list(result or [])
                for web_app in found:
                    if not isinstance(web_app, WebApp):
                        raise TypeError(f"returned {type(web_app).__name__}, not WebApp")
            except Exception as exc:
                self._failed("cf_web_apps", plugin, exc)
                continue
            apps.extend(found)
        return apps

    # policy and retention: fail closed ---------------------------------------------------
    def access_decisions(self, actor: Actor, action: str, target: AccessTarget,
                         context: RequestContext) -> list[AccessDecision]:
        """Every policy's answer; a policy that raises answers DENY in its own name."""
        answers: list[AccessDecision] = []
        for impl in self._impls("cf_access_decision"):
            kwargs = {"actor": actor, "action": action, "target": target, "context": context}
            try:
                answer = impl.function(**{k: kwargs[k] for k in impl.argnames})
            except Exception as exc:
                self._failed("cf_access_decision", impl.plugin_name, exc)
                answer = AccessDecision(decision=Decision.DENY, by=impl.plugin_name,
                                        reason=f"policy plugin {impl.plugin_name} failed")
            if answer is not None:
                answers.append(answer)
        return answers

    def retention_rules(self, recording: RecordingInfo, settings: Mapping[str, Any]) -> list[RetentionRule]:
        """Every rule for ``recording``. A rules plugin that raises or returns something else stops
        the decision with a ``PluginError`` naming it: a skipped duty could delete too early."""
        rules: list[RetentionRule] = []
        for impl in self._impls("cf_retention_rules"):
            kwargs = {"recording": recording, "settings": settings}
            try:
                result = impl.function(**{k: kwargs[k] for k in impl.argnames})
            except Exception as exc:
                self._failed("cf_retention_rules", impl.plugin_name, exc)
                raise PluginError(f"retention rules of plugin {impl.plugin_name} failed: {type(exc).__name__}: {exc}",
                                  hint="fix or disable the plugin; nothing was decided") from exc
            for rule in result or []:
                if not isinstance(rule, RetentionRule):
                    raise PluginError(f"cf_retention_rules of plugin {impl.plugin_name} returned "
                                      f"{type(rule).__name__}, not RetentionRule")
                rules.append(rule)
        return rules

    def purge_veto(self, recording: RecordingInfo) -> str | None:
        """The first veto reason (firstresult); a plugin that raises vetoes in its own name."""
        for impl in self._impls("cf_before_purge"):
            try:
                reason = impl.function(**{k: {"recording": recording}[k] for k in impl.argnames})
            except Exception as exc:
                self._failed("cf_before_purge", impl.plugin_name, exc)
                return f"veto plugin {impl.plugin_name} failed: {type(exc).__name__}"
            if reason:
                return str(reason)
        return None

    def transcribe(self, audio: AudioClip, language: str,
                   settings: Mapping[str, Any] | None = None) -> Transcript | None:
        """The first engine's transcript; an engine that raises is reported and the next one asked.
        ``TranscriptionUnavailable`` (the language's model is missing) is the engine's answer, not
        a failure: it reaches the caller, which records the refusal."""
        kwargs = {"audio": audio, "language": language, "settings": dict(settings or {})}
        for impl in self._impls("cf_transcribe"):
            try:
                result = impl.function(**{k: kwargs[k] for k in impl.argnames})
            except TranscriptionUnavailable:
                raise
            except Exception as exc:
                self._failed("cf_transcribe", impl.plugin_name, exc)
                continue
            if result is not None:
                return result  # type: ignore[no-any-return]
        return None

    # notifications: every listener is called ---------------------------------------------
    def implementers(self, hook_name: str) -> list[str]:
        """The plugins implementing ``hook_name``, in calling order."""
        return [impl.plugin_name for impl in self._impls(hook_name)]

    def call_one(self, hook_name: str, plugin: str, **kwargs: Any) -> Any:
        """Call one plugin's implementation of ``hook_name`` (the outbox delivers events this way).
        A failure is reported (log, ``plugin.hook_failed``) and re-raised so that the caller can
        retry; ``LookupError`` when the plugin no longer implements the hook."""
        for impl in self._impls(hook_name):
            if impl.plugin_name != plugin:
                continue
            try:
                return impl.function(**{k: kwargs[k] for k in impl.argnames})
            except Exception as exc:
                self._failed(hook_name, plugin, exc)
                raise
        raise LookupError(f"plugin {plugin} no longer implements {hook_name}")

    def _announce(self, hook_name: str, key: str, value: Any, event_id: str | None) -> list[HookFailure]:
        """A direct broadcast of an event hook, each plugin with its own context (the core itself
        delivers these through ``cfcore.outbox``, which retries)."""
        event_id = event_id or secrets.token_hex(16)
        failures: list[HookFailure] = []
        for impl in self._impls(hook_name):
            try:
                ctx = self.context_for(impl.plugin_name) if self.context_for is not None else None
                kwargs = {key: value, "event_id": event_id, "ctx": ctx}
                if "ctx" in impl.argnames and ctx is None:
                    raise PluginError(f"no context for plugin {impl.plugin_name}")
                impl.function(**{k: kwargs[k] for k in impl.argnames})
            except Exception as exc:
                failures.append(self._failed(hook_name, impl.plugin_name, exc))
        return failures

    def recording_archived(self, recording: RecordingInfo, event_id: str | None = None) -> list[HookFailure]:
        return self._announce("cf_recording_archived", "recording", recording, event_id)

    def store_copy_broken(self, event: BrokenCopy) -> list[HookFailure]:
        return self.broadcast("cf_store_copy_broken", event=event)

    def after_purge(self, tombstone: Tombstone, event_id: str | None = None) -> list[HookFailure]:
        return self._announce("cf_after_purge", "tombstone", tombstone, event_id)

    def add_cli_commands(self, cli: Any) -> list[HookFailure]:
        return self.broadcast("cf_cli_commands", cli=cli)


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
    core_version = _version("callfort")
    for modname in DEFAULT_PLUGINS:
        mod = importlib.import_module(modname)
        mgr.register(mod, modname.rsplit(".", 1)[-1], version=core_version, builtin=True)
    for ep in entry_points if entry_points is not None else _entry_points():
        meta = ep.dist.metadata if ep.dist else None  # parsed once (.name and .version parse it each)
        dist = meta["Name"] if meta is not None else "?"
        version = meta["Version"] if meta is not None else "?"
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
