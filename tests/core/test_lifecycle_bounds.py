"""`lifecycle.judge` pinned down at its edges: the exact moment patience runs out, the exact
end of a cancel's grace, and every reason word for word (what `qwex status` shows). The
mutation check (`nox -s mutants`) fails when any change to `judge` goes unnoticed."""

from __future__ import annotations

from pathlib import Path

import pytest
from qwex_core.lifecycle import (
    KEEP,
    STOP_MARGIN,
    Action,
    CancelRequest,
    Probe,
    Seen,
    Verdict,
    judge,
    oom_reason,
)

START = 30.0
GRACE = 10.0


def verdict(probe: Probe, age: float = 1.0, cancel: CancelRequest | None = None) -> Verdict:
    return judge(probe, age=age, cancel=cancel, grace_period=GRACE, start_timeout=START)


def asked(age: float) -> CancelRequest:
    return CancelRequest("stop please", age=age)


@pytest.mark.parametrize("seen", [Seen.NOTHING, Seen.STARTING])
def test_patience_ends_exactly_at_the_start_timeout(seen: Seen) -> None:
    assert verdict(Probe(seen), age=START - 0.001) == KEEP
    assert verdict(Probe(seen), age=START).status == "lost"
    assert verdict(Probe(seen), age=START + 0.001).status == "lost"


def test_the_grace_period_plus_the_margin_is_waited_out_exactly() -> None:
    end = GRACE + STOP_MARGIN
    for age in (0.0, GRACE - STOP_MARGIN + 1, GRACE, GRACE + 1, end):
        assert verdict(Probe(Seen.ALIVE), cancel=asked(age)) == KEEP, age
    assert verdict(Probe(Seen.ALIVE), cancel=asked(end + 0.001)).action is Action.STOP


def test_an_alive_agent_is_left_alone_however_old_the_run() -> None:
    assert verdict(Probe(Seen.ALIVE), age=START * 1000) == KEEP


def test_a_cancel_ends_a_run_that_never_started_whatever_its_age() -> None:
    for age in (0.0, START + 1):
        assert verdict(Probe(Seen.NOTHING), age=age, cancel=asked(0)) == Verdict(
            Action.RECORD, "cancelled", "stop please"
        )
        assert verdict(Probe(Seen.STARTING), age=age, cancel=asked(0)) == Verdict(
            Action.STOP, "cancelled", "stop please"
        )


OVERDUE = asked(GRACE + STOP_MARGIN + 1)


@pytest.mark.parametrize(
    ("probe", "age", "cancel", "expected"),
    [
        (
            Probe(Seen.NOTHING, "the agent (pid 7)"),
            START,
            None,
            Verdict(
                Action.RECORD,
                "lost",
                "the agent (pid 7) never started (the qwex process that started the run "
                "stopped first)",
            ),
        ),
        (
            Probe(Seen.STARTING, "box 1"),
            START,
            None,
            Verdict(Action.STOP, "lost", "box 1 was created but never started"),
        ),
        (
            Probe(Seen.ALIVE, "box 1"),
            1.0,
            OVERDUE,
            Verdict(
                Action.STOP,
                "cancelled",
                "stop please (the agent did not stop within the grace period; box 1 was killed)",
            ),
        ),
        (
            Probe(Seen.GONE, "box 1"),
            1.0,
            None,
            Verdict(
                Action.RECORD,
                "lost",
                "box 1 is gone and the run had not recorded an end (the agent was killed, "
                "or it was removed outside qwex)",
            ),
        ),
        (
            Probe(Seen.GONE, "box 1"),
            1.0,
            asked(0),
            Verdict(Action.RECORD, "cancelled", "stop please (box 1 is gone)"),
        ),
        (
            Probe(Seen.EXITED, "box 1", exit_code=0),
            1.0,
            None,
            Verdict(Action.RECORD, "lost", "box 1 exited with code 0 without recording an end"),
        ),
        (
            Probe(Seen.EXITED, "box 1"),
            1.0,
            None,
            Verdict(Action.RECORD, "lost", "box 1 exited without recording an end"),
        ),
        (
            Probe(Seen.EXITED, "box 1", exit_code=2, error="no space", leftovers=True),
            1.0,
            None,
            Verdict(
                Action.STOP,
                "lost",
                "box 1 exited with code 2 without recording an end: no space; "
                "its command was stopped",
            ),
        ),
        (
            Probe(Seen.EXITED, "box 1", exit_code=137, oom=True),
            1.0,
            asked(0),
            Verdict(
                Action.RECORD,
                "lost",
                "OOMKilled: box 1 ran out of memory and the agent was killed with the command",
            ),
        ),
        (
            Probe(Seen.EXITED, "box 1", oom=True, leftovers=True),
            1.0,
            None,
            Verdict(
                Action.STOP,
                "lost",
                "OOMKilled: box 1 ran out of memory and the agent was killed with the command",
            ),
        ),
        (
            Probe(Seen.EXITED, "box 1", exit_code=0),
            1.0,
            asked(0),
            Verdict(Action.RECORD, "cancelled", "stop please (box 1 stopped)"),
        ),
        (
            Probe(Seen.EXITED, "box 1", leftovers=True),
            1.0,
            asked(0),
            Verdict(
                Action.STOP, "cancelled", "stop please (box 1 stopped; its command was stopped)"
            ),
        ),
    ],
)
def test_every_reason_word_for_word(
    probe: Probe, age: float, cancel: CancelRequest | None, expected: Verdict
) -> None:
    assert verdict(probe, age=age, cancel=cancel) == expected


