"""The agent options a pod needs: --snapshot, --termination-log, the command line, `agent copy`."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
from qwex_core.agent import image_name
from qwex_core.agent.copy import copy_bundle
from qwex_core.agent.copy import main as copy_main
from qwex_core.agent.main import COPY_VERB, command_line, copy_command, parse
from qwex_core.agent.record import TERMINATION_LIMIT, TRUNCATED, termination_message
from qwex_core.agent.unpack import SnapshotError, extract_checked, unpack
from qwex_core.snapshot import make_snapshot

AGENT = [sys.executable, "-m", "qwex_core.agent", "run", "--local"]


def record(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "run.json").read_text())
    return data


def agent(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AGENT, *args], capture_output=True, text=True, timeout=30, cwd=cwd)


def tar_gz(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in entries:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buf.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o644
    return info


# -- --snapshot ------------------------------------------------------------------


def test_snapshot_is_unpacked_into_the_working_directory_first(tmp_path: Path) -> None:
    project, pod = tmp_path / "project", tmp_path / "pod"
    (project / "pkg").mkdir(parents=True)
    (project / "pkg" / "data.txt").write_text("from the snapshot\n")
    (project / "go.sh").write_text("#!/bin/sh\ncat pkg/data.txt\n")
    (project / "go.sh").chmod(0o755)
    snapshot = tmp_path / "snapshot.tar.gz"
    snapshot.write_bytes(make_snapshot(project, limit=1 << 20).data)
    pod.mkdir()
    result = agent(
        "--run-dir", str(tmp_path / "r"), "--snapshot", str(snapshot), "--", "./go.sh", cwd=pod
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "from the snapshot\n"
    assert record(tmp_path / "r")["status"] == "succeeded"


def test_workdir_starts_the_command_in_a_folder_of_the_snapshot_without_a_shell(
    tmp_path: Path,
) -> None:
    """An image FROM scratch has no /bin/sh to `cd` with: the agent changes directory."""
    project, pod = tmp_path / "project", tmp_path / "pod"
    (project / "src").mkdir(parents=True)
    (project / "src" / "here.txt").write_text("x")
    snapshot = tmp_path / "snapshot.tar.gz"
    snapshot.write_bytes(make_snapshot(project, limit=1 << 20).data)
    pod.mkdir()
    here = [sys.executable, "-c", "import os; print(os.getcwd())"]
    run = ["--run-dir", str(tmp_path / "r"), "--snapshot", str(snapshot), "--workdir", "src"]
    result = agent(*run, "--", *here, cwd=pod)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{pod / 'src'}\n"
    outside = ["--run-dir", str(tmp_path / "r2"), "--snapshot", str(snapshot), "--workdir", ".."]
    result = agent(*outside, "--", *here, cwd=pod)
    assert result.returncode == 125
    assert record(tmp_path / "r2")["reason"] == "workdir .. is not a folder of the project"


def test_in_a_pod_a_commands_own_125_is_recorded_but_not_the_agents_exit_code(
    tmp_path: Path,
) -> None:
    """Exit code 125 of a pod's container means the agent could not run the command (the
    Job fails at once, without retries); the command's own 125 stays in the record."""
    log = tmp_path / "termination-log"
    run = ["--run-dir", str(tmp_path / "r"), "--termination-log", str(log)]
    result = agent(*run, "--", "sh", "-c", "exit 125", cwd=tmp_path)
    assert result.returncode == 1
    assert json.loads(log.read_bytes())["exit_code"] == 125
    assert record(tmp_path / "r")["exit_code"] == 125
    local = agent("--run-dir", str(tmp_path / "l"), "--", "sh", "-c", "exit 125", cwd=tmp_path)
    assert local.returncode == 125  # outside a pod, the command's code as it is


@pytest.mark.parametrize(
    ("archive", "why"),
    [
        (b"this is not a tar.gz", "cannot unpack the snapshot"),
        (tar_gz([(member("../evil"), b"x")]), "outside"),
        (tar_gz([(member("abs", tarfile.SYMTYPE, "/etc/passwd"), b"")]), "abs"),
        (tar_gz([(member("up", tarfile.SYMTYPE, "../.."), b"")]), "up"),
    ],
    ids=["garbage", "dotdot", "absolute-link", "escaping-link"],
)
def test_a_bad_snapshot_fails_the_run_with_a_reason(
    tmp_path: Path, archive: bytes, why: str
) -> None:
    (tmp_path / "bad.tar.gz").write_bytes(archive)
    pod = tmp_path / "pod"
    pod.mkdir()
    result = agent(
        "--run-dir",
        str(tmp_path / "r"),
        "--snapshot",
        str(tmp_path / "bad.tar.gz"),
        "--",
        "touch",
        "ran",
        cwd=pod,
    )
    assert result.returncode == 125
    assert "Traceback" not in result.stderr and why in result.stderr
    rec = record(tmp_path / "r")
    assert rec["status"] == "failed" and rec["exit_code"] == 125
    assert rec["reason"].startswith(f"cannot unpack the snapshot {tmp_path / 'bad.tar.gz'}")
    assert why in rec["reason"]
    assert not (pod / "ran").exists() and not (tmp_path / "evil").exists()
    assert why in (tmp_path / "r" / "stderr.log").read_text()


