"""The verdict every runner's probe goes through: what the host records, and when."""

from __future__ import annotations

import pytest
from qwex_core.lifecycle import STOP_MARGIN, Action, CancelRequest, Probe, Seen, judge

START = 30.0
GRACE = 10.0
ASKED = CancelRequest("stop please", age=1.0)
OVERDUE = CancelRequest("stop please", age=GRACE + STOP_MARGIN + 1)


@pytest.mark.parametrize(
    ("probe", "age", "cancel", "action", "status", "words"),
    [
        # nothing started yet: patience, then lost; a cancel ends it at once
        (Probe(Seen.NOTHING), 1.0, None, Action.KEEP, "", ""),
        (Probe(Seen.NOTHING), START + 1, None, Action.RECORD, "lost", "never started"),
        (Probe(Seen.NOTHING), 1.0, ASKED, Action.RECORD, "cancelled", "stop please"),
        # created, not running: the same, but what was created is stopped
        (Probe(Seen.STARTING, "box 1"), 1.0, None, Action.KEEP, "", ""),
        (Probe(Seen.STARTING, "box 1"), START + 1, None, Action.STOP, "lost", "box 1 was created"),
        (Probe(Seen.STARTING), 1.0, ASKED, Action.STOP, "cancelled", "stop please"),
        # alive: the agent writes the record; a cancel past grace + margin is enforced
        (Probe(Seen.ALIVE), START + 99, None, Action.KEEP, "", ""),
        (Probe(Seen.ALIVE), 5.0, ASKED, Action.KEEP, "", ""),
        (Probe(Seen.ALIVE, "box 1"), 5.0, OVERDUE, Action.STOP, "cancelled", "box 1 was killed"),
        # gone without a trace
        (Probe(Seen.GONE, "box"), 5.0, None, Action.RECORD, "lost", "box is gone"),
        (Probe(Seen.GONE, "box"), 5.0, ASKED, Action.RECORD, "cancelled", "stop please (box is"),
        # exited without recording an end
        (
            Probe(Seen.EXITED, "a", exit_code=1),
            5.0,
            None,
            Action.RECORD,
            "lost",
            "a exited with code 1",
        ),
        (Probe(Seen.EXITED, error="boom"), 5.0, None, Action.RECORD, "lost", "an end: boom"),
        (Probe(Seen.EXITED, oom=True), 5.0, None, Action.RECORD, "lost", "OOMKilled"),
        (Probe(Seen.EXITED), 5.0, ASKED, Action.RECORD, "cancelled", "stop please"),
        (Probe(Seen.EXITED, leftovers=True), 5.0, None, Action.STOP, "lost", "was stopped"),
    ],
)
def test_verdict(
    probe: Probe,
    age: float,
    cancel: CancelRequest | None,
    action: Action,
    status: str,
    words: str,
) -> None:
    verdict = judge(probe, age=age, cancel=cancel, grace_period=GRACE, start_timeout=START)
    assert (verdict.action, verdict.status) == (action, status)
    assert words in verdict.reason


def test_a_backend_with_a_queue_waits_longer_before_lost() -> None:
    patient = judge(
        Probe(Seen.STARTING), age=3600.0, cancel=None, grace_period=GRACE, start_timeout=1e9
    )
    assert patient.action is Action.KEEP
