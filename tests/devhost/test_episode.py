"""devhost's episode function (`devhost.durable.episode.apply_reply`) in-process, with the real Durable SDK.

Each test builds an instance record, runs a real orchestrator function through the SDK over the history devhost
would send (its answer is the worker's reply) and asserts the exact history and effects the episode produces.
Time and request ids are passed in, so every value is known.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import pytest
from azure.durable_functions.models.actions import ActionType
from azure.durable_functions.models.history import HistoryEventType as Event

from devhost.app import AppIndex, FunctionInfo
from devhost.durable import episode
from devhost.durable.episode import ArmTimer, Completed, ContinuedAsNew, Failed, RunActivity, SendToEntity, StartChild
from devhost.durable.records import Instance, execution_started
from devhost.durable.vocabulary import event, iso
from devhost.durable.workers import failed_reply

NOW = 1_800_000_000.25  # 2027-01-15T08:00:00.250000Z: every event the episode writes carries it
Orchestrator = Callable[[df.DurableOrchestrationContext], Generator[Any, Any, Any]]


def app_index() -> AppIndex:
    index = AppIndex()
    for name, kind in [("say_hello", "activity"), ("child", "orchestrator"), ("counter", "entity")]:
        index.add(FunctionInfo(name, kind, "context", None, False, False, durable_name=name))
    return index


def new_instance(instance_id: str = "inst", input_value: Any = None) -> Instance:
    instance = Instance(id=instance_id, name="under_test", input=input_value, execution_id="exec-1", created=NOW)
    instance.pending.append(execution_started(instance))
    return instance


def run(
    orchestrator: Orchestrator, instance: Instance, delivered: list[dict[str, Any]] | None = None, request_id: str = "r"
) -> episode.Outcome:
    """One episode: the SDK replays the instance's history plus the new events, then the reply is applied."""
    delivered = list(instance.pending) if delivered is None else delivered
    started = event(Event.ORCHESTRATOR_STARTED, at=NOW)
    past = [{**item, "IsPlayed": True} for item in instance.history]
    context = {
        "history": [*past, started, *delivered],
        "input": instance.input_text(),
        "instanceId": instance.id,
        "isReplaying": False,
        "parentInstanceId": None,
        "upperSchemaVersion": 1,
        "upperSchemaVersionNew": 2,
    }
    try:
        with warnings.catch_warnings():  # the SDK warns about untyped inputs: a worker does not stop for it
            warnings.simplefilter("ignore", DeprecationWarning)
            reply = episode.Reply(json.loads(df.Orchestrator.create(orchestrator)(json.dumps(context))))
    except Exception as exc:  # the SDK fails an episode with its state in the message, as the worker reports it
        reply = failed_reply(type(exc).__name__, str(exc))
    return episode.apply_reply(
        instance, started, delivered, reply, app=app_index(), now=NOW, new_request_id=lambda: request_id
    )


def kinds(history: list[dict[str, Any]]) -> list[Event]:
    return [Event(item["EventType"]) for item in history]


def deliver(instance: Instance, kind: Event, **fields: Any) -> None:
    instance.pending.append(event(kind, **fields))


# -- an activity ------------------------------------------------------------------------------------------------


