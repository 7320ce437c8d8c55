"""devhost end to end: a sample v2 Durable Functions app driven over HTTP with the real SDK client."""

from __future__ import annotations

import contextlib
import json
import math
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devhost.launcher import DevhostProcess, ServiceFailed

pytestmark = pytest.mark.e2e
APPS = Path(__file__).parent / "apps"


def call(
    url: str, method: str = "GET", body: Any = None, raw: bytes | None = None, key: str | None = None
) -> tuple[int, Any]:
    """`key`: the Durable extension's system key, which devhost requires on `/runtime/webhooks/durabletask/...`."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    headers = {"Content-Type": "application/json", "x-probe": "probe", **({"x-functions-key": key} if key else {})}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            payload = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        payload, status = error.read(), error.code
    try:
        return status, json.loads(payload) if payload else None
    except ValueError:
        return status, payload.decode()


class App:
    def __init__(self, host: DevhostProcess, marks: Path) -> None:
        self.url, self.marks, self.host = host.url, marks, host
        self.durable, self.key = host.durable_url, host.system_key

    def start(self, orchestrator: str, body: Any = None, instance: str | None = None) -> str:
        path = f"/api/start/{orchestrator}" + (f"/{instance}" if instance else "")
        status, payload = call(self.url + path, "POST", body)
        assert status == 202, payload
        return str(payload["id"])

    def status(self, instance: str) -> dict[str, Any]:
        status, payload = call(f"{self.durable}/instances/{instance}?showHistory=true", key=self.key)
        assert status in {200, 202}, payload
        return dict(payload)

    def wait(self, instance: str, timeout: float = 20, until: set[str] | None = None) -> dict[str, Any]:
        until = until or {"Completed", "Failed", "Terminated"}
        deadline = time.monotonic() + timeout
        while True:
            current = self.status(instance)
            if current["runtimeStatus"] in until:
                return current
            assert time.monotonic() < deadline, current
            time.sleep(0.05)


def start_app(tmp_path: Path, data: Path | None = None) -> DevhostProcess:
    env = {"FEATURES_MARK_DIR": str(tmp_path), "TICK_SCHEDULE": "*/1 * * * * *"}
    return DevhostProcess(APPS / "features", data or tmp_path / "data", env=env, log_path=tmp_path / "devhost.log")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    folder = tmp_path_factory.mktemp("features")
    with start_app(folder) as host:
        yield App(host, folder)


def test_http_routes_methods_and_request_fields(app: App) -> None:
    status, body = call(app.url + "/api/echo/ann/more?q=1", "POST", raw=b"hello")
    assert status == 200
    assert body == {"method": "POST", "name": "ann", "rest": "more", "params": {"q": "1"}, "header": "probe",
                    "body": "hello", "url": app.url + "/api/echo/ann/more?q=1"}  # fmt: skip
    assert call(app.url + "/api/echo/bob")[1]["rest"] is None
    assert call(app.url + "/api/items/21") == (200, "item 42")
    assert call(app.url + "/api/items/abc")[0] == 404
    assert call(app.url + "/api/files/a/b/c.txt") == (203, "a/b/c.txt")
    assert call(app.url + "/api/items/1", "DELETE")[0] == 405
    assert call(app.url + "/api/nothing")[0] == 404
    assert call(app.url + "/api/boom")[0] == 500
    assert call(app.url + "/admin/host/status")[1]["state"] == "Running"


def test_activities_sequence_and_fan_out(app: App) -> None:
    done = app.wait(app.start("sequence", ["Osaka", "Lima"]))
    assert done["runtimeStatus"] == "Completed"
    assert done["output"] == ["Hello Osaka!", "Hello Lima!", "Hello async!"]
    assert app.wait(app.start("fan_out", 200))["output"] == sum(i * i for i in range(200))


def episodes(status: dict[str, Any]) -> int:
    return sum(1 for item in status["historyEvents"] if item["EventType"] == 12)  # OrchestratorStarted


def test_a_fan_in_replays_when_its_results_can_matter_not_once_per_child(app: App) -> None:
    done = app.wait(app.start("gathers", 8), timeout=30)
    assert done["runtimeStatus"] == "Completed", done
    assert done["output"] == {"squares": [i * i for i in range(8)], "mixed": [1, 2, 9]}
    # Children finish 100 ms apart: one episode each would be 8 + the start + the mixed task_all + its end.
    # Held until the last child: the start, the end of each task_all (entity answers come one by one).
    assert episodes(done) <= 4, [item["EventType"] for item in done["historyEvents"]]


def test_outputs_and_custom_status_keep_what_json_keeps(app: App) -> None:
    # The SDK writes them with `json`, so they may hold integers beyond 64 bits and NaN.
    done = app.wait(app.start("beyond_orjson"), timeout=30)
    assert done["runtimeStatus"] == "Completed", done
    assert done["output"]["big"] == 2**70 and math.isnan(done["output"]["nan"])
    assert done["customStatus"] == {"big": -(2**65)}


def test_a_caught_fan_in_failure_does_not_hold_the_members_still_running(app: App) -> None:
    done = app.wait(app.start("gather_then_member"), timeout=30)
    assert done["runtimeStatus"] == "Completed", done
    assert done["output"] == {"after_failure": 25}


def test_a_dead_language_worker_is_replaced_and_what_it_ran_fails_or_runs_again(app: App) -> None:
    done = app.wait(app.start("survives_worker_loss"), timeout=30)
    assert done["runtimeStatus"] == "Completed", done
    assert "WorkerExited" in done["output"]["caught"] and done["output"]["after"] == 25
    assert call(app.url + "/api/echo/after-crash")[0] == 200  # HTTP functions run on the replacement
    # An episode whose worker dies runs again (its events are still stored); the third loss in a row fails it.
    failed = app.wait(app.start("crashes_every_replay"), timeout=30)
    assert failed["runtimeStatus"] == "Failed"
    assert "language worker exited" in failed["output"] and "3 times in a row" in failed["output"]


@pytest.mark.parametrize(("sessions", "runs"), [("1", 1), ("0", 4)])
def test_with_sessions_a_worker_runs_an_orchestration_from_the_start_once(
    tmp_path: Path, sessions: str, runs: int
) -> None:
    env = {
        "FEATURES_MARK_DIR": str(tmp_path),
        "TICK_SCHEDULE": "0 0 0 1 1 *",
        "DEVHOST_ORCHESTRATION_SESSIONS": sessions,
    }
    with DevhostProcess(APPS / "features", tmp_path / "data", env=env, log_path=tmp_path / "devhost.log") as host:
        app = App(host, tmp_path)
        instance = app.start("counts_its_runs")
        assert app.wait(instance)["output"] == 1 + 4 + 9
        # Four episodes: the start and three activity results. Off, each replays from the start.
        assert (tmp_path / f"runs-{instance}.log").read_text().count("run") == runs
        # A worker that dies takes its sessions along: the replacement is sent whole histories again.
        done = app.wait(app.start("survives_worker_loss"), timeout=30)
        assert done["runtimeStatus"] == "Completed", done
        assert done["output"]["after"] == 25
        assert app.wait(app.start("counter_loop", 0))["output"] == "finished at 3"  # each new execution anew


def test_retries_follow_the_extension_semantics(app: App) -> None:
    instance = app.start("retries", instance="retry-1")
    done = app.wait(instance)
    assert done["output"] == ["ok after 3", "gave up: True", {"child_of": "retry-1", "value": 49}]
    assert (app.marks / "flaky-retry-1x").read_text() == "3"  # maxNumberOfAttempts=3, then the failure surfaces


def test_events_timers_task_any_custom_status_and_the_double_encoding_quirk(app: App) -> None:
    instance = app.start("waits")
    # Raised before the orchestration waits for it: buffered, not lost.
    assert call(f"{app.url}/api/raise/{instance}/Early", "POST", {"n": 1})[0] == 202
    time.sleep(0.3)
    assert app.status(instance)["customStatus"] == {"phase": "waiting"}
    assert call(f"{app.url}/api/raise/{instance}/Approval", "POST", "yes")[0] == 202
    done = app.wait(instance)
    # The Python client double-encodes event data; like the real host, devhost delivers the JSON text (#295).
    assert done["output"]["early"] == '{"n": 1}'
    assert done["output"]["approval"] == '"yes"'
    assert done["customStatus"] == {"phase": "done"}
    kinds = [event["EventType"] for event in done["historyEvents"]]
    assert kinds[:2] == [12, 0] and 10 in kinds and 11 in kinds
    # A raw JSON body through the management URL arrives decoded.
    second = app.start("waits")
    events = f"{app.durable}/instances/{second}/raiseEvent"
    assert call(f"{events}/Early", "POST", {"n": 2}, key=app.key)[0] == 202
    assert call(f"{events}/Approval", "POST", {"ok": True}, key=app.key)[0] == 202
    assert app.wait(second)["output"]["approval"] == {"ok": True}


def test_new_uuid_is_deterministic_across_replays(app: App) -> None:
    instance = app.start("waits", instance="uuid-check")
    call(f"{app.url}/api/raise/{instance}/Early", "POST", 1)
    call(f"{app.url}/api/raise/{instance}/Approval", "POST", 2)
    first = app.wait(instance)["output"]["uuid"]
    call(f"{app.durable}/instances/{instance}", "DELETE", key=app.key)
    again = app.start("waits", instance="uuid-check")
    call(f"{app.url}/api/raise/{again}/Early", "POST", 1)
    call(f"{app.url}/api/raise/{again}/Approval", "POST", 2)
    assert isinstance(first, str) and len(first) == 36
    assert app.wait(again)["output"]["uuid"] != first  # a new execution starts at a new time: a new uuid


def test_continue_as_new(app: App) -> None:
    done = app.wait(app.start("counter_loop", 0))
    assert done["output"] == "finished at 3"


def test_entities_from_orchestrations_and_clients(app: App) -> None:
    done = app.wait(app.start("uses_entity", "e1"))
    assert done["output"]["after_add"] == 15
    assert "entity operation failed" in done["output"]["caught"]
    assert done["output"]["state"] == 15  # the failed operation did not corrupt the state
    assert call(f"{app.url}/api/entity/counter/e1/add", "POST", 5)[0] == 202
    deadline = time.monotonic() + 10
    while call(f"{app.url}/api/entity/counter/e1/get")[1]["state"] != 20:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert call(f"{app.durable}/entities/counter/e1", key=app.key)[1] == 20
    call(f"{app.url}/api/entity/counter/e1/delete", "POST", None)
    deadline = time.monotonic() + 10
    while call(f"{app.url}/api/entity/counter/e1/get")[1]["exists"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert call(f"{app.durable}/entities/counter/e1", key=app.key)[0] == 404


def test_failures_surface_like_the_extension(app: App) -> None:
    failed = app.wait(app.start("fails"))
    assert failed["runtimeStatus"] == "Failed"
    assert "orchestrator gave up" in failed["output"]
    missing = app.wait(app.start("calls_missing"))
    assert missing["runtimeStatus"] == "Failed"
    assert "no_such_activity' doesn't exist" in missing["output"]
    status, body = call(f"{app.url}/api/start/not_an_orchestrator", "POST")
    assert status == 500  # the starter function raised the SDK's exception
    status, body = call(f"{app.durable}/orchestrators/not_an_orchestrator", "POST", key=app.key)
    assert status == 400 and "doesn't exist" in body["ExceptionMessage"]


def test_management_operations(app: App) -> None:
    instance = app.start("waits")
    app.wait(instance, until={"Running"})
    assert call(f"{app.url}/api/manage/suspend/{instance}", "POST")[0] == 202
    assert app.status(instance)["runtimeStatus"] == "Suspended"
    call(f"{app.url}/api/raise/{instance}/Early", "POST", 1)  # held while suspended
    assert call(f"{app.url}/api/manage/resume/{instance}", "POST")[0] == 202
    running = call(f"{app.url}/api/manage/list/-", "POST")[1]["running"]
    assert instance in running
    assert call(f"{app.url}/api/manage/terminate/{instance}", "POST")[0] == 202
    terminated = app.wait(instance)
    assert terminated["runtimeStatus"] == "Terminated" and terminated["output"] == "stop it"
    restarted = call(f"{app.url}/api/manage/restart/{instance}", "POST")[1]["new"]
    assert restarted["id"] != instance
    assert call(f"{app.url}/api/manage/purge/{instance}", "POST")[1] == {"deleted": 1}
    assert call(f"{app.durable}/instances/{instance}", key=app.key)[0] == 404
    status, listed = call(f"{app.durable}/instances/?runtimeStatus=Completed", key=app.key)
    assert status == 200 and all(item["runtimeStatus"] == "Completed" for item in listed)


def test_an_instance_query_ignores_values_it_cannot_parse_as_the_extension_does(app: App) -> None:
    """HttpApiHandler reads each filter with TryParse and drops what does not parse: never a 500."""
    done = app.wait(app.start("sequence"))["instanceId"]
    status, everything = call(f"{app.durable}/instances/", key=app.key)
    assert status == 200 and done in {item["instanceId"] for item in everything}
    lenient = "top=many&createdTimeFrom=yesterday&createdTimeTo=soon&runtimeStatus=Bogus"
    status, listed = call(f"{app.durable}/instances/?{lenient}", key=app.key)
    assert status == 200 and {item["instanceId"] for item in listed} >= {done}
    status, listed = call(f"{app.durable}/instances/?runtimeStatus=Bogus,Completed", key=app.key)
    assert status == 200 and listed and all(item["runtimeStatus"] == "Completed" for item in listed)


def test_timer_trigger_runs_on_startup_and_on_schedule(app: App) -> None:
    deadline = time.monotonic() + 10
    while len((app.marks / "ticks.log").read_text().splitlines()) < 3 if (app.marks / "ticks.log").exists() else True:
        assert time.monotonic() < deadline
        time.sleep(0.2)


@contextlib.contextmanager
def killed_at_the_end(tmp_path: Path, data: Path) -> Iterator[App]:
    """A host that is SIGKILLed, not stopped, when the block ends: the crash the restart tests recover from."""
    host = start_app(tmp_path, data)
    host.start()
    try:
        yield App(host, tmp_path)
    finally:
        host.kill()


def test_a_killed_host_resumes_every_instance_on_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with killed_at_the_end(tmp_path, data) as app:
        instance = app.start("slow_steps", 6, instance="durable-1")
        deadline = time.monotonic() + 20
        while not (tmp_path / "record.log").exists() or len((tmp_path / "record.log").read_text().split()) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        waiting = app.start("waits", instance="durable-2")
        app.wait(waiting, until={"Running"})
        call(f"{app.url}/api/raise/{waiting}/Early", "POST", "before-crash")
        time.sleep(0.2)
    again = start_app(tmp_path, data)
    with again:
        app = App(again, tmp_path)
        call(f"{app.url}/api/raise/{waiting}/Approval", "POST", "after-restart")
        done = app.wait(instance, timeout=30)
        assert done["output"] == [0, 1, 2, 3, 4, 5]
        recorded = [int(step) for step in (tmp_path / "record.log").read_text().split()]
        assert sorted(set(recorded)) == [0, 1, 2, 3, 4, 5]  # at-least-once: a step may have run twice
        resumed = app.wait(waiting)
        assert resumed["output"]["early"] == '"before-crash"'
        assert resumed["output"]["approval"] == '"after-restart"'


def test_outputs_and_custom_status_read_back_the_same_after_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with killed_at_the_end(tmp_path, data) as app:
        big = app.start("beyond_orjson", instance="exact-1")
        nan = app.start("not_a_number", instance="exact-2")
        for instance in (big, nan):
            assert app.wait(instance, timeout=30)["runtimeStatus"] == "Completed"
    with start_app(tmp_path, data) as again:
        done = App(again, tmp_path).status(big)
        assert done["output"]["big"] == 2**70 and math.isnan(done["output"]["nan"])
        assert done["customStatus"] == {"big": -(2**65)}
        done = App(again, tmp_path).status(nan)
        assert math.isnan(done["output"]["nan"]) and done["output"]["high"] == math.inf
        assert done["customStatus"] == {"low": -math.inf}


def test_a_finished_and_purged_child_is_not_started_again_after_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with killed_at_the_end(tmp_path, data) as app:
        parent = app.start("child_then_wait", instance="parent-1")
        deadline = time.monotonic() + 20
        child_url = f"{app.durable}/instances/parent-1:child"
        while (call(child_url, key=app.key)[1] or {}).get("runtimeStatus") != "Completed":  # 404 until the child exists
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)  # the child's result has reached the parent (held there: the other child still waits)
        assert call(f"{app.url}/api/manage/purge/parent-1:child", "POST")[1] == {"deleted": 1}
    with start_app(tmp_path, data) as again:
        app = App(again, tmp_path)
        time.sleep(0.5)
        assert call(f"{app.durable}/instances/parent-1:child", key=app.key)[0] == 404  # not re-run
        call(f"{app.url}/api/raise/parent-1:slow/Go", "POST", "yes")
        done = app.wait(parent)
        assert done["output"] == [{"child_of": "parent-1", "value": 16}, '"yes"']


@pytest.mark.parametrize("count", ["0", "11", "two"])
def test_an_invalid_worker_count_fails_fast_with_a_reason(tmp_path: Path, count: str) -> None:
    env = {"FUNCTIONS_WORKER_PROCESS_COUNT": count}
    with (
        pytest.raises(ServiceFailed) as failed,
        DevhostProcess(APPS / "features", tmp_path, env=env, log_path=tmp_path / "log"),
    ):
        pass
    assert "FUNCTIONS_WORKER_PROCESS_COUNT must be" in str(failed.value)


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("DEVHOST_ORCHESTRATION_SESSIONS", "yes", "must be 1, 0 or verify"),
        ("DEVHOST_SESSIONS_KEPT", "0", "must be a whole number of at least 1"),
        ("DEVHOST_SESSIONS_KEPT", "lots", "must be a whole number of at least 1"),
    ],
)
def test_an_invalid_session_setting_fails_fast_with_a_reason(
    tmp_path: Path, setting: str, value: str, message: str
) -> None:
    with (
        pytest.raises(ServiceFailed) as failed,
        DevhostProcess(APPS / "features", tmp_path, env={setting: value}, log_path=tmp_path / "log"),
    ):
        pass
    assert f"{setting} {message}" in str(failed.value)


@pytest.mark.parametrize(
    ("app_name", "message"),
    [
        ("broken_import", "No module named 'this_module_does_not_exist'"),
        ("duplicate", "same"),
        ("missing", "does not exist"),
    ],
)
def test_apps_that_cannot_load_fail_fast_with_a_reason(tmp_path: Path, app_name: str, message: str) -> None:
    with pytest.raises(ServiceFailed) as failed, DevhostProcess(APPS / app_name, tmp_path, log_path=tmp_path / "log"):
        pass
    assert message in str(failed.value)
