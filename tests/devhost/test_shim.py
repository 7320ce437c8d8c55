"""The model of the Durable extension's out-of-process shim (`devhost.shim`): how far it gets through actions."""

from __future__ import annotations

import cProfile
import json
from typing import Any

from azure.durable_functions.models.actions import ActionType
from azure.durable_functions.models.history import HistoryEventType

from devhost.shim import Progress, RetryKeys, entity_requests, progress


def activity(name: str = "work") -> dict[str, Any]:
    return {"actionType": ActionType.CALL_ACTIVITY, "functionName": name, "input": "null"}


def timer(cancelled: bool = False) -> dict[str, Any]:
    return {"actionType": ActionType.CREATE_TIMER, "fireAt": "2026-01-01T00:00:00.000000Z", "isCanceled": cancelled}


def waiter(name: str) -> dict[str, Any]:
    return {"actionType": ActionType.WAIT_FOR_EXTERNAL_EVENT, "externalEventName": name}


def any_of(*actions: dict[str, Any]) -> dict[str, Any]:
    return {"actionType": ActionType.WHEN_ANY, "compoundActions": list(actions)}


def all_of(*actions: dict[str, Any]) -> dict[str, Any]:
    return {"actionType": ActionType.WHEN_ALL, "compoundActions": list(actions)}


def completed(task_id: int) -> dict[str, Any]:
    return {"EventType": HistoryEventType.TASK_COMPLETED, "TaskScheduledId": task_id}


def failed(task_id: int) -> dict[str, Any]:
    return {"EventType": HistoryEventType.TASK_FAILED, "TaskScheduledId": task_id}


def fired(timer_id: int) -> dict[str, Any]:
    return {"EventType": HistoryEventType.TIMER_FIRED, "TimerId": timer_id}


def raised(name: str) -> dict[str, Any]:
    return {"EventType": HistoryEventType.EVENT_RAISED, "Name": name}


def test_the_shim_stops_at_the_first_action_not_finished_yet() -> None:
    actions = [activity(), activity(), activity()]
    assert progress(actions, [completed(0)], [0, 1]) == Progress(2, 1, "call_activity work")
    assert progress(actions, [completed(0), completed(1)], [0, 1]) == Progress(3, 2, "call_activity work")
    assert progress(actions, [completed(0), failed(1), completed(2)], [0, 1, 2]) == Progress(3, None)


def test_a_race_is_won_by_any_child_and_a_gather_needs_all() -> None:
    race = [any_of(waiter("go"), timer()), activity()]
    assert progress(race, [raised("go")], [None, 0]).blocked_at == 1
    assert progress(race, [fired(0)], [None, 0]).blocked_at == 1
    assert progress(race, [], [None, 0]) == Progress(
        2, 0, "any of [external event 'go', timer due 2026-01-01T00:00:00.000000Z]"
    )
    gather = [all_of(activity(), activity()), activity()]
    assert progress(gather, [completed(1)], [0, 1]).blocked_at == 0
    assert progress(gather, [completed(1), completed(0)], [0, 1]).blocked_at == 1


def test_a_cancelled_timer_ends_its_race_at_once() -> None:
    actions = [any_of(waiter("go"), timer(cancelled=True)), activity()]
    assert progress(actions, [], [None, 0]) == Progress(3, 1, "call_activity work")


def test_an_event_kept_before_any_waiter_goes_to_one_waiter_only() -> None:
    # The SDK hands the kept event to both waiters (durable-python#507); the .NET context to the first alone,
    # so the second race waits for its timer, and the activity after it is not scheduled.
    actions = [timer(), waiter("E"), any_of(waiter("E"), timer()), activity()]
    history = [raised("E"), fired(0)]
    assert progress(actions, history, [0, None, None, 1]) == Progress(
        4, 2, "any of [external event 'E', timer due 2026-01-01T00:00:00.000000Z]"
    )
    assert progress(actions, [*history, fired(1)], [0, None, None, 1]).reached == 5
    cancelled = [timer(), waiter("E"), any_of(waiter("E"), timer(cancelled=True)), activity()]
    assert progress(cancelled, history, [0, None, None, 1]) == Progress(5, 3, "call_activity work")


def test_an_event_goes_to_the_newest_waiter_of_its_name() -> None:
    # An abandoned waiter (its race lost to a timer) stays below the new one and does not take the event.
    actions = [any_of(waiter("E"), timer()), any_of(waiter("E"), timer()), activity()]
    assert progress(actions, [fired(0), raised("E")], [None, 0, None, 1]).blocked_at == 2