def test_a_missing_snapshot_is_named(tmp_path: Path) -> None:
    result = agent(
        "--run-dir",
        str(tmp_path / "r"),
        "--snapshot",
        "/nowhere.tar.gz",
        "--",
        "true",
        cwd=tmp_path,
    )
    assert result.returncode == 125
    assert record(tmp_path / "r")["reason"] == "snapshot /nowhere.tar.gz does not exist"


def test_checked_extraction_without_the_data_filter(tmp_path: Path) -> None:
    """The rules applied on Pythons whose tarfile has no `data` filter (Debian 12's 3.11.2)."""
    good = member("bin/tool")
    good.mode = 0o4775  # set-uid and group-write are dropped, the executable bit kept
    ok = tar_gz(
        [
            (member("bin", tarfile.DIRTYPE), b""),
            (good, b"#!/bin/sh\n"),
            (member("l", tarfile.SYMTYPE, "bin/tool"), b""),
        ]
    )
    dest = tmp_path / "ok"
    dest.mkdir()
    with tarfile.open(fileobj=io.BytesIO(ok), mode="r:gz") as tar:
        extract_checked(tar, tar.getmembers(), str(dest))
    assert stat.S_IMODE((dest / "bin/tool").stat().st_mode) == 0o755
    assert (dest / "l").is_symlink() and (dest / "l").read_text() == "#!/bin/sh\n"
    assert (dest / "bin/tool").stat().st_mtime > time.time() - 600
    sneaky = [
        [(member("../x"), b"x")],
        [(member("/etc/x"), b"x")],
        [(member("a", tarfile.SYMTYPE, "/etc"), b"")],
        [(member("s", tarfile.SYMTYPE, "."), b""), (member("t", tarfile.SYMTYPE, "s/.."), b"")],
        [(member("d", tarfile.SYMTYPE, ".."), b"")],
        [(member("fifo", tarfile.FIFOTYPE), b"")],
    ]
    for i, entries in enumerate(sneaky):
        dest = tmp_path / f"bad{i}"
        dest.mkdir()
        with (
            tarfile.open(fileobj=io.BytesIO(tar_gz(entries)), mode="r:gz") as tar,
            pytest.raises(tarfile.TarError),
        ):
            extract_checked(tar, tar.getmembers(), str(dest))
    assert sorted(os.listdir(tmp_path)) == ["bad0", "bad1", "bad2", "bad3", "bad4", "bad5", "ok"]


def test_unpack_reports_a_corrupt_archive(tmp_path: Path) -> None:
    (tmp_path / "t.tar.gz").write_bytes(tar_gz([(member("a"), b"x" * 1000)])[:-40])
    with pytest.raises(SnapshotError, match="cannot unpack the snapshot"):
        unpack(str(tmp_path / "t.tar.gz"), str(tmp_path))


# -- --termination-log -----------------------------------------------------------


