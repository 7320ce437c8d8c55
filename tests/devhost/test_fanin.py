"""The fan-in rule: which results of a task_all may wait for the rest, and which must start an episode."""

from __future__ import annotations

import json
from typing import Any

from devhost import fanin

ACTIVITY = {"actionType": 0, "functionName": "square"}
ENTITY = {"actionType": 7, "instanceId": "@counter@k", "operation": "add"}


def when_all(*children: dict[str, Any]) -> dict[str, Any]:
    return {"actionType": 12, "compoundActions": list(children)}


def done(task: int, ok: bool = True) -> dict[str, Any]:
    return {"EventType": 5 if ok else 6, "TaskScheduledId": task}


def sent(task: int, request: str) -> dict[str, Any]:
    return {"EventType": 14, "EventId": task, "Input": json.dumps({"id": request})}


def answer(request: str, failed: bool = False) -> dict[str, Any]:
    body = {"result": "1", **({"exceptionType": "Error"} if failed else {})}
    return {"EventType": 15, "Name": request, "Input": json.dumps(body)}


def test_successes_wait_for_the_last_member_and_anything_else_does_not() -> None:
    gather = fanin.blocked_on([when_all(ACTIVITY, ACTIVITY, ACTIVITY)], [0, 1, 2], [], [])
    assert gather is not None and gather.remaining == 3
    assert gather.holds(done(0)) and gather.holds(done(2))
    assert not gather.holds({"EventType": 15, "Name": "Approval"})  # a raised event: run now
    assert not gather.holds(done(1))  # the last member
    again = fanin.blocked_on([when_all(ACTIVITY, ACTIVITY)], [0, 1], [], [])
    assert again is not None and not again.holds(done(0, ok=False))  # a failure: run now


def test_results_that_arrived_during_the_episode_count_as_held() -> None:
    gather = fanin.blocked_on([when_all(ACTIVITY, ACTIVITY, ACTIVITY)], [0, 1, 2], [], [done(0)])
    assert gather is not None and (gather.remaining, gather.held) == (2, 1)
    assert gather.waits(pending=1) and not gather.waits(pending=2)


def test_entity_calls_are_members_by_request_id() -> None:
    history = [sent(0, "r0"), sent(1, "r1")]
    gather = fanin.blocked_on([when_all(ENTITY, ENTITY, ACTIVITY)], [0, 1, 2], history, [answer("r0")])
    assert gather is not None and (gather.remaining, gather.held) == (2, 1)
    assert not gather.holds(answer("r1", failed=True))


def test_nothing_is_held_when_it_could_change_the_outcome() -> None:
    assert fanin.blocked_on([{"actionType": 11, "compoundActions": [ACTIVITY, ACTIVITY]}], [0, 1], [], []) is None
    retried = when_all({"actionType": 1, "functionName": "square"})
    assert fanin.blocked_on([retried], [0], [], []) is None
    nested = when_all(when_all(ACTIVITY), ACTIVITY)
    assert fanin.blocked_on([nested], [0, 1], [], []) is None
    # A member already failed: the orchestrator may have caught it and now waits on one member alone.
    assert fanin.blocked_on([when_all(ACTIVITY, ACTIVITY)], [0, 1], [done(0, ok=False)], []) is None
    assert fanin.blocked_on([when_all(ACTIVITY, ACTIVITY)], [0, 1], [done(0), done(1)], []) is None  # all done


def test_outstanding_is_read_from_the_events_so_a_restart_cannot_leave_it_stale() -> None:
    # After a restart the host's own bookkeeping may still list finished children; the events do not lie.
    gather = fanin.blocked_on([when_all(ACTIVITY, ACTIVITY, ACTIVITY)], [0, 1, 2], [done(0), done(1)], [])
    assert gather is not None and gather.remaining == 1
    assert not gather.holds(done(2))
