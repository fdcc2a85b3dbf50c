"""A pod's log into the run's log: only log bytes, resumed exactly (offline: the runner's
rules over byte chunks as the API server streams them, appended by core's copy)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kubernetes import client
from qwex_core.pushed import LogCopy, log_sources, record_lock
from qwex_k8s.logs import LEGACY_STATE, as_log_bytes, legacy_starts, log_pieces, skip, target

ERROR = b"unable to retrieve container logs for containerd://" + b"ab12" * 16


def copy(run_dir: Path, *chunks: bytes, pod: str = "p1") -> bool:
    """One read of `pod`'s log as `read_log` makes it, appended by core: the bytes the run's
    log lacks, from where the pod's log begins in it. False: the kubelet's error text came."""
    dropped: list[bytes] = []
    pieces = list(log_pieces(chunks, dropped))
    with record_lock(run_dir), LogCopy(run_dir, ("stdout",)) as out:
        have = out.size("stdout")
        begin = dict(log_sources(run_dir, "stdout")).get(pod, have)
        for piece in as_log_bytes(skip(pieces, have - begin), "stdout", have, pod):
            assert out.append(piece)
    return not dropped


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
    copy(tmp_path, b"x" * 10)  # shorter than what was copied: nothing new
    assert (tmp_path / "stdout.log").read_bytes() == b"x" * 30
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
    """A copy of the API's `timestamps=true` log: the stamps go to the write-order index
    (core's, from each piece's time), the log file gets the container's bytes."""
    return copy(run_dir, *chunks, pod=pod)


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
    assert by_line[b"two, long still two\n"] == "2026-12-02T05:50:03.123456000Z"  # in µs


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


def api_pod(name: str, created: str, main: dict[str, Any] | None) -> Any:
    status: dict[str, Any] = {"phase": "Running"}
    if main is not None:
        status["containerStatuses"] = [
            {"name": "main", "image": "i", "imageID": "", "ready": True, "restartCount": 0}
            | {"state": main}
        ]
    data = {"metadata": {"name": name, "creationTimestamp": created}, "spec": {"containers": []}}
    return client.ApiClient().deserialize(
        json.dumps(data | {"status": status}), "V1Pod", "application/json"
    )


RUNNING = {"running": {"startedAt": "2026-12-02T05:50:02Z"}}
ENDED = {"terminated": {"exitCode": 1, "startedAt": "2026-12-02T05:50:02Z"}}


def test_each_pod_goes_on_where_its_log_began_then_the_next_one() -> None:
    a = api_pod("a", "2026-12-02T05:50:00Z", ENDED)
    b = api_pod("b", "2026-12-02T05:51:00Z", RUNNING)
    pending = api_pod("c", "2026-12-02T05:52:00Z", None)
    found = target([a, b], {}, 0)
    assert found is not None and (found[0].metadata.name, found[1]) == ("a", 0)
    found = target([a, b], {"a": 0}, 40)
    assert found is not None and (found[0].metadata.name, found[1]) == ("a", 0)
    found = target([a, b], {"a": 0}, 40, done={"a"})  # a's log is all there: b from here
    assert found is not None and (found[0].metadata.name, found[1]) == ("b", 40)
    found = target([a, b], {"a": 0, "b": 40}, 55)
    assert found is not None and (found[0].metadata.name, found[1]) == ("b", 40)
    assert target([a, b], {"a": 0, "b": 40}, 55, done={"b"}) is None
    assert target([], {}, 0) is None and pending.metadata.name == "c"


def test_a_run_copied_by_an_earlier_qwex_goes_on_from_its_offsets(tmp_path: Path) -> None:
    """A run in flight when qwex was updated: the earlier copy's offsets file tells where
    each pod's log began, so the copy goes on without repeating a byte."""
    (tmp_path / "stdout.log").write_bytes(b"first\nsec")
    (tmp_path / LEGACY_STATE).write_text(json.dumps({"a": 6, "@start:a": 0, "b": 3, "@start:b": 6}))
    assert legacy_starts(tmp_path) == {"a": 0, "b": 6}
    begin = legacy_starts(tmp_path)["b"]
    pieces = skip(log_pieces([b"second\n"]), 9 - begin)
    assert [p[0] for p in pieces] == [b"ond\n"]
