"""The plugin module named by the `qwex` entry point. Cheap to import: the runner loads lazily."""

from pydantic import BaseModel, Field
from qwex_core.plugin import hookimpl
from qwex_core.plugin.hookspecs import RegisterRunner, RegisterSection


class NiceSettings(BaseModel):
    """`[tool.qwex.nice]`"""

    niceness: int = Field(10, ge=0, le=19, description="the `nice` increment for every run")


@hookimpl
def qwex_register_runners(register: RegisterRunner) -> None:
    register(
        "nice", "qwex_nice.runner:NiceRunner", description="a local process at lower CPU priority"
    )


@hookimpl
def qwex_config_sections(register: RegisterSection) -> None:
    register("nice", NiceSettings)
