"""devhost's continue-as-new does what the Durable extension does on Azure Storage (README: quirks table).

Each test drives an orchestrator of the `continue_as_new` app through the Durable HTTP API of a real devhost
process, with orchestration sessions on (the default) and in verify mode.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.durable_functions.models.actions import ActionType
from azure.durable_functions.models.history import HistoryEventType

from devhost import shim
from devhost.launcher import DevhostProcess
from tests.httpserve import call_json

pytestmark = pytest.mark.e2e
APP = Path(__file__).parent / "apps" / "continue_as_new"
FINISHED = {"Completed", "Failed", "Terminated"}


class Api:
    """The Durable HTTP API of one devhost, with its system key."""

    def __init__(self, host: DevhostProcess) -> None:
        self.base = host.durable_url
        self.headers = {"x-functions-key": host.system_key}
        self.seen_statuses: set[str] = set()

    def call(self, path: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
        return call_json(f"{self.base}/{path}", method, body, self.headers)

    def start(self, orchestrator: str, instance: str, body: Any) -> str:
        status, payload = self.call(f"orchestrators/{orchestrator}/{instance}", "POST", body)
        assert status == 202, payload
        return instance

    def post(self, instance: str, action: str) -> None:
        status, payload = self.call(f"instances/{instance}/{action}", "POST")
        assert status == 202, payload

    def raise_event(self, instance: str, name: str) -> None:
        self.post(instance, f"raiseEvent/{name}")

    def status(self, instance: str) -> dict[str, Any]:
        status, payload = self.call(f"instances/{instance}?showHistory=true&showHistoryOutput=true")
        assert status in {200, 202}, payload
        self.seen_statuses.add(payload["runtimeStatus"])
        return dict(payload)

    def until(self, instance: str, check: Callable[[dict[str, Any]], bool], timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            current = self.status(instance)
            if check(current):
                return current
            assert current["runtimeStatus"] not in FINISHED and time.monotonic() < deadline, current
            time.sleep(0.05)

    def finished(self, instance: str, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (current := self.status(instance))["runtimeStatus"] not in FINISHED:
            assert time.monotonic() < deadline, current
            time.sleep(0.05)
        return current


@pytest.fixture(scope="module", params=["1", "verify"], ids=["sessions", "verify"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    folder = tmp_path_factory.mktemp(f"can-{request.param}")
    env = {"DEVHOST_ORCHESTRATION_SESSIONS": request.param}
    with DevhostProcess(APP, folder / "data", env=env, log_path=folder / "devhost.log") as host:
        yield Api(host)


def of_kind(status: dict[str, Any], kind: HistoryEventType) -> list[dict[str, Any]]:
    return [item for item in status.get("historyEvents") or [] if int(item["EventType"]) == kind]


def raised(status: dict[str, Any]) -> list[str]:
    return [str(item["Name"]) for item in of_kind(status, HistoryEventType.EVENT_RAISED)]


def generation(status: dict[str, Any]) -> int:
    value = status["input"]
    return int((json.loads(value) if isinstance(value, str) else value)["gen"])


def waiting_in(gen: int) -> Callable[[dict[str, Any]], bool]:
    """The given generation's first episode has been applied (its history is not empty)."""
    return lambda status: generation(status) == gen and bool(status.get("historyEvents"))


def test_events_after_the_continue_as_new_point_of_its_batch_are_carried_over_the_others_are_lost(api: Api) -> None:
    instance = api.start("carries_events", "carries", {"gen": 0})
    api.until(instance, waiting_in(0))
    api.raise_event(instance, "early")  # its own episode: the old generation never uses it
    api.until(instance, lambda status: "early" in raised(status))
    # Held while suspended, the three arrive as one batch: [before, go, after]. The shim calls ContinueAsNew
    # once "go" has been applied, so "before" was handed to the old generation (and lost), "after" is carried.
    api.post(instance, "suspend")
    for name in ("before", "go", "after"):
        api.raise_event(instance, name)
    api.post(instance, "resume")
    done = api.finished(instance)
    assert done["runtimeStatus"] == "Completed" and done["output"] == "after"
    assert raised(done) == ["after"]  # the new history holds the carried event, right after ExecutionStarted
    kinds = [int(item["EventType"]) for item in done["historyEvents"]]
    assert kinds[1:3] == [HistoryEventType.EXECUTION_STARTED, HistoryEventType.EVENT_RAISED]


