"""Per-attempt callback names through the real Durable SDK: a task a chunk starts today waits for each attempt's
reports under `Callback.a<attempt>` and asks the create activity for v3 tokens, so the endpoint can raise with no
read (`api/callbacks.py`). An older attempt's report, kept by the SDK under its own name, can then never take the
place of the current attempt's, whatever order they arrive in; the names survive a continue-as-new; a task
started without the field (an instance from before) keeps the one shared name and v2 tokens.
"""

from __future__ import annotations

from typing import Any

import pytest

from acibatch import durable_names as names
from acibatch.callbackevents import CallbackEvents
from acibatch.callbacks import attempt_event
from acibatch.checkpoint import WAITS_PER_GENERATION, TaskStart, first_input
from acibatch.plan import TaskInput
from tests.orchestrators.actions import activity, call_entity, continue_as_new, wait_for
from tests.orchestrators.conftest import TaskFactory
from tests.orchestrators.driver import Driver
from tests.orchestrators.harness import Orchestration
from tests.orchestrators.test_task import CALLBACK, CAPACITY, PROGRESS, Task, report
from tests.orchestrators.test_task_waits import ended, quiet_world

pytestmark = pytest.mark.timeout(30)


class NamedTask(Task):
    """A task started the way a chunk of a job submitted with BATCH_CALLBACK_EVENTS=perAttempt starts it."""

    def __init__(self, task: TaskInput) -> None:
        self.task = task
        self.h = Orchestration(names.TASK_ORCHESTRATOR, first_input(task, CallbackEvents.PER_ATTEMPT), task.instance_id)
        assert self.h.run().keys == [call_entity(PROGRESS, "begin"), call_entity(CAPACITY, "acquire")]


def creating(driver: Driver, attempt: int) -> dict[str, Any]:
    """Run until the attempt's create is scheduled; its request."""
    episode = driver.run_until(lambda e: activity(names.CREATE_GROUP) in e.keys)
    request: dict[str, Any] = episode.new[-1].input
    assert request["attempt"] == attempt
    return request


def test_a_new_task_waits_under_its_attempts_name_and_asks_for_v3_tokens(make_task: TaskFactory) -> None:
    t = NamedTask(make_task())
    driver = quiet_world(t)
    assert creating(driver, 1)["tokenFormat"] == "v3"
    watching = driver.run_until(lambda e: wait_for(attempt_event(1)) in e.keys)
    assert wait_for(CALLBACK) not in watching.keys
    # A report under the shared name is nobody's now: it ends nothing.
    t.h.event(CALLBACK, report("succeeded", 1, exitCode=0, result={"shared": True}))
    t.h.event(attempt_event(1), report("succeeded", 1, exitCode=0, result={"named": True}))
    record = ended(driver)
    assert (record["state"], record["attempts"], record["result"]) == ("Succeeded", 1, {"named": True})


@pytest.mark.parametrize("stale_first", [False, True], ids=["current-then-stale", "stale-then-current"])
def test_an_older_attempts_report_never_takes_the_place_of_the_current_one(
    make_task: TaskFactory, stale_first: bool
) -> None:
    t = NamedTask(make_task(maxAttempts=2))
    driver = quiet_world(t)
    creating(driver, 1)
    driver.run_until(lambda e: wait_for(attempt_event(1)) in e.keys)
    t.h.event(attempt_event(1), report("failed", 1, exitCode=3))
    assert creating(driver, 2)["tokenFormat"] == "v3"
    # Both reports come while no callback waiter is open (the create runs), so the SDK keeps each for the next
    # waiter of its name; under one shared name the later would win. The current report first, then the stale
    # one, is the order that would erase it.
    current = (attempt_event(2), report("succeeded", 2, exitCode=0, result={"from": 2}))
    stale = (attempt_event(1), report("succeeded", 1, exitCode=0, result={"from": 1}))
    for name, data in (stale, current) if stale_first else (current, stale):
        t.h.event(name, data)
    sent_at = t.h.now
    record = ended(driver)
    assert (record["state"], record["attempts"], record["result"]) == ("Succeeded", 2, {"from": 2})
    # Heard at the attempt's first wait, not at a poll.
    assert (t.h.now - sent_at).total_seconds() < t.task.poll_seconds


def test_the_names_survive_a_continue_as_new(make_task: TaskFactory) -> None:
    t = NamedTask(make_task(taskTimeoutSeconds=7 * 24 * 3600))
    driver = quiet_world(t)
    driver.run_until(lambda e: wait_for(attempt_event(1)) in e.keys)
    # Step by hand to see the generation's end (the driver starts the next generation itself).
    for _ in range(4 * WAITS_PER_GENERATION):
        if not driver.answer_open_calls():
            t.h.timer_fired()
        episode = t.h.run()
        if episode.keys == [continue_as_new()]:
            break
    else:
        raise AssertionError("the task never continued as new")
    carried = episode.continued_with
    assert carried is not None and carried["resume"]["callbackEvents"] == "perAttempt"
    assert TaskStart.from_input(carried).callback_events == "perAttempt"
    t.h.next_generation()
    assert t.h.run().keys == [call_entity(PROGRESS, "cancelled")]  # the new generation's first episode
    watching = driver.run_until(lambda e: wait_for(attempt_event(1)) in e.keys or wait_for(CALLBACK) in e.keys)
    assert wait_for(attempt_event(1)) in watching.keys
    t.h.event(attempt_event(1), report("succeeded", 1, exitCode=0, result={"generation": 2}))
    record = ended(driver)
    assert (record["state"], record["result"]) == ("Succeeded", {"generation": 2})


def test_a_task_started_without_the_field_keeps_the_shared_name_and_v2_tokens(make_task: TaskFactory) -> None:
    t = Task(make_task())  # the bare `TaskInput`, as chunks started tasks before per-attempt names
    driver = quiet_world(t)
    assert "tokenFormat" not in creating(driver, 1)
    watching = driver.run_until(lambda e: wait_for(CALLBACK) in e.keys)
    assert wait_for(attempt_event(1)) not in watching.keys
    t.h.event(CALLBACK, report("succeeded", 1, exitCode=0, result={"shared": True}))
    record = ended(driver)
    assert (record["state"], record["result"]) == ("Succeeded", {"shared": True})
