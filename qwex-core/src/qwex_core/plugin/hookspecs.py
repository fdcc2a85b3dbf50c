"""The hooks a qwex plugin can implement. These docstrings are the reference documentation.

Plugins are found through the entry-point group `qwex`; the entry point names
a module holding `@hookimpl` functions. Plugin modules are imported whenever
qwex starts (even for `qwex --help`), so they must be cheap to import: name
heavy classes by `"module:attribute"` strings instead of importing them.

Each implementation is called on its own: one that raises is named in a
one-line warning (`qwex: warning: plugin 'x' (qwex-x 1.0) failed in
qwex_run_finished: RuntimeError: boom`) and the other plugins still run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from qwex_core.plugin.markers import hookspec

if TYPE_CHECKING:
    import click
    from pydantic import BaseModel

    from qwex_core.config import QwexConfig
    from qwex_core.leftovers import Garbage
    from qwex_core.models import JobSpec, Run
    from qwex_core.runners.base import Runner


class RegisterRunner(Protocol):
    """The `register` that `qwex_register_runners` receives: a Protocol, so a
    plugin's call is type-checked (pydantic and the runners stay unimported)."""

    def __call__(self, name: str, runner: type[Runner] | str, *, description: str = "") -> None:
        """Register `runner`, a `Runner` subclass or a `"module:ClassName"` string
        imported only when the runner is used, under the backend name `name`."""


class RegisterSection(Protocol):
    """The `register` that `qwex_config_sections` receives."""

    def __call__(self, section: str, model: type[BaseModel] | str) -> None:
        """Validate `[tool.qwex.<section>]` with the pydantic model `model`, or with the
        `"module:ClassName"` it names, imported only when the section is set or read."""


@hookspec
def qwex_register_runners(register: RegisterRunner) -> None:
    """Register the runners (backends) this plugin provides.

    Call `register(name, runner, description=...)` once per runner. `name` is
    what users pass to `--backend`: lower-case letters, digits, `-` and `_`,
    starting with a letter. A name registered twice, or a malformed one, stops
    qwex with an error naming both plugins. `runner` is a subclass of
    `qwex_core.runners.base.Runner`, or a `"module:ClassName"` string so that
    the backend's heavy imports (docker, kubernetes...) happen only when the
    runner is used. If this hook raises, none of the runners it registered in
    that call are kept.
    """


@hookspec
def qwex_config_sections(register: RegisterSection) -> None:
    """Register a pydantic model for this plugin's configuration section.

    `register("docker", "qwex_docker.settings:DockerSettings")` makes
    `[tool.qwex.docker]` (and the same table in `qwex.toml`, the user config and
    profiles, and `QWEX_DOCKER_<KEY>` variables) valid, validated by
    `DockerSettings`. Name the model by a string so that it is imported only when
    a configuration sets the section or a runner reads it, not on every command
    (a class works too). A validation error names the file, the key and what was
    expected. If this hook raises, none of the sections it registered in that call
    are kept.
    """


@hookspec
def qwex_prepare_job(spec: JobSpec, config: QwexConfig) -> None:
    """Adjust a job before it is submitted: add env, labels or mounts to `spec` in place.

    Called after the configuration and the command-line flags were applied
    and before the run record is created, for every backend.
    """


@hookspec
def qwex_run_finished(run: Run) -> None:
    """Be told that a run reached a final state.

    Called once per run, by whichever qwex process first observes the final
    state (the foreground `qwex run`, `qwex logs -f`, `qwex status`,
    `qwex list` or a server).
    """


@hookspec
def qwex_collect_garbage(config: QwexConfig, dry_run: bool) -> list[Garbage] | None:
    """Find what this backend left behind for runs that are final or unknown (containers,
    Jobs, ConfigMaps...) and, unless `dry_run`, remove it; `qwex gc` shows the findings
    of every installed backend.

    Return one `qwex_core.garbage.Garbage` per thing found, or None when this backend is
    not set up here at all (nothing can have been left). A run that is not final is
    brought up to date first (its project's `RunService`), and anything a live run still
    needs is left alone. Raise when the backend is set up but cannot be asked (its daemon
    or cluster is down): `qwex gc` names the plugin and what went wrong, and goes on.
    """


@hookspec
def qwex_register_commands(cli: click.Group) -> None:
    """Add commands to the `qwex` command line: `cli.add_command(my_command)`.

    Keep the command's heavy imports inside its function body: this hook runs
    for `qwex --help`. Core's own commands are imported when first looked up, so
    `cli.commands` holds only those added so far; `cli.list_commands(ctx)` names them
    all and `cli.get_command(ctx, name)` gives one. A command added under a core
    command's name replaces it, as before.
    """
