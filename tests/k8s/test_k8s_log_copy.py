"""Copying a pod's log into the run's log: only log bytes, resumed exactly (offline: the
copy's rules over byte chunks as the API server streams them)."""

from __future__ import annotations

import json
from pathlib import Path

from qwex_k8s.logs import STATE_FILE, append_new

ERROR = b"unable to retrieve container logs for containerd://" + b"ab12" * 16


def copy(run_dir: Path, *chunks: bytes, pod: str = "p1") -> bool:
    state = {}
    if (run_dir / STATE_FILE).exists():
        state = json.loads((run_dir / STATE_FILE).read_text())
    with open(run_dir / "stdout.log", "r+b") as out:
        return append_new(iter(chunks), out, state, pod, run_dir, None)


def test_a_resumed_copy_appends_only_what_is_new(tmp_path: Path) -> None:
    (tmp_path / "stdout.log").write_bytes(b"")
    assert copy(tmp_path, b"line 1\nli")
    assert copy(tmp_path, b"line 1\n", b"line 2\nline 3\n")
    assert (tmp_path / "stdout.log").read_bytes() == b"line 1\nline 2\nline 3\n"


def test_an_error_text_in_place_of_the_log_is_never_appended(tmp_path: Path) -> None:
    """A container being removed: the API server answers with its error as the body. The
    copier had 30 bytes; it used to skip 30 bytes of the error and append the rest."""
    (tmp_path / "stdout.log").write_bytes(b"")
    assert copy(tmp_path, b"x" * 30)
    assert not copy(tmp_path, ERROR)
    assert (tmp_path / "stdout.log").read_bytes() == b"x" * 30
    assert not copy(tmp_path, b"x" * 10)  # shorter than what was copied: not the log
    assert copy(tmp_path, b"x" * 30, b"more\n")
    assert (tmp_path / "stdout.log").read_bytes() == b"x" * 30 + b"more\n"


def test_an_error_text_as_the_first_answer_is_not_appended(tmp_path: Path) -> None:
    (tmp_path / "stdout.log").write_bytes(b"")
    assert not copy(tmp_path, ERROR[:20], ERROR[20:] + b"\n")
    assert (tmp_path / "stdout.log").read_bytes() == b""


def test_a_log_that_only_starts_like_the_error_is_kept(tmp_path: Path) -> None:
    (tmp_path / "stdout.log").write_bytes(b"")
    text = b"unable to retrieve container logs for my-service, retrying\n"
    assert copy(tmp_path, text[:10], text[10:])
    assert (tmp_path / "stdout.log").read_bytes() == text


def test_two_pods_of_one_run_each_resume_their_own_part(tmp_path: Path) -> None:
    (tmp_path / "stdout.log").write_bytes(b"")
    assert copy(tmp_path, b"first try\n", pod="a")
    assert copy(tmp_path, b"second ", pod="b")
    assert copy(tmp_path, b"first try\n", pod="a")  # nothing new of the first pod
    assert not copy(tmp_path, ERROR, pod="a")
    assert copy(tmp_path, b"second try\n", pod="b")
    assert (tmp_path / "stdout.log").read_bytes() == b"first try\nsecond try\n"


LOST = (
    b'failed to try resolving symlinks in path "/var/log/pods/ns_p1_'
    + b"0" * 8
    + b"-0000-0000-0000-"
    + b"0" * 12
    + b'/main/0.log": lstat /var/log/pods/x: no such file or directory'
)


def test_the_kubelets_error_after_the_log_is_not_appended(tmp_path: Path) -> None:
    """The kubelet sends 200 first, then finds the log file gone: its error is the body's
    last bytes, after whatever log it had streamed (even in the same read)."""
    (tmp_path / "stdout.log").write_bytes(b"")
    assert not copy(tmp_path, LOST)
    assert not copy(tmp_path, b"line 1\n" + LOST[:40], LOST[40:])
    assert (tmp_path / "stdout.log").read_bytes() == b"line 1\n"
    assert not copy(tmp_path, b"line 1\n", b"part" + ERROR)
    assert (tmp_path / "stdout.log").read_bytes() == b"line 1\npart"


