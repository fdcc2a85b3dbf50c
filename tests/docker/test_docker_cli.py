"""The `qwex` command line with the docker backend, end to end, as a user runs it in shells."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from docker_support import BUSYBOX, PYTHON, read_record, wait_gone, wait_until

pytestmark = pytest.mark.docker

QWEX = str(Path(sys.executable).parent / "qwex")
Qwex = Callable[..., subprocess.CompletedProcess[str]]
DOCKER = ["-b", "docker", "--image", BUSYBOX]


def run_id_of(project: Path) -> str:
    (name,) = os.listdir(project / ".qwex" / "runs")
    return name


def leftovers(api: Any, run_id: str) -> list[Any]:
    found: list[Any] = api.containers(all=True, filters={"label": f"qwex.run-id={run_id}"})
    return found


def test_seed_example_with_a_project_script(
    project: Path, qwex: Qwex, docker_ready: Any, docker_api: Any
) -> None:
    (project / "script.py").write_text("import sys\nprint('hi from', sys.argv[0])\nsys.exit(3)\n")
    result = qwex("run", "--backend", "docker", "--image", PYTHON, "python script.py")
    assert result.returncode == 3, result.stderr
    assert result.stdout == "hi from script.py\n"
    assert "exit code 3" in result.stderr
    wait_gone(docker_api, run_id_of(project))


def test_qwex_help_does_not_import_docker(project: Path, qwex: Qwex) -> None:
    code = (
        "import sys; from qwex_core.cli import main; main(['--help']); "
        "print(sorted(m for m in sys.modules if m == 'docker' or m.startswith(('docker.', "
        "'requests', 'qwex_docker.runner'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=project
    )
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout + result.stderr
    assert "docker" in qwex("backends", check=True).stdout


def test_detach_status_and_reattach_from_another_shell(
    project: Path, qwex: Qwex, docker_ready: Any, docker_api: Any
) -> None:
    started = qwex(
        "run",
        "-d",
        "--no-trunc",
        *DOCKER,
        "--",
        "sh",
        "-c",
        "echo one; until [ -e go ]; do sleep 0.05; done; echo two >&2; exit 5",
        check=True,
    )
    run_id = started.stdout.strip()
    status = json.loads(qwex("status", run_id[:13], "--json", check=True).stdout)
    assert status["status"] in ("pending", "running") and status["backend"] == "docker"
    follow = subprocess.Popen(
        [QWEX, "logs", "-f", run_id[:13]], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    (project / "go").touch()  # the command goes on only now, while another shell follows it
    out, err = follow.communicate(timeout=60)
    assert out == "one\n" and "two\n" in err
    final = json.loads(qwex("status", run_id, "--json", check=True).stdout)
    assert (final["status"], final["exit_code"]) == ("failed", 5)
    wait_gone(docker_api, run_id)
    again = qwex("logs", run_id, check=True)  # logs survive the container
    assert again.stdout == "one\n"


def test_cancel_from_another_shell(
    project: Path, qwex: Qwex, docker_ready: Any, docker_api: Any
) -> None:
    run_id = qwex(
        "run",
        "-d",
        "--no-trunc",
        *DOCKER,
        "--grace-period",
        "600",
        "--",
        "sh",
        "-c",
        "trap 'echo got TERM; exit 143' TERM; echo started; while true; do sleep 0.1; done",
        check=True,
    ).stdout.strip()
    wait_until(
        lambda: "started" in (project / ".qwex" / "runs" / run_id / "stdout.log").read_text(),
        what="the command to start",
    )
    # The grace period outlasts the test: the run can only end by the command's own trap,
    # so the SIGTERM reached it and its exit (143, no SIGKILL) is what the record shows.
    result = qwex("cancel", run_id, check=True)
    assert result.stdout.split()[:2] == [run_id[-12:], "cancelled"]
    record = read_record(project, run_id)
    assert record["reason"] == "cancelled by user"
    assert (record["exit_code"], record.get("signal")) == (143, None), record
    assert (project / ".qwex" / "runs" / run_id / "stdout.log").read_text() == "started\ngot TERM\n"
    wait_gone(docker_api, run_id)


def test_ctrl_c_cancels_the_foreground_run(
    project: Path, docker_ready: Any, docker_api: Any
) -> None:
    proc = subprocess.Popen(
        [QWEX, "run", *DOCKER, "--", "sh", "-c", "echo started; sleep 60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "started\n"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    run_id = run_id_of(project)
    record = read_record(project, run_id)
    assert record["status"] == "cancelled", err
    assert "cancelling run" in err
    assert proc.returncode == 130
    wait_gone(docker_api, run_id)


def test_a_killed_cli_leaves_no_untracked_container(
    project: Path, qwex: Qwex, docker_ready: Any, docker_api: Any
) -> None:
    proc = subprocess.Popen(
        [QWEX, "run", *DOCKER, "--", "sh", "-c", "echo a; sleep 2; echo b"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "a\n"
    proc.kill()
    proc.wait()
    run_id = run_id_of(project)
    assert leftovers(docker_api, run_id), "the run outlives the CLI"
    follow = qwex("logs", "-f", run_id, check=True)
    assert follow.stdout == "a\nb\n"
    assert read_record(project, run_id)["status"] == "succeeded"
    wait_gone(docker_api, run_id)


def test_missing_image_and_command_not_found(project: Path, qwex: Qwex, docker_ready: Any) -> None:
    missing = qwex("run", "-b", "docker", "--image", "qwex-test/absent:1", "--", "true")
    assert missing.returncode == 1
    assert "image not found: qwex-test/absent:1 is not present locally" in missing.stderr
    assert "--pull" in missing.stderr
    notfound = qwex("run", *DOCKER, "--", "qwex-no-such-tool", "--flag")
    assert notfound.returncode == 127
    assert "command not found: qwex-no-such-tool" in notfound.stderr
    statuses = {r["reason"] for r in json.loads(qwex("list", "--json", check=True).stdout)}
    assert any("image not found" in (s or "") for s in statuses)


def test_oom_killed_shows_in_status(project: Path, qwex: Qwex, docker_ready: Any) -> None:
    result = qwex(
        "run",
        "-b",
        "docker",
        "--image",
        PYTHON,
        "--memory",
        "48Mi",
        "--",
        "python",
        "-c",
        "x = b'x' * (500 * 2**20)",
    )
    assert result.returncode == 137
    status = qwex("status", run_id_of(project), check=True).stdout
    assert "OOMKilled" in status


def test_daemon_down_is_a_clear_message(project: Path, qwex: Qwex, docker_ready: Any) -> None:
    result = qwex(
        "run", *DOCKER, "--", "true", env={"QWEX_DOCKER_BASE_URL": f"unix://{project}/nothing.sock"}
    )
    assert result.returncode == 1
    assert f"the Docker daemon is not running: no socket at {project}/nothing.sock" in result.stderr
    assert read_record(project, run_id_of(project))["status"] == "failed"


def test_socket_without_permission_is_a_clear_message(
    project: Path, tmp_path: Path, docker_ready: Any
) -> None:
    """A socket the user may not open (a real EACCES from the kernel, capabilities dropped)."""
    sock_path = tmp_path / "locked.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    server.listen()
    sock_path.chmod(0)
    try:
        argv = [QWEX, "run", *DOCKER, "--", "true"]
        if os.geteuid() == 0:  # root passes permission checks: drop every capability first
            argv = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", *argv]
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            cwd=project,
            timeout=60,
            env={**os.environ, "QWEX_DOCKER_BASE_URL": f"unix://{sock_path}"},
        )
    finally:
        server.close()
    assert result.returncode == 1, result.stderr
    assert f"permission denied on the Docker socket {sock_path}" in result.stderr
    assert "docker` group" in result.stderr


def test_a_run_that_ends_unwatched_leaves_no_container(
    project: Path, qwex: Qwex, docker_ready: Any, docker_api: Any
) -> None:
    run_id = qwex("run", "-d", "--no-trunc", *DOCKER, "--", "true", check=True).stdout.strip()
    wait_until(lambda: read_record(project, run_id)["status"] == "succeeded", what="the end")
    wait_gone(docker_api, run_id)


def test_backend_image_and_docker_settings_from_a_profile(
    project: Path, qwex: Qwex, docker_ready: Any, real_network: str
) -> None:
    # Outside the profile the project's network has a real interface (CI's default network
    # has only lo, as `none` has): the profile's `network = "none"` is seen to take it away.
    (project / "qwex.toml").write_text(
        f'[docker]\nnetwork = "{real_network}"\n'
        f'[profiles.box]\nbackend = "docker"\nimage = "{BUSYBOX}"\n'
        '[profiles.box.docker]\nnetwork = "none"\n'
    )
    interfaces = ["--", "sh", "-c", "ls /sys/class/net"]
    plain = qwex("run", *DOCKER, *interfaces)
    assert (plain.returncode, plain.stdout.split()) == (0, ["eth0", "lo"]), plain.stderr
    result = qwex("run", "-p", "box", *interfaces)
    assert (result.returncode, result.stdout.split()) == (0, ["lo"]), result.stderr
    (project / "qwex.toml").write_text("[docker]\nnetwrk = 'none'\n")
    bad = qwex("run", *DOCKER, "--", "true")
    assert bad.returncode == 1
    assert "qwex.toml" in bad.stderr and "docker.netwrk" in bad.stderr


def test_run_from_a_subdirectory_starts_there_in_the_container(
    project: Path, qwex: Qwex, docker_ready: Any
) -> None:
    sub = project / "src"
    sub.mkdir()
    (sub / "data.txt").write_text("found\n")
    result = qwex("run", *DOCKER, "--", "sh", "-c", "pwd; cat data.txt", cwd=sub)
    assert (result.returncode, result.stdout) == (0, "/workspace/src\nfound\n"), result.stderr


def test_logs_replay_the_order_the_command_wrote(project: Path, docker_ready: Any) -> None:
    """Issue 18.3 on Docker: the agent in the container keeps the write order, so `qwex
    logs` afterwards shows what the terminal showed, `--tail` counts both streams, `-t`
    stamps each line; each stream still goes to its own output, bytes exact."""
    script = "echo 1; sleep .1; echo 2 >&2; sleep .1; echo 3; sleep .1; echo 4 >&2"

    def merged(*args: str) -> bytes:
        shown = subprocess.run(
            [QWEX, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=project
        )
        assert shown.returncode == 0, shown.stdout
        return b"".join(
            line for line in shown.stdout.splitlines(True) if not line.startswith(b"qwex: ")
        )

    assert merged("run", *DOCKER, "--", "sh", "-c", script) == b"1\n2\n3\n4\n"
    run_id = run_id_of(project)
    assert merged("logs", run_id) == b"1\n2\n3\n4\n"
    assert merged("logs", "--tail", "3", run_id) == b"2\n3\n4\n"
    stamped = merged("logs", "-t", run_id).decode().splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["1", "2", "3", "4"]
    assert merged("logs", "--since", stamped[2].split(" ")[0], run_id) == b"3\n4\n"
    apart = subprocess.run([QWEX, "logs", run_id], capture_output=True, cwd=project)
    assert apart.stdout == b"1\n3\n" and apart.stderr == b"2\n4\n"
