"""`qwex logs` replays stdout and stderr in the order the command wrote them (issue 18.3):
one merged order for `--tail`, `-t/--timestamps` and `--since`, the bytes exact."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from cli_support import QWEX, Qwex

REPRODUCER = "echo 1; sleep .1; echo 2 >&2; sleep .1; echo 3; sleep .1; echo 4 >&2"
STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) ", re.M)


def merged(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """`qwex ARGS` with its stdout and stderr on one pipe, as a terminal shows them."""
    return subprocess.run(
        [QWEX, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60, cwd=cwd
    )


def output(shown: bytes) -> bytes:
    """What the command wrote of what qwex showed: without qwex's own `qwex:` lines."""
    return b"".join(line for line in shown.splitlines(True) if not line.startswith(b"qwex: "))


def only_run(qwex: Qwex) -> str:
    runs = json.loads(qwex("list", "--json", check=True).stdout)
    assert len(runs) == 1
    return str(runs[0]["id"])


def stepped_run(qwex: Qwex, project: Path, steps: list[tuple[str, str]]) -> str:
    """A run that writes each (stream, line) of `steps` only once the one before is in its
    log file: its order is known without any sleep."""
    script = []
    for number, (stream, text) in enumerate(steps):
        script.append(f"until [ -e {project}/go{number} ]; do sleep 0.01; done")
        script.append(f"echo {text}" + (" >&2" if stream == "stderr" else ""))
    started = qwex("run", "-d", "--no-trunc", "--", "sh", "-c", "; ".join(script), check=True)
    run_id = started.stdout.strip()
    run_dir = project / ".qwex" / "runs" / run_id
    for number, (stream, text) in enumerate(steps):
        (project / f"go{number}").touch()
        log = run_dir / f"{stream}.log"
        deadline = time.monotonic() + 30
        while f"{text}\n" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, f"{text} never reached {log}"
            time.sleep(0.01)
    return run_id


def test_logs_replay_the_order_the_command_wrote(project: Path, qwex: Qwex) -> None:
    live = merged("run", "--", "sh", "-c", REPRODUCER, cwd=project)
    assert live.returncode == 0 and output(live.stdout) == b"1\n2\n3\n4\n"
    run_id = only_run(qwex)
    assert merged("logs", run_id).stdout == b"1\n2\n3\n4\n"
    assert merged("logs", "-f", run_id).stdout.startswith(b"1\n2\n3\n4\n")
    apart = qwex("logs", run_id)  # each stream still goes to its own output
    assert apart.stdout == "1\n3\n" and apart.stderr == "2\n4\n"
    assert json.loads(qwex("logs", "--json", run_id).stdout) == {
        "stdout": "1\n3\n",
        "stderr": "2\n4\n",
    }


def test_tail_counts_lines_of_both_streams(project: Path, qwex: Qwex) -> None:
    steps = [("stdout", "o1"), ("stderr", "e1"), ("stdout", "o2"), ("stderr", "e2")]
    run_id = stepped_run(qwex, project, steps)
    qwex("logs", "-f", run_id, check=True)
    assert merged("logs", "--tail", "2", run_id).stdout == b"o2\ne2\n"
    assert merged("logs", "-n", "3", run_id).stdout == b"e1\no2\ne2\n"
    assert merged("logs", "--tail", "9", run_id).stdout == b"o1\ne1\no2\ne2\n"
    assert merged("logs", "--tail", "0", run_id).stdout == b""
    assert merged("logs", "--tail", "1", "--stream", "stdout", run_id).stdout == b"o2\n"
    assert merged("logs", "-f", "--tail", "3", run_id).stdout.startswith(b"e1\no2\ne2\n")


