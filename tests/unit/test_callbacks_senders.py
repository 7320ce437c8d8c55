"""Which sender may report what: the task's token sends succeeded/failed/progress, the agent's token only
`completed`, so user code cannot end its attempt before the agent has uploaded its outputs. Refusals say what to do."""

from __future__ import annotations

from typing import Any

import pytest

from acibatch.callbacks import CallbackStatus, parse_callback, sender_refusal
from acibatch.tokens import TokenPurpose

COMPLETED = {"status": "completed", "exitCode": 0, "outputs": {"count": 1, "bytes": 2}, "failure": None}


@pytest.mark.parametrize(
    ("body", "sender"),
    [
        ({"status": "succeeded", "result": {"n": 1}}, TokenPurpose.TASK),
        ({"status": "failed", "exitCode": 3}, TokenPurpose.TASK),
        ({"status": "progress", "progress": {"done": 1}}, TokenPurpose.TASK),
        (COMPLETED, TokenPurpose.AGENT),
    ],
)
def test_each_sender_may_send_its_own_statuses(body: dict[str, Any], sender: TokenPurpose) -> None:
    assert sender_refusal(body, sender) is None
    assert parse_callback(body, 1).status is CallbackStatus(body["status"])


def test_the_tasks_token_cannot_report_completed() -> None:
    refusal = sender_refusal(COMPLETED, TokenPurpose.TASK)
    assert refusal is not None and "only the acibatch agent may report 'completed'" in refusal
    # Refused for the sender, whatever else the body holds (even a body the validation would refuse).
    assert sender_refusal({"status": "completed", "result": 1}, TokenPurpose.TASK) == refusal


@pytest.mark.parametrize("status", ["succeeded", "failed", "progress"])
def test_the_agents_token_may_only_report_completed(status: str) -> None:
    refusal = sender_refusal({"status": status}, TokenPurpose.AGENT)
    assert refusal == f"the acibatch agent's token may only report 'completed', not '{status}'"


@pytest.mark.parametrize("body", [[], "completed", {"status": "bogus"}, {"status": ["completed"]}, {}])
def test_a_body_without_a_known_status_is_left_to_the_validation(body: object) -> None:
    for sender in TokenPurpose:
        assert sender_refusal(body, sender) is None