def test_log_lines_that_look_like_the_error_are_kept(tmp_path: Path) -> None:
    (tmp_path / "stdout.log").write_bytes(b"")
    text = b'failed to open log file "run.log": permission denied\nfailed to\n'
    assert copy(tmp_path, text[:30], text[30:55], text[55:])
    assert (tmp_path / "stdout.log").read_bytes() == text


T1, T2 = b"2026-12-02T05:50:02.1Z", b"2026-12-02T05:50:03.123456789Z"


def copy_stamped(run_dir: Path, *chunks: bytes, pod: str = "p1") -> bool:
    """A copy of the API's `timestamps=true` log: the stamps go to the write-order index,
    the log file gets the container's bytes."""
    from qwex_k8s.logs import copy_stamped_chunks

    state = {}
    if (run_dir / STATE_FILE).exists():
        state = json.loads((run_dir / STATE_FILE).read_text())
    with open(run_dir / "stdout.log", "r+b") as out:
        return copy_stamped_chunks(iter(chunks), out, state, pod, run_dir, None)


def times_and_bytes(run_dir: Path) -> list[tuple[str | None, bytes]]:
    from qwex_core.logs import LogReader
    from qwex_core.logtimes import stamp

    with LogReader({"stdout": run_dir / "stdout.log"}) as reader:
        return [
            (stamp(c.time) if c.time is not None else None, c.data)
            for c in reader.chunks(final=True)
        ]


def test_the_kubelets_stamps_become_the_index_and_never_reach_the_log(tmp_path: Path) -> None:
    (tmp_path / "stdout.log").write_bytes(b"")
    # cut inside a stamp, inside a line; an empty line; a line split by the runtime (16 KiB
    # partials: the kubelet stamps only its start); no final newline.
    raw = T1 + b" one\n" + T2 + b" \n" + T2 + b" two, long" + b" still two\n" + T1 + b" end"
    assert copy_stamped(tmp_path, raw[:10], raw[10:30], raw[30:])
    assert (tmp_path / "stdout.log").read_bytes() == b"one\n\ntwo, long still two\nend"
    seen = times_and_bytes(tmp_path)
    assert b"".join(data for _, data in seen) == b"one\n\ntwo, long still two\nend"
    by_line = {data: when for when, data in seen}
    assert by_line[b"one\n"] == "2026-12-02T05:50:02.100000000Z"
    assert by_line[b"two, long still two\n"] == "2026-12-02T05:50:03.123456789Z"


def test_a_resumed_stamped_copy_indexes_only_what_is_new(tmp_path: Path) -> None:
    (tmp_path / "stdout.log").write_bytes(b"")
    assert copy_stamped(tmp_path, T1 + b" line 1\n" + T1 + b" li")
    assert copy_stamped(tmp_path, T1 + b" line 1\n" + T1 + b" line 2\n" + T2 + b" line 3\n")
    assert (tmp_path / "stdout.log").read_bytes() == b"line 1\nline 2\nline 3\n"
    assert b"".join(data for _, data in times_and_bytes(tmp_path)) == b"line 1\nline 2\nline 3\n"
    # "line 1\n", "li" (the first copy), "ne 2\n", "line 3\n"
    assert (tmp_path / "output.idx").stat().st_size == 4 * 24


def test_an_unstamped_error_text_is_still_never_appended(tmp_path: Path) -> None:
    (tmp_path / "stdout.log").write_bytes(b"")
    assert copy_stamped(tmp_path, T1 + b" " + b"x" * 30)
    assert not copy_stamped(tmp_path, ERROR)
    assert (tmp_path / "stdout.log").read_bytes() == b"x" * 30
