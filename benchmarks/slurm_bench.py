"""The Slurm backend's figure (issue 26), against its plain twin in the same run.

`qwex run -b slurm -- true` against `sbatch --wait` of the same one-line batch script
(`#!/bin/sh` + `true`), sample by sample alternated (target <= 1.3x). Both go through the
same slurmctld and slurmd with the same settings: the test cluster's scheduler settings
(.ci/slurm/cluster.sh: the scheduler runs as soon as a job is submitted) apply to both alike.
`sbatch --wait` polls the job's state (every 2 s at first): that is the twin as users have it.

Needs the one-node test cluster (`nox -s slurm -- up`). Run alone (`python
benchmarks/slurm_bench.py [--repeat N]`) or through `nox -s bench -- slurm`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sampling import alternated

QWEX = str(Path(sys.executable).parent / "qwex")
ENV = {k: v for k, v in os.environ.items() if not k.startswith("QWEX_")}


def timed(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(args, cwd=cwd, env=ENV, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(repeat: int = 7) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="qwex-slurm-bench-") as tmp:
        cwd = Path(tmp)
        (cwd / "qwex.toml").write_text('backend = "slurm"\n')
        script = cwd / "true.sh"
        script.write_text("#!/bin/sh\ntrue\n")
        sbatch = ["sbatch", "--wait", "--quiet", "--output=/dev/null", str(script)]
        medians = alternated(
            {
                "qwex": lambda: timed([QWEX, "run", "-q", "--", "true"], cwd),
                "sbatch": lambda: timed(sbatch, cwd),
            },
            repeat,
        )
    q, s = medians["qwex"], medians["sbatch"]
    return [
        {
            "figure": "slurm: qwex run -b slurm -- true vs sbatch --wait",
            "value": round(q / s, 2),
            "target": 1.3,
            "unit": "x",
            "ms": round(q * 1000),
            "twin_ms": round(s * 1000),
            "twin": "sbatch --wait true.sh",
        }
    ]


if __name__ == "__main__":
    repeat = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 7
    for row in main(repeat):
        print(row)