def test_an_action_with_retries_ends_on_success_or_its_final_timer() -> None:
    actions = [{**activity(), "actionType": ActionType.CALL_ACTIVITY_WITH_RETRY}, activity()]
    assert progress(actions, [failed(0)], [0], {0: RetryKeys(task_id=2)}).blocked_at == 0
    assert progress(actions, [failed(0), fired(1), completed(2)], [0], {0: RetryKeys(task_id=2)}).blocked_at == 1
    gave_up = {0: RetryKeys(task_id=2, final_timer_id=3)}
    assert progress(actions, [failed(0), fired(1), failed(2)], [0], gave_up).blocked_at == 0
    assert progress(actions, [failed(0), fired(1), failed(2), fired(3)], [0], gave_up).blocked_at == 1


def test_an_entity_call_waits_for_the_response_to_its_request_and_a_signal_for_nothing() -> None:
    call = {"actionType": ActionType.CALL_ENTITY, "instanceId": "@counter@a", "operation": "add"}
    signal = {"actionType": ActionType.SIGNAL_ENTITY, "instanceId": "@counter@a", "operation": "add"}
    signalled = {
        "EventType": HistoryEventType.EVENT_SENT,
        "EventId": 0,
        "Input": json.dumps({"id": "s", "signal": True}),
    }
    sent = {"EventType": HistoryEventType.EVENT_SENT, "EventId": 1, "Input": json.dumps({"id": "req-1"})}
    requests = entity_requests([signalled, sent])
    assert requests == {"1": "req-1"}  # a signal awaits no answer
    actions = [signal, call, activity()]
    assert progress(actions, [sent], [0, 1], requests=requests) == Progress(2, 1, "entity call @counter@a.add")
    assert progress(actions, [sent, raised("other")], [0, 1], requests=requests).blocked_at == 1
    assert progress(actions, [sent, raised("req-1")], [0, 1], requests=requests) == Progress(3, 2, "call_activity work")
    assert progress(actions, [sent, raised("req-1")], [0, 1]).blocked_at == 1  # a request not known: no answer


def scheduled(task_id: int) -> dict[str, Any]:
    return {"EventType": HistoryEventType.TASK_SCHEDULED, "EventId": task_id}


def test_a_gather_is_through_when_its_last_member_ends_whatever_the_order() -> None:
    # Scheduling events complete nothing; the gather is through at the event that ends its last member, which
    # decides how many events DTFx had applied there (what a continue-as-new carries over).
    actions = [all_of(activity(), activity(), activity()), activity()]
    history = [scheduled(0), scheduled(1), scheduled(2), completed(2), completed(0), scheduled(9), completed(1)]
    assert progress(actions, history, [0, 1, 2, 3]) == Progress(4, 1, "call_activity work", applied=7)
    assert progress(actions, [*history, completed(3)], [0, 1, 2, 3]) == Progress(4, None, applied=8)
    waiting = "all of [call_activity work, call_activity work, call_activity work]"
    assert progress(actions, history[:-1], [0, 1, 2, 3]) == Progress(3, 0, waiting, applied=6)


def replay_checks(width: int, reverse: bool) -> int:
    """How many completion checks the shim's model makes for a gather of `width` activities whose results
    arrive in order (or in reverse), after their TaskScheduled events: the work the model does per episode."""
    actions = [all_of(*(activity() for _ in range(width)))]
    ends = [completed(task) for task in range(width)]
    history = [*(scheduled(task) for task in range(width)), *(reversed(ends) if reverse else ends)]
    profile = cProfile.Profile()
    profile.enable()
    result = progress(actions, history, list(range(width)))
    profile.disable()
    assert result == Progress(width, None, applied=2 * width)
    # Every call of `_Replay.complete`, the recursive ones (a gather checking its members) included.
    return sum(
        entry.callcount
        for entry in profile.getstats()
        if not isinstance(entry.code, str) and entry.code.co_name == "complete"
    )


def test_a_gather_costs_the_shim_model_linear_work_in_its_width() -> None:
    # Every episode of a fan-in replays the shim over the whole history: a model that re-checked each earlier
    # member on every result did width^2 checks per episode, so the fan-out's time grew with its square.
    for reverse in (False, True):
        small, large = replay_checks(1000, reverse), replay_checks(4000, reverse)
        assert large <= 4.5 * small, (reverse, small, large)
