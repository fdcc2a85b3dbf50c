"""The hooks a qwex plugin can implement. These docstrings are the reference documentation.

Plugins are found through the entry-point group `qwex`; the entry point names
a module holding `@hookimpl` functions. Plugin modules are imported whenever
qwex starts (even for `qwex --help`), so they must be cheap to import: name
heavy classes by `"module:attribute"` strings instead of importing them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from qwex_core.plugin.markers import hookspec

if TYPE_CHECKING:
    import click
    from pydantic import BaseModel

    from qwex_core.config import QwexConfig
    from qwex_core.models import JobSpec, Run

RegisterRunner = Callable[..., None]
"""`register(name, runner, *, description="")` where `runner` is a `Runner`
subclass or a `"module:ClassName"` string imported only when the runner is used."""

RegisterSection = Callable[[str, "type[BaseModel]"], None]
"""`register(section, model)`: validate `[tool.qwex.<section>]` with a pydantic model."""


@hookspec
def qwex_register_runners(register: RegisterRunner) -> None:
    """Register the runners (backends) this plugin provides.

    Call `register(name, runner, description=...)` once per runner. `name` is
    what users pass to `--backend`: lower-case letters, digits, `-` and `_`,
    starting with a letter. A name registered twice, or a malformed one, stops
    qwex with an error naming both plugins. `runner` is a subclass of
    `qwex_core.runners.base.Runner`, or a `"module:ClassName"` string so that
    the backend's heavy imports (docker, kubernetes...) happen only when the
    runner is used.
    """


@hookspec
def qwex_config_sections(register: RegisterSection) -> None:
    """Register a pydantic model for this plugin's configuration section.

    `register("docker", DockerSettings)` makes `[tool.qwex.docker]` (and the
    same table in `qwex.toml`, the user config and profiles, and
    `QWEX_DOCKER_<KEY>` variables) valid, validated by `DockerSettings`. A
    validation error names the file, the key and what was expected.
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
    `qwex list` or a server). Exceptions are reported and otherwise ignored.
    """


@hookspec
def qwex_register_commands(cli: click.Group) -> None:
    """Add commands to the `qwex` command line: `cli.add_command(my_command)`.

    Keep the command's heavy imports inside its function body: this hook runs
    for `qwex --help`.
    """
