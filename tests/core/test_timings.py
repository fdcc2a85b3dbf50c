"""`QWEX_TIMINGS`: where one `qwex run` spends its time, phase by phase, only when asked."""

from __future__ import annotations

from pathlib import Path

from cli_support import Qwex

PHASES = ["cli-start", "job-built", "record-created", "backend-started", "record-final", "exit"]


def phases(text: str) -> list[tuple[str, float, float]]:
    """(phase, wall seconds, CPU seconds) of each `qwex-timing` line."""
    found = []
    for line in text.splitlines():
        if line.startswith("qwex-timing "):
            _, phase, wall, cpu = line.split()
            found.append((phase, float(wall), float(cpu)))
    return found


def test_timings_on_stderr_name_each_phase_in_order(project: Path, qwex: Qwex) -> None:
    result = qwex("run", "--", "echo", "hi", env={"QWEX_TIMINGS": "1"}, check=True)
    assert result.stdout == "hi\n"  # the command's output is untouched
    seen = phases(result.stderr)
    assert [phase for phase, _, _ in seen] == PHASES
    walls = [wall for _, wall, _ in seen]
    cpus = [cpu for _, _, cpu in seen]
    assert walls == sorted(walls) and cpus == sorted(cpus)
    assert walls[-1] - walls[0] < 60


def test_timings_append_to_a_file_and_nothing_without_them(project: Path, qwex: Qwex) -> None:
    log = project / "timings.txt"
    for _ in range(2):
        qwex("run", "--", "true", env={"QWEX_TIMINGS": str(log)}, check=True)
    assert [phase for phase, _, _ in phases(log.read_text())] == PHASES * 2
    quiet = qwex("run", "--", "true", check=True)
    assert "qwex-timing" not in quiet.stderr
