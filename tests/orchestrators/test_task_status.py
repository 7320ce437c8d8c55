"""The task orchestrator's custom status stays under the Durable extension's 16 KB however much a task reports.

The extension fails an orchestration whose custom status is over 16 KB in UTF-16, before the episode's actions
are scheduled (README, quirks table), so every episode of a loud task is checked against that rule here, through
the real Durable SDK.
"""

from __future__ import annotations

import pytest

from acibatch import durable_names as names
from acibatch.records import PROGRESS_OMITTED
from devhost.payloadlimits import custom_status_error
from tests.orchestrators.actions import Episode, call_entity
from tests.orchestrators.conftest import TaskFactory
from tests.orchestrators.test_task import CALLBACK, Task, final, report, to_cleanup

pytestmark = pytest.mark.timeout(10)

PROGRESS = {"blob": "p" * 15 * 1024}
RESULT = {"blob": "r" * 15 * 1024}
LOG_TAIL = "x" * 16 * 1024  # what the cleanup activity keeps of a 64 KB log


def within_limit(episode: Episode) -> Episode:
    assert custom_status_error(episode.custom_status) is None, "the extension would fail this episode"
    return episode


def test_a_task_that_reports_15_kb_twice_and_logs_64_kb_keeps_a_small_status(make_task: TaskFactory) -> None:
    t = Task(make_task())
    t.running()
    t.h.event(CALLBACK, report("progress", 1, progress=PROGRESS))
    listening = within_limit(t.h.run())
    assert listening.custom_status["progress"] == {"omitted": PROGRESS_OMITTED}
    assert listening.custom_status["state"] == "Running"

    t.h.event(CALLBACK, report("succeeded", 1, exitCode=0, result=RESULT))
    within_limit(to_cleanup(t, within_limit(t.h.run())))
    t.h.activity_completed(names.CLEANUP_GROUP, {"logTail": LOG_TAIL, "exitCode": 0, "existed": True})
    releasing = within_limit(t.h.run())
    assert releasing.keys == [call_entity(names.CAPACITY_ENTITY, "release")]
    done = within_limit(t.released(t.lease(1)))
    assert done.is_done and done.error is None
    assert "result" not in done.custom_status and "logTail" not in done.custom_status
    # The output, which the API reads once the task ended, has every report whole.
    assert (final(done)["state"], final(done)["result"], final(done)["progress"]) == ("Succeeded", RESULT, PROGRESS)
    assert final(done)["logTail"] == LOG_TAIL
