"""Reports the callback endpoint now raises without reading the task first (v2 tokens, `api/callbacks.py`), through
the real Durable SDK: an older attempt's report, even one the SDK keeps across the attempt boundary because no
waiter was open when it came, never completes the next attempt, and that attempt's own report still ends it, late
by one poll interval at most; a report raised while a finished attempt is being cleaned up changes nothing.

(A stale report raised while the next attempt's group runs is in test_task.py.)"""

from __future__ import annotations

from datetime import timedelta

import pytest

from acibatch import durable_names as names
from tests.orchestrators.actions import activity, wait_for
from tests.orchestrators.conftest import TaskFactory
from tests.orchestrators.test_task import CALLBACK, RESERVE_DELETE, Task, report, to_cleanup
from tests.orchestrators.test_task_waits import ended, quiet_world

pytestmark = pytest.mark.timeout(20)


def test_an_older_attempts_report_kept_across_the_attempt_boundary_never_completes_the_next(
    make_task: TaskFactory,
) -> None:
    t = Task(make_task(maxAttempts=2))
    t.running()
    t.h.event(CALLBACK, report("failed", 1, exitCode=3))
    driver = quiet_world(t)
    creating = driver.run_until(lambda episode: activity(names.CREATE_GROUP) in episode.keys)
    assert creating.new[-1].input["attempt"] == 2
    # Attempt 1's container, not yet deleted, reports success while no Callback waiter is open: the SDK keeps the
    # event and hands it to the next attempt's waiters (azure-functions-durable-python#507).
    t.h.event(CALLBACK, report("succeeded", 1, exitCode=0, result={"from": 1}))
    watching = driver.run_until(lambda episode: wait_for(CALLBACK) in episode.keys)
    assert not watching.finished
    sent_at = t.h.now
    t.h.event(CALLBACK, report("succeeded", 2, exitCode=0, result={"from": 2}))
    t.h.run()  # the report's own episode, as the host plays it at once
    # The SDK hands the kept stale report to each new waiter, and a repeat mutes the listener until the next poll
    # (`orchestrators.task_events`): the attempt's own report, which replaces the kept one, is heard at that poll
    # at the latest. Then the attempt ends with its own result.
    decided = driver.run_until(lambda episode: RESERVE_DELETE in episode.keys)
    assert t.h.now - sent_at <= timedelta(seconds=t.task.poll_seconds + 3)  # the poll's own episodes
    assert not decided.finished
    record = ended(driver)
    assert (record["state"], record["attempts"], record["result"]) == ("Succeeded", 2, {"from": 2})


def test_a_report_raised_while_a_finished_attempt_is_cleaned_up_changes_nothing(make_task: TaskFactory) -> None:
    t = Task(make_task(maxAttempts=2))
    t.running()
    t.h.event(CALLBACK, report("succeeded", 1, exitCode=0, result={"first": True}))
    to_cleanup(t, t.h.run())
    # The task's record is terminal, its orchestration still running: a v2 report is raised, not answered from it.
    t.h.event(CALLBACK, report("failed", 1, exitCode=9, message="late"))
    record = ended(quiet_world(t))
    assert (record["state"], record["attempts"], record["result"], record["exitCode"]) == (
        "Succeeded",
        1,
        {"first": True},
        0,
    )