def test_termination_log_holds_the_final_record(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    result = agent(
        "--run-dir",
        str(tmp_path / "r"),
        "--termination-log",
        str(log),
        "--",
        "sh",
        "-c",
        "exit 3",
        cwd=tmp_path,
    )
    assert result.returncode == 3
    final = json.loads(log.read_bytes())
    assert final == {k: v for k, v in record(tmp_path / "r").items() if k in final}
    assert final["status"] == "failed" and final["exit_code"] == 3
    assert final["reason"] == "exit code 3" and final["id"] == "r"
    assert final["started_at"] and final["finished_at"]
    assert b'", "' not in log.read_bytes() and b"\n" not in log.read_bytes()  # compact


def test_termination_log_stays_within_4_kib(tmp_path: Path) -> None:
    """A long cancel reason is cut, marked; status and times survive."""
    run_dir, log = tmp_path / "r", tmp_path / "termination-log"
    run_dir.mkdir()
    (run_dir / "cancel").write_text("cancelled because " + "é" * 20_000)
    result = agent(
        "--run-dir", str(run_dir), "--termination-log", str(log), "--", "true", cwd=tmp_path
    )
    assert result.returncode == 143
    data = log.read_bytes()
    assert len(data) <= TERMINATION_LIMIT
    final = json.loads(data)
    assert final["status"] == "cancelled" and final["finished_at"]
    assert final["reason"].startswith("cancelled because éé") and final["reason"].endswith(
        TRUNCATED
    )
    assert len(data) > TERMINATION_LIMIT - 100  # cut to fit, not emptied


def test_termination_message_drops_a_long_history_first() -> None:
    rec: dict[str, Any] = {
        "id": "x" * 36,
        "status": "succeeded",
        "reason": "exit code 0",
        "exit_code": 0,
        "history": [{"status": "queued", "at": "t", "reason": "q" * 100}] * 100,
        "spec": {"command": ["a" * 10_000]},
    }
    final = json.loads(termination_message(rec))
    assert final == {"id": "x" * 36, "status": "succeeded", "reason": "exit code 0", "exit_code": 0}
    short = dict(rec, history=rec["history"][:2])
    assert json.loads(termination_message(short))["history"] == short["history"]


def test_unwritable_termination_log_does_not_change_the_outcome(tmp_path: Path) -> None:
    result = agent(
        "--run-dir",
        str(tmp_path / "r"),
        "--termination-log",
        str(tmp_path / "no" / "dir"),
        "--",
        "true",
        cwd=tmp_path,
    )
    assert result.returncode == 0
    assert "cannot write the termination log" in result.stderr
    assert record(tmp_path / "r")["status"] == "succeeded"


# -- the command line ------------------------------------------------------------


def test_command_line_round_trips_through_parse() -> None:
    argv = command_line(
        ["/qwex/bin/qwex"],
        run_dir="/run",
        grace=2.5,
        command=["python", "-u", "x.py"],
        quiet=False,
        snapshot="/snap/s.tar.gz",
        termination_log="/dev/termination-log",
        workdir="src/sub",
    )
    assert argv[:3] == ["/qwex/bin/qwex", "run", "--local"] and "--quiet" not in argv
    opts = parse(argv[3:])
    assert opts.run_dir == "/run" and opts.grace == 2.5 and not opts.quiet
    assert opts.snapshot == "/snap/s.tar.gz" and opts.termination_log == "/dev/termination-log"
    assert opts.workdir == "src/sub"
    assert opts.command == ["python", "-u", "x.py"]
    plain = command_line(["qwex"], run_dir="/r", grace=10, command=["--help"])
    assert plain == [
        "qwex",
        "run",
        "--local",
        "--run-dir",
        "/r",
        "--quiet",
        "--grace",
        "10",
        "--",
        "--help",
    ]
    assert parse(plain[3:]).command == ["--help"] and parse(plain[3:]).snapshot is None


def test_copy_verb_and_image_name() -> None:
    assert copy_command(["/qwex/bin/qwex"], "/qwex-install") == [
        "/qwex/bin/qwex",
        "agent",
        "copy",
        "/qwex-install",
    ]
    assert COPY_VERB == ["agent", "copy"]
    assert image_name() == "qwex/agent:0.1.0" and image_name("2.0") == "qwex/agent:2.0"


# -- agent copy ------------------------------------------------------------------


def fake_bundle(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "lib" / "python3.11").mkdir(parents=True)
    (root / "bin" / "qwex").write_bytes(b"\x7fELF launcher")
    (root / "bin" / "qwex").chmod(0o755)
    (root / "lib" / "libpython.so").write_bytes(b"lib")
    (root / "lib" / "libpython.so").chmod(0o555)
    (root / "lib" / "python3.11" / "mod.pyc").write_bytes(b"pyc")
    (root / "manifest.json").write_text("{}")
    return root


def test_copy_bundle_keeps_modes_and_replaces_an_earlier_copy(tmp_path: Path) -> None:
    bundle, dest = fake_bundle(tmp_path / "qwex"), tmp_path / "install"
    dest.mkdir()
    (dest / "bin").mkdir()
    (dest / "bin" / "stale").write_text("from a restarted init container")
    assert copy_bundle(str(bundle), str(dest)) == ["lib", "manifest.json", "bin"]
    assert sorted(os.listdir(dest)) == ["bin", "lib", "manifest.json"]
    assert os.listdir(dest / "bin") == ["qwex"]
    assert stat.S_IMODE((dest / "bin" / "qwex").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "lib" / "libpython.so").stat().st_mode) == 0o555
    assert (dest / "lib" / "python3.11" / "mod.pyc").read_bytes() == b"pyc"


def test_copy_main_usage_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = fake_bundle(tmp_path / "qwex")
    assert copy_main([], str(bundle)) == 2
    assert copy_main([str(tmp_path / "dest")], str(bundle)) == 0
    (tmp_path / "file").write_text("not a directory")
    assert copy_main([str(tmp_path / "file")], str(bundle)) == 125
    err = capsys.readouterr().err
    assert "usage: qwex agent copy DEST" in err
    assert f"cannot copy the agent from {bundle} to {tmp_path / 'file'}" in err