def greets(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    return (yield context.call_activity("say_hello", "Tokyo"))


def test_an_activity_is_scheduled_with_sequence_number_zero_then_its_result_completes_the_orchestration() -> None:
    instance = new_instance()
    first = run(greets, instance)
    work = {"name": "say_hello", "input": '"Tokyo"', "execution": "exec-1"}
    assert first.effects == [RunActivity(0, work)] and first.end is None
    assert kinds(instance.history) == [
        Event.ORCHESTRATOR_STARTED, Event.EXECUTION_STARTED, Event.TASK_SCHEDULED, Event.ORCHESTRATOR_COMPLETED
    ]  # fmt: skip
    scheduled = instance.history[2]
    assert scheduled == {"EventType": 4, "EventId": 0, "IsPlayed": False, "Timestamp": iso(NOW), "Name": "say_hello",
                         "Version": "", "Input": '"Tokyo"'}  # fmt: skip
    assert instance.pending == [] and instance.activities == {"0": work} and instance.next_id == 1

    deliver(instance, Event.TASK_COMPLETED, TaskScheduledId=0, Result='"Hello Tokyo!"')
    second = run(greets, instance)
    assert second.effects == [] and second.end == Completed("Hello Tokyo!")
    assert kinds(instance.history)[4:] == [
        Event.ORCHESTRATOR_STARTED, Event.TASK_COMPLETED, Event.ORCHESTRATOR_COMPLETED, Event.EXECUTION_COMPLETED
    ]  # fmt: skip
    assert instance.history[-1]["OrchestrationStatus"] == 1 and instance.history[-1]["Result"] == '"Hello Tokyo!"'


# -- a timer created, then cancelled ----------------------------------------------------------------------------


def races_a_timer(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    timer = context.create_timer(context.current_utc_datetime + timedelta(hours=1))
    go = context.wait_for_external_event("Go")
    winner = yield context.task_any([go, timer])  # flattened: the wait, then the timer
    if winner is go:
        timer.cancel()
    return (yield context.call_activity("say_hello", "after"))


def test_a_cancelled_timer_keeps_its_sequence_number_and_stays_scheduled() -> None:
    instance = new_instance()
    first = run(races_a_timer, instance)
    assert first.effects == [ArmTimer(0, NOW + 3600)]
    assert [item["EventId"] for item in instance.history if item["EventType"] == Event.TIMER_CREATED] == [0]
    assert instance.action_ids == [None, 0]  # waiting for an event has no number; the timer has number 0

    deliver(instance, Event.EVENT_RAISED, Name="Go", Input='"now"')
    second = run(races_a_timer, instance)
    # The activity after the race gets the next number; the cancelled timer is not scheduled again nor dropped:
    # it still fires later (DTFx schedules every timer the shim creates).
    assert second.effects == [RunActivity(1, {"name": "say_hello", "input": '"after"', "execution": "exec-1"})]
    assert kinds(instance.history)[4:] == [
        Event.ORCHESTRATOR_STARTED, Event.EVENT_RAISED, Event.TASK_SCHEDULED, Event.ORCHESTRATOR_COMPLETED
    ]  # fmt: skip
    assert instance.timers == {"0": NOW + 3600} and instance.action_ids == [None, 0, 1]


# -- a sub-orchestration ----------------------------------------------------------------------------------------


def calls_a_child(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    return (yield context.call_sub_orchestrator("child", 4, context.get_input()))


def test_a_sub_orchestration_is_created_with_its_parent_and_its_completion_ends_the_parent() -> None:
    instance = new_instance(input_value='"kid-1"')
    first = run(calls_a_child, instance)
    parent = {"id": "inst", "taskId": 0, "execution": "exec-1"}
    assert first.effects == [StartChild("child", "kid-1", "4", parent)]
    created = instance.history[2]
    assert (created["EventType"], created["EventId"], created["InstanceId"], created["Name"]) == (
        Event.SUB_ORCHESTRATION_INSTANCE_CREATED, 0, "kid-1", "child"
    )  # fmt: skip
    assert instance.children == {"0": {"id": "kid-1", "name": "child", "input": "4"}}

    deliver(instance, Event.SUB_ORCHESTRATION_INSTANCE_COMPLETED, TaskScheduledId=0, Result='{"value": 16}')
    assert run(calls_a_child, instance).end == Completed({"value": 16})


def test_a_child_id_the_extension_refuses_fails_the_parent_and_starts_nothing() -> None:
    instance = new_instance(input_value='"bad/id"')
    outcome = run(calls_a_child, instance)
    assert outcome.effects == []
    assert outcome.end == Failed("Instance ID 'bad/id' contains invalid characters or is too long.")
    assert kinds(instance.history)[-1] == Event.EXECUTION_COMPLETED and instance.history[-1]["OrchestrationStatus"] == 3


# -- an entity call and its answer ------------------------------------------------------------------------------


def calls_an_entity(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    return (yield context.call_entity(df.EntityId("counter", "k"), "add", 10))


def test_an_entity_call_sends_its_request_and_the_answer_raised_under_the_request_id_completes_it() -> None:
    instance = new_instance()
    first = run(calls_an_entity, instance, request_id="req-1")
    operation = {"name": "add", "input": '"10"', "isSignal": False, "id": "req-1", "parent": "inst",
                 "parentExecution": "exec-1"}  # fmt: skip
    assert first.effects == [SendToEntity("@counter@k", operation)]
    sent = instance.history[2]
    assert (sent["EventType"], sent["EventId"], sent["InstanceId"], sent["Name"]) == (
        Event.EVENT_SENT, 0, "@counter@k", "op"
    )  # fmt: skip
    assert json.loads(sent["Input"]) == {"op": "add", "input": "10", "id": "req-1", "parent": "inst",
                                         "parentExecution": "exec-1"}  # fmt: skip
    assert instance.entity_requests == {"0": "req-1"}

    deliver(instance, Event.EVENT_RAISED, Name="req-1", Input=json.dumps({"result": "11"}))
    assert run(calls_an_entity, instance).end == Completed(11)


def test_an_entity_the_app_does_not_define_fails_the_orchestration() -> None:
    def calls_nobody(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
        return (yield context.call_entity(df.EntityId("nobody", "k"), "get"))

    outcome = run(calls_nobody, new_instance())
    assert outcome.effects == []
    assert outcome.end == Failed("The function 'nobody' doesn't exist, is disabled, or is not an entity function.")


# -- continue-as-new --------------------------------------------------------------------------------------------


def continues_with_what_it_got(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    got = yield context.wait_for_external_event("A")
    context.continue_as_new(got)


def test_continue_as_new_carries_the_events_of_its_batch_after_the_one_it_used() -> None:
    instance = new_instance()
    assert run(continues_with_what_it_got, instance).end is None
    deliver(instance, Event.EVENT_RAISED, Name="A", Input='"first"')
    deliver(instance, Event.EVENT_RAISED, Name="B", Input='"second"')
    deliver(instance, Event.EVENT_RAISED, Name="A", Input='"third"')
    outcome = run(continues_with_what_it_got, instance)
    # The shim reached ContinueAsNew once the first A was applied: B and the second A go to the next generation.
    assert isinstance(outcome.end, ContinuedAsNew) and outcome.end.input == '"first"'
    assert [(item["Name"], item["Input"]) for item in outcome.end.carried] == [("B", '"second"'), ("A", '"third"')]
    assert outcome.effects == [] and instance.pending == []


# -- the custom status limit ------------------------------------------------------------------------------------


def sets_a_big_status(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    context.set_custom_status("x" * 9000)  # 18 KB in UTF-16
    return (yield context.call_activity("say_hello", "never"))


def test_a_custom_status_over_16_kb_fails_the_orchestration_before_anything_is_scheduled() -> None:
    instance = new_instance()
    outcome = run(sets_a_big_status, instance)
    assert outcome.effects == []
    assert isinstance(outcome.end, Failed)
    assert outcome.end.error.startswith("The UTF-16 size of the JSON-serialized payload must not exceed 16 KB.")
    assert Event.TASK_SCHEDULED not in kinds(instance.history)
    assert instance.history[-1]["OrchestrationStatus"] == 3 and instance.history[-1]["Result"] == outcome.end.error


# -- action lists the shim cannot follow ------------------------------------------------------------------------


def test_actions_past_one_the_shim_still_awaits_wait_and_so_does_the_end() -> None:
    instance = new_instance()
    started = event(Event.ORCHESTRATOR_STARTED, at=NOW)
    timer = {"actionType": ActionType.CREATE_TIMER, "fireAt": iso(NOW + 60), "isCanceled": False}
    activity = {"actionType": ActionType.CALL_ACTIVITY, "functionName": "say_hello", "input": '"late"'}
    state = {"isDone": True, "output": "done", "actions": [[timer, activity]]}
    outcome = episode.apply_reply(
        instance, started, list(instance.pending), episode.Reply(state), app=app_index(), now=NOW,
        new_request_id=lambda: "r",
    )  # fmt: skip
    # The SDK says it is done, but the shim awaits the timer (not fired): the activity is not scheduled and the
    # orchestration does not complete.
    assert outcome.effects == [ArmTimer(0, NOW + 60)] and outcome.end is None
    assert outcome.stuck is not None and outcome.stuck.blocked_at == 0 and outcome.stuck.reached == 1
    assert kinds(instance.history)[-1] == Event.ORCHESTRATOR_COMPLETED and instance.seen == 1


@pytest.mark.parametrize("kind", [13, 99])  # the SDK's ActionType stops at 12 (WHEN_ALL)
def test_an_action_type_devhost_does_not_know_fails_the_orchestration(kind: int) -> None:
    instance = new_instance()
    started = event(Event.ORCHESTRATOR_STARTED, at=NOW)
    state = {"isDone": False, "actions": [[{"actionType": kind}]]}
    outcome = episode.apply_reply(
        instance, started, list(instance.pending), episode.Reply(state), app=app_index(), now=NOW,
        new_request_id=lambda: "r",
    )  # fmt: skip
    assert outcome.end == Failed(f"unsupported action type {kind}") and outcome.effects == []


# -- retries ----------------------------------------------------------------------------------------------------


def retries_twice(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    options = df.RetryOptions(first_retry_interval_in_milliseconds=500, max_number_of_attempts=2)
    return (yield context.call_activity_with_retry("say_hello", options, "flaky"))


def test_a_failed_attempt_arms_a_retry_timer_and_its_firing_schedules_the_next_attempt() -> None:
    instance = new_instance()
    work = {"name": "say_hello", "input": '"flaky"', "execution": "exec-1"}
    assert run(retries_twice, instance).effects == [RunActivity(0, work)]
    deliver(instance, Event.TASK_FAILED, TaskScheduledId=0, Reason="boom", Details=None)
    assert run(retries_twice, instance).effects == [ArmTimer(1, NOW + 0.5)]
    deliver(instance, Event.TIMER_FIRED, TimerId=1, FireAt=iso(NOW + 0.5))
    assert run(retries_twice, instance).effects == [RunActivity(2, work)]
    assert instance.retries["0"]["attempt"] == 2 and instance.retries["0"]["taskId"] == 2
