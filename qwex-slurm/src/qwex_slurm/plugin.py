"""The qwex plugin of the Slurm backend (entry point `slurm` in the group `qwex`).

Imported whenever qwex starts: it names the runner and the settings by strings, so nothing
of the backend is imported until a Slurm run is started or looked at.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qwex_core.plugin import hookimpl

if TYPE_CHECKING:
    from qwex_core.config import QwexConfig
    from qwex_core.garbage import Garbage
    from qwex_core.plugin.hookspecs import RegisterRunner, RegisterSection


@hookimpl
def qwex_register_runners(register: RegisterRunner) -> None:
    register(
        "slurm",
        "qwex_slurm.runner:SlurmRunner",
        description="a Slurm batch job, the qwex agent its batch step",
    )


@hookimpl
def qwex_config_sections(register: RegisterSection) -> None:
    register("slurm", "qwex_slurm.settings:SlurmSettings")


@hookimpl
def qwex_collect_garbage(config: QwexConfig, dry_run: bool) -> list[Garbage] | None:
    """`qwex gc`: this user's Slurm jobs marked as a qwex run's whose run is final or gone."""
    from qwex_slurm import gc
    from qwex_slurm.commands import Slurm
    from qwex_slurm.settings import SlurmSettings

    slurm = Slurm(config.section("slurm", SlurmSettings).timeout)
    if not slurm.installed():
        return None
    return gc.collect(slurm, dry_run=dry_run)
