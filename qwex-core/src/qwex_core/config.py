"""Configuration: files, profiles, environment and flags, merged with the source of every value.

Lowest to highest precedence:

1. defaults of the models,
2. the user file `$XDG_CONFIG_HOME/qwex/config.toml` (default `~/.config/qwex/config.toml`),
3. `[tool.qwex]` in the project's `pyproject.toml`, then the project's `qwex.toml`,
4. the selected profile (`[tool.qwex.profiles.NAME]`), an overlay of the keys above,
5. `QWEX_<KEY>` and `QWEX_<SECTION>_<KEY>` environment variables,
6. command-line flags.

The core keys are validated by `CoreSettings`; each plugin's table by the model
it registered through `qwex_config_sections`. Errors name the source (file and
table, variable or flag), the key and what was expected.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from qwex_core.errors import ConfigError
from qwex_core.models import JobSettings

Key = tuple[str, ...]
Section = TypeVar("Section", bound=BaseModel)

ENV_SOURCE = "environment (QWEX_*)"
NOT_CONFIG_VARS = frozenset(
    {
        "QWEX_DISABLE_PLUGINS",
        "QWEX_PLUGINS",
        "QWEX_PROJECT_DIR",
        "QWEX_PROFILE",
        "QWEX_TIMINGS",
        "QWEX_DEBUG",
        "QWEX_RUN_ID",
    }
)


class CoreSettings(JobSettings):
    """The keys of `[tool.qwex]` itself: a job's settings plus what picks the backend."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    backend: str = Field("local", description="the backend `qwex run` uses")
    profile: str | None = Field(None, description="the profile applied by default")
    image: str | None = Field(None, description="container image for container backends")
    profiles: dict[str, dict[str, Any]] = Field(default_factory=dict)


@dataclass
class Layer:
    source: str
    data: dict[str, Any]


