"""The one-node Slurm cluster of .ci/slurm/cluster.sh, checked to answer; under CI a
missing cluster is a failure."""

from __future__ import annotations

import os
import subprocess

import pytest

HOW_TO = "start it with `nox -s slurm -- up` (as root; packages: .ci/setup-slurm.sh)"


def cluster_problem() -> str | None:
    """Why the test cluster cannot be used, or None."""
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20)
    except FileNotFoundError:
        return "Slurm's client commands are not installed"
    except subprocess.TimeoutExpired:
        return "slurmctld does not answer"
    if ping.returncode != 0 or "UP" not in ping.stdout:
        return f"slurmctld is not up ({(ping.stdout + ping.stderr).strip()})"
    return None


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """The cluster answers (the node may be busy); tests submit through qwex or sbatch."""
    problem = cluster_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"{problem}; under CI this is an error ({HOW_TO})", pytrace=False)
        pytest.skip(f"{problem}: {HOW_TO}")
