"""Messages name the thing: the valid keys where the bad one is, the variable a bad value
came from, the table to define, the typo in a variable's name; usage errors exit 2."""

from __future__ import annotations

from pathlib import Path

from cli_support import Qwex


def test_messages_name_the_thing(project: Path, qwex: Qwex) -> None:
    resource = qwex("run", "--", "true", env={"QWEX_RESOURCES_CPUS": "2"})
    assert resource.returncode == 1
    assert "cpu, gpu, memory" in resource.stderr and "QWEX_RESOURCES_CPUS" in resource.stderr
    (project / "qwex.toml").write_text("[resources]\ncpus = 2\n")
    in_file = qwex("run", "--", "true")
    assert in_file.returncode == 1 and "cpu, gpu, memory" in in_file.stderr
    (project / "qwex.toml").write_text("")

    bad_value = qwex("run", "--", "true", env={"QWEX_GRACE_PERIOD": "abc"})
    assert bad_value.returncode == 1 and "QWEX_GRACE_PERIOD" in bad_value.stderr

    profile = qwex("run", "-p", "nope", "--", "true")
    assert profile.returncode == 1
    assert "[profiles.nope]" in profile.stderr and "tool.qwex" not in profile.stderr
    assert "qwex.toml" in profile.stderr

    typo = qwex("run", "--", "true", env={"QWEX_GRACE": "3"})
    assert typo.returncode == 0
    warning = [line for line in typo.stderr.splitlines() if "QWEX_GRACE" in line]
    assert len(warning) == 1 and "QWEX_GRACE_PERIOD" in warning[0], typo.stderr

    memory = qwex("run", "--memory", "512x", "--", "true")
    assert memory.returncode == 2 and "512x" in memory.stderr and "--memory" in memory.stderr