def test_judge_takes_its_numbers_by_keyword_only() -> None:
    """Four floats in a row are easy to swap: a caller must name them."""
    with pytest.raises(TypeError):
        judge(Probe(Seen.ALIVE), 1.0, None, GRACE, START)  # type: ignore[call-arg]


def test_the_public_signatures_resolve() -> None:
    """Backends type-check against these hints; they must evaluate (not only parse)."""
    import typing

    hints = typing.get_type_hints(judge)
    assert hints["cancel"] == CancelRequest | None and hints["return"] is Verdict
    assert typing.get_type_hints(CancelRequest.of)["return"] == CancelRequest | None
    assert typing.get_type_hints(oom_reason)["memory"] == str | None


def test_the_stop_margin_is_the_documented_five_seconds() -> None:
    """docs/docker.md: a container still running after grace + 5 s is killed."""
    assert STOP_MARGIN == 5.0


def test_probes_and_verdicts_are_values() -> None:
    """Frozen: a probe cached by a runner cannot be changed under another reader, and both
    can be compared and kept in sets."""
    import dataclasses

    probe = Probe(Seen.ALIVE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        probe.what = "else"  # type: ignore[misc]
    assert len({Probe(Seen.ALIVE), probe, KEEP, Verdict(Action.KEEP), asked(1.0), asked(1.0)}) == 3


def test_a_cancel_request_is_read_from_the_marker_with_its_age(tmp_path: Path) -> None:
    import os
    import time

    from qwex_core.agent.record import CANCEL_FILE

    assert CancelRequest.of(tmp_path) is None
    marker = tmp_path / CANCEL_FILE
    marker.write_text("cancelled by alice")
    asked_at = time.time() - 100
    os.utime(marker, (asked_at, asked_at))
    request = CancelRequest.of(tmp_path)
    assert request is not None and request.reason == "cancelled by alice"
    assert 100 <= request.age < 100 + 3600  # since the marker's time, not anything else
    future = time.time() + 3600
    os.utime(marker, (future, future))  # a clock set back: never a negative age
    later = CancelRequest.of(tmp_path)
    assert later is not None and later.age == 0.0


def test_the_oom_reason_names_the_limit_when_there_is_one() -> None:
    assert oom_reason("64Mi") == "OOMKilled: the command ran out of memory (memory limit 64Mi)"
    assert oom_reason(None) == "OOMKilled: the command ran out of memory"
    assert oom_reason("") == "OOMKilled: the command ran out of memory"