def test_events_raised_while_the_last_episode_runs_or_after_it_reach_the_new_generation(api: Api) -> None:
    instance = api.start("slow_switch", "slow-switch", {"gen": 0})
    api.until(instance, waiting_in(0))
    api.raise_event(instance, "go")
    time.sleep(0.5)  # generation 0's last episode is still running (1.5 s)
    api.raise_event(instance, "during")
    api.until(instance, lambda status: generation(status) == 1 and "during" in raised(status))
    api.raise_event(instance, "later")
    done = api.finished(instance)
    assert done["output"] == ["during", "later"]


def test_results_and_timers_of_the_old_generation_are_dropped(api: Api) -> None:
    instance = api.start("leaves_work_behind", "leaves-work", {"gen": 0})
    api.raise_event(instance, "go")
    done = api.finished(instance)
    # Generation 1 reuses ids 0-2; the old activity (1 s), timer (1.5 s) and child (1 s) end first, yet its
    # tasks complete with their own results, and its 3 s timer is not fired early by the old one.
    assert done["runtimeStatus"] == "Completed", done
    assert done["output"]["activity"] == "activity 1" and done["output"]["child"] == "child 1"
    assert done["output"]["elapsed"] >= 3
    assert len(of_kind(done, HistoryEventType.TASK_COMPLETED)) == 1
    assert len(of_kind(done, HistoryEventType.TIMER_FIRED)) == 1
    assert len(of_kind(done, HistoryEventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED)) == 1


def test_custom_status_is_carried_through_the_new_generations_first_episode_only(api: Api) -> None:
    instance = api.start("keeps_status", "keeps-status", {"gen": 0})
    before = api.until(instance, lambda status: status["customStatus"] == "from gen 0")
    time.sleep(1.1)  # createdTime has whole seconds
    api.raise_event(instance, "go")
    first = api.until(instance, waiting_in(1))
    assert first["runtimeStatus"] == "Running" and first["customStatus"] == "from gen 0"
    assert first["createdTime"] > before["createdTime"]  # the new generation's start
    assert len(of_kind(first, HistoryEventType.EXECUTION_STARTED)) == 1
    api.raise_event(instance, "next")
    second = api.until(instance, lambda status: "next" in raised(status))
    assert second["customStatus"] is None  # an episode that sets none stores null
    api.raise_event(instance, "set")
    api.until(instance, lambda status: status["customStatus"] == "from gen 1")
    api.raise_event(instance, "end")
    done = api.finished(instance)
    assert done["output"] == "done" and done["customStatus"] == "from gen 1"
    assert "ContinuedAsNew" not in api.seen_statuses  # Azure Storage writes the new generation at once


def test_a_sub_orchestration_that_continues_as_new_answers_its_parent_once_with_the_last_output(api: Api) -> None:
    parent = api.start("calls_counter", "counts", None)
    done = api.finished(parent)
    child = "counts-counter"
    assert done["runtimeStatus"] == "Completed"
    assert done["output"] == {"n": 3, "upto": 3, "seen": [child] * 4}
    assert len(of_kind(done, HistoryEventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED)) == 1
    # The history API shows the last generation only.
    last = api.finished(child)
    assert last["runtimeStatus"] == "Completed"
    started = of_kind(last, HistoryEventType.EXECUTION_STARTED)
    assert len(started) == 1 and json.loads(started[0]["Input"])["n"] == 3
    assert len(of_kind(last, HistoryEventType.TASK_SCHEDULED)) == 1


def test_the_shim_model_says_how_many_events_dtfx_applied_before_the_continue_as_new() -> None:
    def raised_event(name: str) -> dict[str, Any]:
        return {"EventType": HistoryEventType.EVENT_RAISED, "Name": name}

    actions = [
        {"actionType": ActionType.WAIT_FOR_EXTERNAL_EVENT, "externalEventName": "go"},
        {"actionType": ActionType.CONTINUE_AS_NEW, "input": "{}"},
    ]
    history = [
        {"EventType": HistoryEventType.ORCHESTRATOR_STARTED},
        {"EventType": HistoryEventType.EXECUTION_STARTED},
        raised_event("before"),
        raised_event("go"),
        raised_event("after"),
    ]
    view = shim.progress(actions, history, [None, None])
    assert view.blocked_at is None and view.applied == 4  # "after" comes later: carried into the next generation
