"""Load plugins from the `qwex` entry-point group and collect what they register.

A plugin that fails to import is named in a one-line warning and skipped; a
duplicate or malformed runner name stops with an error naming the plugins.
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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import pluggy

from qwex_core.errors import BackendError, PluginError
from qwex_core.plugin import hookspecs
from qwex_core.plugin.discovery import EntryPoint, entry_points
from qwex_core.plugin.markers import ENTRY_POINT_GROUP, PROJECT

if TYPE_CHECKING:
    from pydantic import BaseModel

    from qwex_core.runners.base import Runner

NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


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
            module_name, _, attr = target.partition(":")
            try:
                target = getattr(importlib.import_module(module_name), attr)
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
        return self.pm.hook

    def register(self, name: str, plugin: object, info: PluginInfo | None = None) -> None:
        self.pm.register(plugin, name=name)
        self.infos[name] = info or PluginInfo(name)

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
            message = f"plugin {name!r} ({info.origin}) failed to load: {type(exc).__name__}: {exc}"
            self.load_errors.append(message)
            print(f"qwex: warning: {message}", file=sys.stderr)

    def _collect(self, hook_name: str, argname: str, make: Callable[[PluginInfo], Any]) -> None:
        """Call one registration hook per plugin, so each registration knows its plugin."""
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            info = self.infos.get(impl.plugin_name, PluginInfo(impl.plugin_name))
            impl.function(**{argname: make(info)})

    @cached_property
    def runners(self) -> dict[str, RunnerInfo]:
        """Every registered runner by name."""
        found: dict[str, RunnerInfo] = {}

        def make(info: PluginInfo) -> Callable[..., None]:
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
                if name in found:
                    other = found[name].plugin
                    first, second = sorted([other, info], key=lambda p: p.origin)
                    raise PluginError(
                        f"runner name {name!r} is registered twice: by {first.origin} and by "
                        f"{second.origin}; uninstall one, or skip one with "
                        f"QWEX_DISABLE_PLUGINS={first.name} or QWEX_DISABLE_PLUGINS={second.name}"
                    )
                found[name] = RunnerInfo(name, runner, description, info)

            return register

        self._collect("qwex_register_runners", "register", make)
        return dict(sorted(found.items()))

    @cached_property
    def config_sections(self) -> dict[str, type[BaseModel]]:
        """Every plugin configuration section by name."""
        found: dict[str, tuple[type[BaseModel], PluginInfo]] = {}

        def make(info: PluginInfo) -> Callable[[str, type[BaseModel]], None]:
            def register(section: str, model: type[BaseModel]) -> None:
                if not NAME.match(section):
                    raise PluginError(
                        f"{info.origin} registers an invalid config section {section!r}"
                    )
                if section in found:
                    raise PluginError(
                        f"config section [tool.qwex.{section}] is registered by both "
                        f"{found[section][1].origin} and {info.origin}"
                    )
                found[section] = (model, info)

            return register

        self._collect("qwex_config_sections", "register", make)
        return {name: model for name, (model, _) in sorted(found.items())}

    def runner_class(self, name: str) -> type[Runner]:
        info = self.runners.get(name)
        if info is None:
            installed = ", ".join(self.runners) or "none"
            raise BackendError(
                f"unknown backend {name!r} (installed: {installed}); install its package, "
                f"e.g. `pip install qwex-{name}`, or see `qwex backends`"
            )
        return info.load()
