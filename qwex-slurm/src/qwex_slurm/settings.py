"""`[tool.qwex.slurm]`: where and how long a run's batch job asks to run.

Resources (`--cpu`, `--memory`, `--gpu`) are the job's own `resources`, as on every backend;
this section holds what only Slurm has. `--partition` and `--time` set the two keys of it a
command line needs most; profiles set any of them (`[tool.qwex.profiles.gpu.slurm]`).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

TIME = re.compile(r"^(\d+-)?\d+(:\d+){0,2}$|^\d+-\d+$|^(UNLIMITED|INFINITE)$", re.IGNORECASE)
"""Slurm's time limit forms: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S, UNLIMITED."""


class SlurmSettings(BaseModel):
    """Validated `[tool.qwex.slurm]` table (also `QWEX_SLURM_<KEY>` variables)."""

    model_config = ConfigDict(extra="forbid")

    partition: str | None = Field(
        default=None, description="partition to submit to (`--partition`; default: Slurm's)"
    )
    account: str | None = Field(default=None, description="account charged for the job")
    qos: str | None = Field(default=None, description="quality of service of the job")
    time: str | None = Field(
        default=None,
        description="time limit, in Slurm's forms: 30, 01:00:00, 2-00:00:00 (`--time`; "
        "default: the partition's)",
    )
    constraint: str | None = Field(
        default=None, description="node features the job needs, e.g. a100|h100"
    )
    sbatch_options: list[str] = Field(
        default_factory=list,
        description='extra sbatch options, e.g. ["--exclusive", "--reservation=r1"]',
    )
    agent_dir: str | None = Field(
        default=None,
        description="folder the compute nodes see holding agent bundles as <os>-<arch>/ "
        "(default: the user cache, where `qwex agent build` puts it)",
    )
    timeout: float = Field(
        default=30.0, gt=0, description="seconds to wait for one Slurm command (sbatch...)"
    )

    @field_validator("time")
    @classmethod
    def _time(cls, value: str | None) -> str | None:
        if value is not None and not TIME.match(value.strip()):
            raise ValueError(
                f"{value!r} is not a Slurm time limit: use MINUTES, HH:MM:SS or D-HH:MM:SS"
            )
        return None if value is None else value.strip()
