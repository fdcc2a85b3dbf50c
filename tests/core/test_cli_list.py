"""`qwex list` fits the terminal, lists damaged records as such, filters without plugins;
an unreadable run is removed as its hint says and its logs still print."""

from __future__ import annotations

import json
from pathlib import Path

from cli_support import Qwex


def _records(qwex: Qwex) -> list[dict[str, object]]:
    out: list[dict[str, object]] = json.loads(qwex("list", "--json", check=True).stdout)
    return out


def test_list_fits_80_columns_with_the_name_before_the_command(project: Path, qwex: Qwex) -> None:
    long = "x" * 120
    qwex("run", "--name", "train-lr-0.01", "--", "echo", long, check=True)
    qwex("run", "--", "true", check=True)
    bad = _records(qwex)[0]["id"]
    assert isinstance(bad, str)
    (project / ".qwex" / "runs" / bad / "run.json").write_text("{")
    listed = qwex("list", env={"COLUMNS": "80"}, check=True)
    lines = listed.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    head = lines[0].split()
    assert head.index("NAME") < head.index("COMMAND")
    assert "train-lr-0.01" in lines[2] and "echo xxx" in lines[2]
    assert "unreadable" in lines[1] and len(lines) == 3
    wide = qwex("list", "--no-trunc", env={"COLUMNS": "80"}, check=True)
    assert long in wide.stdout  # --no-trunc cuts nothing


def test_a_record_with_a_wrong_type_is_unreadable(project: Path, qwex: Qwex) -> None:
    qwex("run", "--", "echo", "kept", check=True)
    run_id = _records(qwex)[0]["id"]
    assert isinstance(run_id, str)
    record = project / ".qwex" / "runs" / run_id / "run.json"
    data = json.loads(record.read_text())
    data["id"] = 5
    record.write_text(json.dumps(data))
    rows = _records(qwex)
    assert [(r["id"], r["status"]) for r in rows] == [(run_id, "unreadable")]
    assert str(record) in str(rows[0]["reason"])
    # The hint of an unreadable record works as it says; its intact logs still print.
    status = qwex("status", run_id[-12:])
    assert status.returncode == 1 and str(record) in status.stderr
    logs = qwex("logs", run_id[-12:])
    assert logs.returncode == 0 and logs.stdout == "kept\n"
    assert str(record) in logs.stderr
    hint = status.stderr.split("`")[1]
    assert hint.startswith("qwex rm")
    assert qwex(*hint.split()[1:], check=True).returncode == 0
    assert _records(qwex) == []


def test_a_backend_filter_needs_no_plugin(project: Path, qwex: Qwex) -> None:
    qwex("run", "--", "echo", "was-docker", check=True)
    run_id = _records(qwex)[0]["id"]
    assert isinstance(run_id, str)
    record = project / ".qwex" / "runs" / run_id / "run.json"
    data = json.loads(record.read_text())
    data["backend"] = "docker"
    record.write_text(json.dumps(data))
    qwex("run", "--", "true", check=True)
    no_docker = {"QWEX_DISABLE_PLUGINS": "docker"}
    assert "docker" not in qwex("backends", env=no_docker, check=True).stdout
    listed = qwex("list", "-q", "--no-trunc", "-b", "docker", env=no_docker)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == [run_id]
    filtered = qwex("list", "-q", "--no-trunc", "-f", "backend=docker", env=no_docker)
    assert filtered.stdout.split() == [run_id]
    nothing = qwex("list", "-b", "dokcer", env=no_docker)
    assert nothing.returncode == 0 and "no runs match" in nothing.stderr
    assert "dokcer" in nothing.stderr and "not installed" in nothing.stderr
