"""The conformance suite rejects runners that do not do what it names: run against the
runners of `broken_runners.py` (one starts nothing, one ignores cancels and signals, one
never records an end, one whose probe lies), every case fails for at least one of them,
each of them fails at least one case, and the working local runner passes every case."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import pytest
from qwex_core.testing import RunnerConformance

HERE = Path(__file__).resolve().parent
CASES = sorted(name for name in dir(RunnerConformance) if name.startswith("test_"))
BROKEN = ["TestStartsNothing", "TestIgnoresCancel", "TestNeverRecordsEnd", "TestLyingProbe"]
CONTROL = "TestControl"

pytestmark = pytest.mark.timeout(1200)
SLOW = pytest.mark.slow
"""On the tests reading `outcomes`: its pytest waits out the suite's timeout (20 s) in each
case a broken runner never ends, two minutes in all, so `nox -s unit` leaves them out."""

Outcomes = dict[str, dict[str, str]]
"""runner's suite class -> case -> passed, failed or skipped."""


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Outcomes:
    """Each case's outcome for each runner, from a pytest of its own run over the file."""
    report = tmp_path_factory.mktemp("conformance") / "report.xml"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(HERE / "broken_runners.py"),
            "-q",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
        ],
        cwd=HERE.parents[1],
        env={**os.environ, "PYTHONPATH": str(HERE)},
        capture_output=True,
        text=True,
        timeout=1100,
    )
    assert report.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    found: Outcomes = defaultdict(dict)
    for case in ET.parse(report).iter("testcase"):
        suite = case.get("classname", "").rsplit(".", 1)[-1]
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        elif case.find("skipped") is not None:
            outcome = "skipped"
        else:
            outcome = "passed"
        found[suite][case.get("name", "")] = outcome
    return found


def table(outcomes: Outcomes) -> str:
    suites = [CONTROL, *BROKEN]
    rows = [" ".join(f"{s.removeprefix('Test')[:14]:>14}" for s in suites)]
    for case in CASES:
        cells = " ".join(f"{outcomes[s].get(case, 'missing'):>14}" for s in suites)
        rows.append(f"{cells}  {case}")
    return "\n".join(rows)


@SLOW
def test_the_working_runner_passes_every_case(outcomes: Outcomes) -> None:
    """The control: with the same hooks and timeout, the local runner passes, so a failure
    of a broken runner is the suite seeing what is broken."""
    assert outcomes[CONTROL] == dict.fromkeys(CASES, "passed"), table(outcomes)


@SLOW
def test_each_broken_runner_fails_a_case(outcomes: Outcomes) -> None:
    accepted = [s for s in BROKEN if "failed" not in outcomes[s].values()]
    assert not accepted, f"the suite accepts {accepted}:\n{table(outcomes)}"


@SLOW
def test_a_look_that_sees_nothing_is_refused(outcomes: Outcomes) -> None:
    """A `still_running` that never sees anything fails the cases that wait for nothing to
    be left (it must first see the running run), and only those."""
    failed = sorted(c for c, outcome in outcomes["TestBlindLook"].items() if outcome != "passed")
    assert failed == [
        "test_a_vanished_supervisor_is_recorded_lost",
        "test_cancel_stops_the_command",
    ], table(outcomes)


@SLOW
def test_each_case_fails_for_a_broken_runner(outcomes: Outcomes) -> None:
    """No case passes for every broken runner: each proves something of the backend."""
    blind = [c for c in CASES if all(outcomes[s].get(c) == "passed" for s in BROKEN)]
    assert not blind, f"these cases pass for every broken runner: {blind}\n{table(outcomes)}"


OPTING_OUT = """
import test_local_conformance as local
from qwex_core.testing import not_applicable


class TestNotApplicable(local.TestLocalRunner):
    def failing_job(self, service):
        not_applicable("every job this backend accepts starts")


class TestWrittenBeforeFailingJob(local.TestLocalRunner):
    def failing_job(self, service):
        return None
"""


def test_a_backend_opts_out_of_the_start_failure_case_or_is_warned(tmp_path: Path) -> None:
    """`not_applicable(why)` reports the case skipped with why; a suite written before
    `failing_job` mattered still passes it, warned that it proves nothing."""
    (tmp_path / "test_opting_out.py").write_text(OPTING_OUT)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(tmp_path / "test_opting_out.py"),
            "-k",
            "start_failure",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            "-p",
            "qwex_core.testing",
            "-rs",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(HERE)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "1 passed, 1 skipped" in done.stdout, done.stdout[-3000:]
    assert "not applicable to this backend: every job this backend accepts starts" in done.stdout
    assert "DeprecationWarning: TestWrittenBeforeFailingJob.failing_job() returns None" in (
        done.stdout
    )