def test_timestamps_and_since(project: Path, qwex: Qwex) -> None:
    steps = [("stdout", "a"), ("stderr", "b"), ("stdout", "c"), ("stderr", "d")]
    run_id = stepped_run(qwex, project, steps)
    qwex("logs", "-f", run_id, check=True)
    stamped = merged("logs", "-t", run_id).stdout.decode()
    lines = stamped.splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["a", "b", "c", "d"]
    stamps = [STAMP.match(line).group(1) for line in lines]  # type: ignore[union-attr]
    assert stamps == sorted(stamps)
    record = json.loads(qwex("status", "--json", run_id).stdout)
    started = datetime.fromisoformat(record["started_at"])
    finished = datetime.fromisoformat(record["finished_at"])
    for stamp in stamps:
        assert started <= datetime.fromisoformat(stamp) <= finished
    apart = qwex("logs", "--timestamps", run_id)
    assert STAMP.sub("", apart.stdout) == "a\nc\n" and STAMP.sub("", apart.stderr) == "b\nd\n"
    # --since takes a time as -t prints it (and includes that line), or a duration.
    assert merged("logs", "--since", stamps[2], run_id).stdout == b"c\nd\n"
    assert merged("logs", "--since", stamps[1], "--tail", "1", run_id).stdout == b"d\n"
    assert merged("logs", "--since", stamps[1], "--tail", "9", run_id).stdout == b"b\nc\nd\n"
    assert merged("logs", "--since", "1h30m", run_id).stdout == b"a\nb\nc\nd\n"
    assert merged("logs", "-f", "--since", stamps[3], "-t", run_id).stdout.startswith(
        f"{stamps[3]} d\n".encode()
    )
    later = datetime.fromisoformat(stamps[3]).timestamp() + 5
    assert merged("logs", "--since", str(later), run_id).stdout == b""


@pytest.mark.parametrize("bad", ["yesterday", "10x", "2026-13-01T00:00:00Z", ""])
def test_since_refuses_what_is_not_a_time(project: Path, qwex: Qwex, bad: str) -> None:
    qwex("run", "--", "true", check=True)
    result = qwex("logs", "--since", bad, only_run(qwex))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--since" in result.stderr and "10m" in result.stderr


def test_bytes_stay_exact(project: Path, qwex: Qwex) -> None:
    """Binary output, no final newline, CRs and a line split over many writes: the log
    files and `qwex logs` hold exactly the bytes written, per stream."""
    script = (
        "import os, time\n"
        "out = bytes(range(256)) * 3 + b'\\r\\npartial'\n"
        "err = b'\\x00\\xff\\xfe no newline'\n"
        "for i in range(0, len(out), 97):\n"
        "    os.write(1, out[i:i + 97]); os.write(2, err[i // 97 % len(err):][:1])\n"
        "os.write(2, err)\n"
    )
    (project / "spew.py").write_text(script)
    result = subprocess.run(
        [QWEX, "run", "--", sys.executable, "spew.py"], capture_output=True, cwd=project
    )
    assert result.returncode == 0
    run_id = only_run(qwex)
    out = bytes(range(256)) * 3 + b"\r\npartial"
    err_bytes = b"\x00\xff\xfe no newline"
    err = (
        b"".join(err_bytes[i // 97 % len(err_bytes) :][:1] for i in range(0, len(out), 97))
        + err_bytes
    )
    run_dir = project / ".qwex" / "runs" / run_id
    assert (run_dir / "stdout.log").read_bytes() == out
    assert (run_dir / "stderr.log").read_bytes() == err
    assert result.stdout == out
    shown = subprocess.run([QWEX, "logs", run_id], capture_output=True, cwd=project)
    assert shown.stdout == out and shown.stderr == err
    followed = subprocess.run([QWEX, "logs", "-f", run_id], capture_output=True, cwd=project)
    assert followed.stdout == out and followed.stderr.startswith(err)
    tailed = subprocess.run(
        [QWEX, "logs", "--tail", "1", "--stream", "stdout", run_id], capture_output=True
    )
    assert tailed.stdout == b"partial" and tailed.stderr == b""
    stamped = subprocess.run([QWEX, "logs", "-t", run_id], capture_output=True)
    assert STAMP.sub("", stamped.stdout.decode("latin-1")).encode("latin-1") == out


def test_a_run_recorded_before_the_order_was_kept(project: Path, qwex: Qwex) -> None:
    """A run folder with no write-order index (an older qwex made it) is shown as before:
    stdout, then stderr; `--tail` counts the last lines of that."""
    qwex("run", "--", "sh", "-c", REPRODUCER, check=True)
    run_id = only_run(qwex)
    run_dir = project / ".qwex" / "runs" / run_id
    index = [p for p in run_dir.iterdir() if p.name not in {"stdout.log", "stderr.log"}]
    for path in index:
        if path.suffix == ".idx":
            os.unlink(path)
    assert merged("logs", run_id).stdout == b"1\n3\n2\n4\n"
    assert merged("logs", "--tail", "3", run_id).stdout == b"3\n2\n4\n"
    for follow in ([], ["-f"]):
        stamped = qwex("logs", *follow, "-t", run_id)
        assert stamped.stdout == "1\n3\n" and "no write times" in stamped.stderr
