"""devhost applies the real host's rules that decide whether an app works in Azure (README: quirks table).

Each test drives the `strict` app, which breaks a rule on purpose, on a real devhost process, with orchestration
sessions on (the default) and in verify mode, so no speed-up changes what passes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.durable_functions.models.history import HistoryEventType

from devhost.launcher import DevhostProcess
from tests.httpserve import call_json as call

pytestmark = pytest.mark.e2e
APP = Path(__file__).parent / "apps" / "strict"


class Strict:
    def __init__(self, host: DevhostProcess) -> None:
        self.url = host.url
        self.log = host.log_path

    def start(self, orchestrator: str, body: Any = None) -> str:
        status, payload = call(f"{self.url}/api/start/{orchestrator}", "POST", body)
        assert status == 202, payload
        return str(payload["id"])

    def raise_event(self, instance: str, name: str) -> None:
        status, payload = call(f"{self.url}/api/raise/{instance}/{name}", "POST")
        assert status == 202, payload

    def status(self, instance: str) -> dict[str, Any]:
        status, payload = call(f"{self.url}/api/status/{instance}")
        assert status == 200, payload
        return dict(payload)

    def wait(self, instance: str, timeout: float = 20) -> tuple[dict[str, Any], float]:
        """The finished status and when it was first seen (monotonic seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            status, current = call(f"{self.url}/api/status/{instance}")
            # A function timeout restarts the worker, failing what else it runs, this status read included (500).
            if status == 200 and current["runtimeStatus"] in {"Completed", "Failed", "Terminated"}:
                return current, time.monotonic()
            assert status in {200, 500} and time.monotonic() < deadline, current
            time.sleep(0.05)


@pytest.fixture(scope="module", params=["1", "verify"], ids=["sessions", "verify"])
def strict(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Strict]:
    folder = tmp_path_factory.mktemp(f"strict-{request.param}")
    env = {"DEVHOST_ORCHESTRATION_SESSIONS": request.param}
    with DevhostProcess(APP, folder / "data", env=env, log_path=folder / "devhost.log") as host:
        yield Strict(host)


def kinds(status: dict[str, Any]) -> list[int]:
    return [int(item["EventType"]) for item in status["history"] or []]


def test_a_custom_status_over_16_kb_fails_the_orchestration_before_its_actions(strict: Strict) -> None:
    # 8,700 ASCII characters plus the JSON around them are 17,4xx bytes in UTF-16: 16 KB after truncation.
    fits = strict.start("sets_status", {"chars": 8_690})
    done, _ = strict.wait(fits)
    assert done["runtimeStatus"] == "Completed" and done["output"] == "ran after-status"

    too_big = strict.start("sets_status", {"chars": 10_000})
    failed, _ = strict.wait(too_big)
    assert failed["runtimeStatus"] == "Failed"
    assert "The UTF-16 size of the JSON-serialized payload must not exceed 16 KB" in json.dumps(failed["output"])
    assert "The current payload size is 19 KB" in json.dumps(failed["output"])
    assert HistoryEventType.TASK_SCHEDULED not in kinds(failed)  # the activity of that episode never ran


def test_a_cancelled_timer_still_fires(strict: Strict) -> None:
    instance = strict.start("cancels_a_timer")
    time.sleep(0.5)
    strict.raise_event(instance, "go")
    deadline = time.monotonic() + 10
    while HistoryEventType.TIMER_FIRED not in kinds(strict.status(instance)):
        assert time.monotonic() < deadline, "the cancelled timer never fired"
        time.sleep(0.1)
    assert strict.status(instance)["runtimeStatus"] == "Running"
    strict.raise_event(instance, "finish")
    done, _ = strict.wait(instance)
    assert done["output"] == "finished"


def test_the_shim_waits_on_a_race_the_sdk_won_with_a_kept_event(strict: Strict) -> None:
    hanging = strict.start("races_a_kept_event", {"cancel": False})
    cancelling = strict.start("races_a_kept_event", {"cancel": True})
    started = time.monotonic()
    strict.raise_event(hanging, "E")
    strict.raise_event(cancelling, "E")
    done, seen = strict.wait(cancelling)
    assert done["output"] == "event" and seen - started < 4  # a cancelled timer ends the .NET race at once
    time.sleep(max(0.0, started + 3 - time.monotonic()))
    assert strict.status(hanging)["runtimeStatus"] == "Running"  # the SDK returned; the shim waits on the timer
    done, seen = strict.wait(hanging)
    assert done["runtimeStatus"] == "Completed" and done["output"] == "event"
    assert seen - started >= 4.5  # 1 s first timer + 4 s race timer
    assert "still waits on its action" in strict.log.read_text()


def test_an_activity_past_function_timeout_fails_with_the_hosts_message(strict: Strict) -> None:
    instance = strict.start("calls_slow_activity")
    done, _ = strict.wait(instance)
    assert "Timeout value of 00:00:02 was exceeded by function: Functions.sleeps" in done["output"]


def test_an_activity_result_over_the_payload_limit_fails_the_activity(strict: Strict) -> None:
    instance = strict.start("calls_big_activity")
    done, _ = strict.wait(instance)
    assert done["output"].startswith("failed:") and "payload limit" in done["output"]
