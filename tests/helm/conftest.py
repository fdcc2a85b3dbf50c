"""Fixtures for the Helm chart's tests: the real Helm binary (built from its Go module).

Without it the tests skip on a developer machine and FAIL under CI (env `CI` set), where
`.ci/run` builds it in the cluster's cold step.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helm_support import HOW_TO, helm_path, run_helm


@pytest.fixture(scope="session")
def helm() -> Path:
    """The Helm binary, checked to run; under CI a missing one is a failure."""
    path = helm_path()
    problem = None
    if path is None:
        problem = "no helm binary"
    elif run_helm(path, "version", "--short").returncode != 0:
        problem = f"{path} does not run"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"{problem}; under CI this is an error ({HOW_TO})", pytrace=False)
        pytest.skip(f"{problem}: {HOW_TO}")
    assert path is not None
    return path
