"""The local agent is Python started in the user's project: the project's own modules (a
`json.py` beside the code, a `--env PYTHONPATH` of the job's) must never reach it, or every
run ends `lost` before its command starts."""

from __future__ import annotations

from pathlib import Path

from cli_support import Qwex

SHADOW = 'raise SystemExit("the project\'s own {name}.py was imported by the agent")\n'


def test_a_project_module_named_like_the_standard_librarys_does_not_stop_a_run(
    project: Path, qwex: Qwex
) -> None:
    for name in ("json", "signal", "subprocess", "types"):
        (project / f"{name}.py").write_text(SHADOW.format(name=name))
    result = qwex("run", "--", "sh", "-c", "echo ran in $(pwd)")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"ran in {project}\n"


def test_a_jobs_pythonpath_reaches_its_command_not_the_agent(project: Path, qwex: Qwex) -> None:
    src = project / "src"
    src.mkdir()
    (src / "copy.py").write_text(SHADOW.format(name="copy"))
    (src / "json.py").write_text(SHADOW.format(name="json"))
    result = qwex("run", "-e", f"PYTHONPATH={src}", "--", "sh", "-c", 'echo "$PYTHONPATH"')
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{src}\n"
