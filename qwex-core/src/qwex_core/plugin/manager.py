"""Load plugins from the `qwex` entry-point group and collect what they register.

A plugin that fails to import, or whose hook raises, is named in a one-line
warning and the other plugins keep working; a duplicate or malformed runner
name stops with an error naming the plugins.
`QWEX_DISABLE_PLUGINS=1` turns entry-point loading off (for tests), or names
the plugins to skip (`QWEX_DISABLE_PLUGINS=docker,k8s`). `QWEX_PLUGINS` lists
extra plugin modules to register (`QWEX_PLUGINS=my_tests.plugin`).
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pluggy

from qwex_core.errors import BackendError, PluginError
from qwex_core.plugin import hookspecs
from qwex_core.plugin.discovery import EntryPoint, entry_points, load_reference
from qwex_core.plugin.markers import ENTRY_POINT_GROUP, PROJECT

if TYPE_CHECKING:
    import click
    from pydantic import BaseModel

    from qwex_core.config import QwexConfig
    from qwex_core.leftovers import Garbage
    from qwex_core.models import JobSpec, Run
    from qwex_core.plugin.hookspecs import RegisterRunner, RegisterSection
    from qwex_core.runners.base import Runner

NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
T = TypeVar("T")


@dataclass(frozen=True)
class PluginInfo:
    name: str
    entry_point: EntryPoint | None = None

    @property
    def distribution(self) -> str | None:
        return self.entry_point.dist_name if self.entry_point else None

    @property
    def version(self) -> str | None:
        return self.entry_point.dist_version if self.entry_point else None

    @property
    def origin(self) -> str:
        if self.distribution:
            return f"{self.distribution} {self.version or ''}".strip()
        return f"plugin {self.name}"

    @property
    def label(self) -> str:
        """How warnings name it: `plugin 'bad' (qwex-bad 1.0)`, or `plugin 'bad'` without a distribution."""
        if self.distribution:
            return f"plugin {self.name!r} ({self.origin})"
        return f"plugin {self.name!r}"


@dataclass(frozen=True)
class RunnerInfo:
    """A registered runner; `target` is a class or a lazy `"module:Class"` reference."""

    name: str
    target: type[Runner] | str
    description: str
    plugin: PluginInfo

    def load(self) -> type[Runner]:
        from qwex_core.runners.base import Runner

        target = self.target
        if isinstance(target, str):
            try:
                target = cast("type[Runner]", load_reference(target))
            except Exception as exc:
                raise BackendError(
                    f"backend {self.name!r} ({self.plugin.origin}) failed to load "
                    f"{self.target}: {type(exc).__name__}: {exc}"
                ) from None
        if not (isinstance(target, type) and issubclass(target, Runner)):
            raise PluginError(
                f"backend {self.name!r} ({self.plugin.origin}) is not a Runner subclass"
            )
        return target


class PluginHost:
    """The pluggy manager plus what the plugins registered."""

    def __init__(self, *, autoload: bool | None = None, plugins: Iterable[tuple[str, object]] = ()):
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self.load_errors: list[str] = []
        disabled = os.environ.get("QWEX_DISABLE_PLUGINS", "").strip()
        if autoload is None:
            autoload = disabled.lower() not in ("1", "true", "yes", "all")
        if autoload:
            self._load_entry_points({n.strip() for n in disabled.split(",") if n.strip()})
        for module_name in filter(
            None, (m.strip() for m in os.environ.get("QWEX_PLUGINS", "").split(","))
        ):
            self._load(module_name, functools.partial(importlib.import_module, module_name))
        for name, plugin in plugins:
            self.register(name, plugin)

    @property
    def hook(self) -> Any:
        """pluggy's hook relay. Prefer `call`: one plugin raising here stops the others."""
        return self.pm.hook

    def register(self, name: str, plugin: object, info: PluginInfo | None = None) -> None:
        self.pm.register(plugin, name=name)
        self.infos[name] = info or PluginInfo(name)
        self._check_hook_names(name)

    def _check_hook_names(self, plugin_name: str) -> None:
        """A misspelled hook implementation would never be called: say so at load, with
        the hook it was probably meant to be (pluggy's `check_pending`, as a warning)."""
        plugin = self.pm.get_plugin(plugin_name)
        for caller in self.pm.get_hookcallers(plugin) or []:
            if caller.spec is not None:
                continue
            import difflib  # only for a misspelled hook: every command loads the plugins

            known = [n for n in dir(hookspecs) if n.startswith("qwex_")]
            near = difflib.get_close_matches(caller.name, known, n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            self._warn(
                f"{self._info(plugin_name).label} implements {caller.name}, which is not a "
                f"qwex hook{hint}: it is never called"
            )

    # Typed calls of each hook (see `call` for how a failing implementation is handled).

    def prepare_job(self, spec: JobSpec, config: QwexConfig) -> None:
        self.call("qwex_prepare_job", spec=spec, config=config)

    def run_finished(self, run: Run) -> None:
        self.call("qwex_run_finished", run=run)

    def collect_garbage(self, config: QwexConfig, dry_run: bool) -> list[list[Garbage]]:
        return self.call("qwex_collect_garbage", config=config, dry_run=dry_run)

    def register_commands(self, cli: click.Group) -> None:
        self.call("qwex_register_commands", cli=cli)

    def call(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """Call every implementation of `hook_name` on its own, in pluggy's order (the
        last registered first), and return their results that are not None.

        An implementation that raises is named in a one-line warning (and in
        `load_errors`) and skipped, so a broken plugin never silences the others.
        What it did before raising (a changed job, an added command) stays.
        """
        results: list[Any] = []
        for impl in self._impls(hook_name):
            args = {name: kwargs[name] for name in impl.argnames}
            try:
                result = impl.function(**args)
            except Exception as exc:
                self._hook_failed(impl.plugin_name, hook_name, exc)
                continue
            if result is not None:
                results.append(result)
        return results

    def _impls(self, hook_name: str) -> list[pluggy.HookImpl]:
        """The implementations of a hook in call order. qwex hooks are plain calls: a
        hook wrapper would be a generator here, so it is reported and left out."""
        impls: list[pluggy.HookImpl] = []
        for impl in reversed(getattr(self.pm.hook, hook_name).get_hookimpls()):
            if impl.hookwrapper or impl.wrapper:
                self._warn(
                    f"{self._info(impl.plugin_name).label} implements {hook_name} as a hook "
                    "wrapper, which qwex does not call"
                )
            else:
                impls.append(impl)
        return impls

    def _info(self, plugin_name: str) -> PluginInfo:
        return self.infos.get(plugin_name, PluginInfo(plugin_name))

    def _hook_failed(self, plugin_name: str, hook_name: str, exc: Exception) -> None:
        self._warn(f"{self._info(plugin_name).label} failed in {hook_name}: {_describe(exc)}")
        if os.environ.get("QWEX_DEBUG"):
            import traceback

            traceback.print_exception(exc, file=sys.stderr)

    def runner_failed(self, backend: str, method: str, exc: Exception) -> BackendError:
        """The one-line error for a runner method that raised: which backend, from which
        distribution, in which method (QWEX_DEBUG=1 prints the traceback too)."""
        info = self.runners.get(backend)
        origin = info.plugin.origin if info is not None else "not installed"
        if os.environ.get("QWEX_DEBUG"):
            import traceback

            traceback.print_exception(exc, file=sys.stderr)
        return BackendError(
            f"the {backend} backend ({origin}) failed in {method}: {_describe(exc)}"
        )

    def warn(self, message: str) -> None:
        """A one-line warning on stderr, once per distinct message (see `_warn`)."""
        self._warn(message)

    def _warn(self, message: str) -> None:
        """One stderr line per distinct problem (a hook called twice, as `qwex gc` does,
        fails twice the same way); every occurrence is kept in `load_errors`."""
        if message not in self.load_errors:
            print(f"qwex: warning: {message}", file=sys.stderr)
        self.load_errors.append(message)

    def _load_entry_points(self, disabled: set[str]) -> None:
        for ep in entry_points(ENTRY_POINT_GROUP):
            if ep.name in disabled or self.pm.has_plugin(ep.name):
                continue
            self._load(ep.name, ep.load, PluginInfo(ep.name, ep))

    def _load(
        self, name: str, loader: Callable[[], object], info: PluginInfo | None = None
    ) -> None:
        info = info or PluginInfo(name)
        try:
            plugin = loader()
            self.register(name, plugin, info)
        except Exception as exc:
            self._warn(f"{info.label} failed to load: {_describe(exc)}")

    def _collect(
        self,
        hook_name: str,
        found: dict[str, T],
        make: Callable[[PluginInfo, dict[str, T]], Callable[..., None]],
    ) -> None:
        """Call one registration hook per plugin, so each registration knows its plugin.

        `make(info, staged)` gives the `register` callback for one plugin; it
        checks against `found` and `staged` and adds to `staged`. A plugin's
        registrations are merged into `found` only if its hook returns: when it
        raises, it is named in a warning and all it registered in that call is
        dropped. A `PluginError` from `register` itself (a duplicate or
        malformed name) is ours, not the plugin's failure: it stops qwex.
        """
        for impl in self._impls(hook_name):
            info = self._info(impl.plugin_name)
            staged: dict[str, T] = {}
            refused: list[PluginError] = []
            register = _noting_refusals(make(info, staged), refused)
            try:
                impl.function(**{name: register for name in impl.argnames})
            except Exception as exc:
                if refused:
                    raise refused[0] from None
                self._hook_failed(impl.plugin_name, hook_name, exc)
                continue
            if refused:  # the plugin swallowed our error: still an error
                raise refused[0]
            found.update(staged)

    @cached_property
    def runners(self) -> dict[str, RunnerInfo]:
        """Every registered runner by name."""
        found: dict[str, RunnerInfo] = {}

        def make(info: PluginInfo, staged: dict[str, RunnerInfo]) -> RegisterRunner:
            def register(name: str, runner: type[Runner] | str, *, description: str = "") -> None:
                if not isinstance(name, str) or not NAME.match(name):
                    raise PluginError(
                        f"{info.origin} registers an invalid runner name {name!r}: use lower-case "
                        "letters, digits, '-' and '_', starting with a letter"
                    )
                if not isinstance(runner, (str, type)) or (
                    isinstance(runner, str) and ":" not in runner
                ):
                    raise PluginError(
                        f"{info.origin} registers runner {name!r} as {runner!r}: "
                        "give a Runner subclass or a 'module:ClassName' string"
                    )
                if name in found or name in staged:
                    other = (found.get(name) or staged[name]).plugin
                    first, second = sorted([other, info], key=lambda p: p.origin)
                    raise PluginError(
                        f"runner name {name!r} is registered twice: by {first.origin} and by "
                        f"{second.origin}; uninstall one, or skip one with "
                        f"QWEX_DISABLE_PLUGINS={first.name} or QWEX_DISABLE_PLUGINS={second.name}"
                    )
                staged[name] = RunnerInfo(name, runner, description, info)

            return register

        self._collect("qwex_register_runners", found, make)
        return dict(sorted(found.items()))

    @cached_property
    def config_sections(self) -> SectionModels:
        """Every plugin configuration section by name (each model imported when first used)."""
        found: dict[str, tuple[type[BaseModel] | str, PluginInfo]] = {}

        def make(
            info: PluginInfo, staged: dict[str, tuple[type[BaseModel] | str, PluginInfo]]
        ) -> RegisterSection:
            def register(section: str, model: type[BaseModel] | str) -> None:
                if not isinstance(section, str) or not NAME.match(section):
                    raise PluginError(
                        f"{info.origin} registers an invalid config section {section!r}"
                    )
                if section in found or section in staged:
                    other = (found.get(section) or staged[section])[1]
                    raise PluginError(
                        f"config section [tool.qwex.{section}] is registered by both "
                        f"{other.origin} and {info.origin}"
                    )
                staged[section] = (model, info)

            return register

        self._collect("qwex_config_sections", found, make)
        return SectionModels(dict(sorted(found.items())))

    def runner_class(self, name: str) -> type[Runner]:
        info = self.runners.get(name)
        if info is None:
            raise unknown_backend(name, self.runners)
        return info.load()


FIRST_PARTY_BACKENDS = ("qwex-docker", "qwex-k8s", "qwex-remote")
"""The distributions of qwex's own backends, named when a backend is unknown (never a
package name made from what was typed: a typo must not become an install)."""


def unknown_backend(name: str, installed: Iterable[str], source: str | None = None) -> BackendError:
    """The error for a backend that no installed plugin provides. `source` is where the
    name came from, as `QwexConfig.source_of` gives it."""
    names = ", ".join(sorted(installed)) or "none"
    origin = ""
    if source and source != "default":
        if source.startswith("--"):
            origin = f" from the flag {source}"
        elif source.startswith("environment"):
            origin = " from the variable QWEX_BACKEND"
        else:
            origin = f" from {source}, key backend,"
    return BackendError(
        f"unknown backend {name!r}{origin} (installed: {names}); qwex's own backends come "
        f"in {', '.join(FIRST_PARTY_BACKENDS)}; `qwex backends` lists the installed ones"
    )


def _noting_refusals(register: Callable[..., None], refused: list[PluginError]) -> Any:
    """`register`, also noting each `PluginError` it raises: a plugin may catch it."""

    def noting(*args: Any, **kwargs: Any) -> None:
        try:
            register(*args, **kwargs)
        except PluginError as exc:
            refused.append(exc)
            raise

    return noting


def _describe(exc: BaseException) -> str:
    """`RuntimeError: boom`, on one line whatever the message."""
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


class SectionModels(Mapping[str, "type[BaseModel]"]):
    """The configuration sections' models by name; a model registered as a
    `"module:ClassName"` string is imported on first lookup, so that listing the names
    (to recognise a table) costs nothing."""

    def __init__(self, registered: dict[str, tuple[type[BaseModel] | str, PluginInfo]]) -> None:
        self._registered = registered
        self._loaded: dict[str, type[BaseModel]] = {}

    def __getitem__(self, name: str) -> type[BaseModel]:
        if name not in self._loaded:
            target, info = self._registered[name]
            if isinstance(target, str):
                try:
                    target = cast("type[BaseModel]", load_reference(target))
                except Exception as exc:
                    raise PluginError(
                        f"config section [tool.qwex.{name}] ({info.origin}) failed to load "
                        f"{target}: {type(exc).__name__}: {exc}"
                    ) from None
            self._loaded[name] = target
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._registered)

    def __len__(self) -> int:
        return len(self._registered)