@dataclass
class QwexConfig:
    """The resolved configuration and where each value came from."""

    core: CoreSettings
    sections: Mapping[str, BaseModel] = field(default_factory=dict)
    """Every registered plugin section's validated table (see `Sections`)."""
    sources: dict[Key, str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    profile: str | None = None
    profile_sources: dict[str, str] = field(default_factory=dict)
    """Where each profile is defined (the last file that sets it)."""

    def section(self, name: str, model: type[Section]) -> Section:
        """The validated `[tool.qwex.<name>]` of a plugin (`model`'s defaults when unset)."""
        value = self.sections.get(name)
        return value if isinstance(value, model) else model()

    def source_of(self, key: Key) -> str:
        for end in range(len(key), 0, -1):
            if key[:end] in self.sources:
                return self.sources[key[:end]]
        return "default"

    def items(self) -> list[tuple[str, Any, str]]:
        """Every resolved leaf value as (dotted key, value, source), each key once, then the
        names of the profiles, then the plugins' sections."""
        tree: dict[str, Any] = self.core.model_dump(mode="json", exclude={"profiles"})
        # `image` is `container.image` under a shorter name: show it once, as `image`.
        container_image = tree.get("container", {}).pop("image", None)
        image_source = self.source_of(("image",))
        if tree.get("image") is None and container_image is not None:
            tree["image"] = container_image
            image_source = self.source_of(("container", "image"))
        items = [
            (".".join(k), v, image_source if k == ("image",) else self.source_of(k))
            for k, v in _flatten(tree).items()
        ]
        where = sorted(set(self.profile_sources.values()))
        items.append(("profiles", sorted(self.core.profiles), ", ".join(where) or "default"))
        sections = {name: model.model_dump(mode="json") for name, model in self.sections.items()}
        items += [(".".join(k), v, self.source_of(k)) for k, v in _flatten(sections).items()]
        return items


class Sections(Mapping[str, BaseModel]):
    """The plugins' sections: those a configuration layer sets, validated when it is
    loaded; the others, which no one wrote, are their model's defaults, made when first
    asked for. A local run then never imports the Kubernetes or server settings models."""

    def __init__(
        self, validated: dict[str, BaseModel], registered: Mapping[str, type[BaseModel]]
    ) -> None:
        self._validated = validated
        self._registered = registered

    def __getitem__(self, name: str) -> BaseModel:
        if name not in self._validated:
            if name not in self._registered:
                raise KeyError(name)
            self._validated[name] = _validate_section(self._registered[name], {}, (name,), {})
        return self._validated[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._registered)

    def __len__(self) -> int:
        return len(self._registered)


def user_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "qwex" / "config.toml"


def load_config(
    project_dir: Path,
    sections: Mapping[str, type[BaseModel]],
    *,
    profile: str | None = None,
    flags: dict[Key, tuple[Any, str]] | None = None,
) -> QwexConfig:
    """Resolve the configuration for `project_dir`. `flags` maps keys to (value, flag name)."""
    layers: list[Layer] = []
    files: list[Path] = []
    user = user_config_path()
    if user.is_file():
        layers.append(Layer(str(user), _read_toml(user)))
        files.append(user)
    pyproject = project_dir / "pyproject.toml"
    if pyproject.is_file():
        tool = _read_toml(pyproject).get("tool", {}).get("qwex")
        if tool is not None:
            if not isinstance(tool, dict):
                raise ConfigError(f"{pyproject}: [tool.qwex] must be a table")
            layers.append(Layer(f"{pyproject} [tool.qwex]", tool))
            files.append(pyproject)
    qwex_toml = project_dir / "qwex.toml"
    if qwex_toml.is_file():
        layers.append(Layer(str(qwex_toml), _read_toml(qwex_toml)))
        files.append(qwex_toml)

    profiles: dict[str, tuple[dict[str, Any], str]] = {}
    for layer in layers:
        # Every layer is checked on its own, so a bad value stops qwex even where a higher
        # layer overrides it, and so does one in a profile that is not selected.
        _check_layer(layer.data, layer.source, sections)
        if not isinstance(layer.data.get("profiles") or {}, dict):
            raise ConfigError(f"{layer.source}: profiles must be a table of tables")
        for name, table in (layer.data.get("profiles") or {}).items():
            if not isinstance(table, dict):
                raise ConfigError(f"{layer.source}: profiles.{name} must be a table")
            _check_layer(table, f"{layer.source} [profiles.{name}]", sections)
            merged = _deep_merge(profiles.get(name, ({}, ""))[0], table)
            profiles[name] = (merged, layer.source)
    env_profile = os.environ.get("QWEX_PROFILE") or None
    chosen = profile or env_profile or _last(layers, "profile")
    if chosen:
        if chosen not in profiles:
            known = ", ".join(sorted(profiles)) or "none defined"
            where = (
                f"[profiles.{chosen}] in {qwex_toml}"
                if qwex_toml.is_file() or not pyproject.is_file()
                else f"[tool.qwex.profiles.{chosen}] in {pyproject}"
            )
            raise ConfigError(f"unknown profile {chosen!r} (profiles: {known}); define {where}")
        table, where = profiles[chosen]
        layers.append(Layer(f"profile {chosen!r} ({where})", table))

    env_layer = _env_layer(sections)
    _check_layer(env_layer.data, env_layer.source, sections)
    layers.append(env_layer)
    values: dict[Key, Any] = {}
    sources: dict[Key, str] = {}
    for layer in layers:
        for key, value in _flatten(
            {k: v for k, v in layer.data.items() if k != "profiles"}
        ).items():
            _set(values, sources, key, value, layer.source)
    for key, (value, flag) in (flags or {}).items():
        _set(values, sources, key, value, flag)
    tree = _unflatten(values)
    tree["profiles"] = {name: table for name, (table, _) in profiles.items()}
    if chosen:
        tree["profile"] = chosen
        sources[("profile",)] = (
            "--profile"
            if profile
            else "QWEX_PROFILE"
            if env_profile
            else _last_source(layers, "profile")
        )

    plugin_tables: dict[str, Any] = {}
    for name in list(tree):
        if name in CoreSettings.model_fields:
            continue
        if name in sections:
            plugin_tables[name] = tree.pop(name)
        elif isinstance(tree[name], dict):
            tree.pop(name)
            print(
                f"qwex: warning: ignoring [{name}] from {_source_under(sources, name)}: no installed "
                f"plugin registers that section (installed sections: {', '.join(sections) or 'none'})",
                file=sys.stderr,
            )
    core = _validate(
        CoreSettings, tree, (), sources, hint=sorted(CoreSettings.model_fields) + sorted(sections)
    )
    validated = {
        name: _validate_section(sections[name], plugin_tables[name], (name,), sources)
        for name in sections
        if name in plugin_tables
    }
    return QwexConfig(
        core,
        Sections(validated, sections),
        sources,
        files,
        chosen,
        profile_sources={name: where for name, (_, where) in profiles.items()},
    )


def _check_layer(
    data: dict[str, Any], source: str, sections: Mapping[str, type[BaseModel]]
) -> None:
    """Validate one layer's keys against the models, every key optional (the layer over the
    defaults). Tables no installed plugin registers are left for the warning after merging."""
    core: dict[str, Any] = {}
    plugins: dict[str, Any] = {}
    for name, value in data.items():
        if name == "profiles":
            continue
        if name in sections:
            plugins[name] = value
        elif name in CoreSettings.model_fields or not isinstance(value, dict):
            core[name] = value
    sources = {key: source for key in _flatten(data)} | {(name,): source for name in data}
    _validate(
        CoreSettings, core, (), sources, hint=sorted(CoreSettings.model_fields) + sorted(sections)
    )
    for name, table in plugins.items():
        _validate_section(sections[name], table, (name,), sources)


def _set(
    values: dict[Key, Any], sources: dict[Key, str], key: Key, value: Any, source: str
) -> None:
    # A later value for a table (or a leaf) replaces everything under it.
    for old in [k for k in values if k[: len(key)] == key or key[: len(k)] == k]:
        del values[old]
        sources.pop(old, None)
    values[key] = value
    sources[key] = source


def _env_layer(sections: Mapping[str, type[BaseModel]]) -> Layer:
    data: dict[str, Any] = {}
    nested = {"resources", "container", *sections}
    for var, raw in os.environ.items():
        if not var.startswith("QWEX_") or var in NOT_CONFIG_VARS:
            continue
        name = var[5:].lower()
        value: Any = raw
        if raw[:1] in "[{":
            with contextlib.suppress(ValueError):
                value = json.loads(raw)
        if name in CoreSettings.model_fields:
            data[name] = value
            continue
        head, _, rest = name.partition("_")
        if head in nested and rest:
            data.setdefault(head, {})[rest] = value
        else:
            _warn_unknown_variable(var)
    return Layer(ENV_SOURCE, data)


def _warn_unknown_variable(var: str) -> None:
    """One line for a `QWEX_*` variable that sets nothing but looks like a setting: a typo
    (`QWEX_GRACE`) would otherwise be ignored without a word. One that resembles no setting
    (a tool's own `QWEX_*` variable) is left alone."""
    import difflib

    known = [f"QWEX_{name.upper()}" for name in CoreSettings.model_fields]
    for table in ("resources", "container"):
        fields = _fields_at(CoreSettings, (table,)) or []
        known += [f"QWEX_{table.upper()}_{name.upper()}" for name in fields]
    near = difflib.get_close_matches(var, [*known, *sorted(NOT_CONFIG_VARS)], n=1, cutoff=0.7)
    if near:
        print(
            f"qwex: warning: {var} is not a qwex setting and is ignored; did you mean {near[0]}?",
            file=sys.stderr,
        )


def _fields_at(model: type[BaseModel], path: Key) -> list[str] | None:
    """The keys a table at `path` under `model` may hold (`resources`: cpu, gpu, memory), or
    None at the top or where the path is no model."""
    import typing

    if not path:
        return None
    current: Any = model
    for name in path:
        field = getattr(current, "model_fields", {}).get(name)
        if field is None:
            return None
        candidates = [field.annotation, *typing.get_args(field.annotation)]
        current = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
        if current is None:
            return None
    return sorted(current.model_fields)


def _validate_section(
    model: type[BaseModel], data: Any, prefix: Key, sources: dict[Key, str]
) -> Any:
    """A plugin's section: unknown keys are refused unless its model says otherwise (sets
    `extra` in its `model_config`), so a typo is never a setting silently ignored."""
    if "extra" not in model.model_config:
        _validate(_forbidding_extra(model), data, prefix, sources)
    return _validate(model, data, prefix, sources)


@functools.cache
def _forbidding_extra(model: type[BaseModel]) -> type[BaseModel]:
    config = ConfigDict(**{**model.model_config, "extra": "forbid"})
    return type(model.__name__, (model,), {"model_config": config, "__module__": model.__module__})


def _validate(
    model: type[BaseModel],
    data: Any,
    prefix: Key,
    sources: dict[Key, str],
    hint: list[str] | None = None,
) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors()[:5]:
            loc = prefix + tuple(str(p) for p in error["loc"])
            where = next(
                (sources[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in sources), "default"
            )
            key = ".".join(loc) or (prefix and ".".join(prefix)) or "(top level)"
            if where == ENV_SOURCE:  # the variable itself, as the user typed it
                where = f"environment variable QWEX_{'_'.join(loc).upper()}"
            if error["type"] == "extra_forbidden":
                inner = _fields_at(model, tuple(str(p) for p in error["loc"][:-1]))
                known = inner or hint or sorted(model.model_fields)
                what = f"unknown key; expected one of: {', '.join(known)}"
            else:
                what = error["msg"].removeprefix("Value error, ")
                if repr(error.get("input")) not in what:
                    what += f" (got {error.get('input')!r})"
            lines.append(f"{where}: key '{key}': {what}")
        raise ConfigError("bad configuration:\n  " + "\n  ".join(lines)) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def _last(layers: list[Layer], key: str) -> Any:
    for layer in reversed(layers):
        if key in layer.data:
            return layer.data[key]
    return None


def _last_source(layers: list[Layer], key: str) -> str:
    return next((layer.source for layer in reversed(layers) if key in layer.data), "default")


def _source_under(sources: dict[Key, str], name: str) -> str:
    return next((s for k, s in sources.items() if k[0] == name), "configuration")


def _flatten(tree: dict[str, Any], prefix: Key = ()) -> dict[Key, Any]:
    out: dict[Key, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, (*prefix, str(key))))
        else:
            out[(*prefix, str(key))] = value
    return out


def _unflatten(values: dict[Key, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in values.items():
        node = tree
        for part in key[:-1]:
            node = node.setdefault(part, {})
        node[key[-1]] = value
    return tree


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = (
            _deep_merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out
