"""Orchestration sessions against the real SDK: every episode answered from a session equals a full replay.

Histories come from a real devhost run of the features app (sessions off); the episodes are then replayed here,
in-process, once whole (the SDK's own handle) and once as a session fed only each episode's new events.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from bench.run import DurableApi, episode_contexts, session_tails
from devhost.app import load_app
from devhost.launcher import DevhostProcess
from devhost.sessions import SessionMiss, Sessions, mode
from tests.devhost.test_devhost import APPS, App, call

# The SDK warns once per process that payloads are decoded without a type; a worker logs it, pytest would raise.
pytestmark = pytest.mark.filterwarnings("ignore:azure.functions df_loads was called without expected_type")

ORCHESTRATIONS = {
    "sequence": ["Osaka", "Lima"],
    "retries": None,
    "uses_entity": "session-entity",
    "gathers": 3,
    "fails": None,
}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, list[str]]]:
    """Each orchestration's id and the trigger JSON of each of its episodes."""
    folder = tmp_path_factory.mktemp("sessions")
    env = {"FEATURES_MARK_DIR": str(folder), "TICK_SCHEDULE": "0 0 0 1 1 *", "DEVHOST_ORCHESTRATION_SESSIONS": "0"}
    with DevhostProcess(APPS / "features", folder / "data", env=env, log_path=folder / "devhost.log") as host:
        app = App(host, folder)
        instances = {name: app.start(name, body) for name, body in ORCHESTRATIONS.items()}
        instances["waits"] = app.start("waits")
        call(f"{app.url}/api/raise/{instances['waits']}/Early", "POST", 1)
        call(f"{app.url}/api/raise/{instances['waits']}/Approval", "POST", 2)
        for instance in instances.values():
            assert app.wait(instance, timeout=30)["runtimeStatus"] in {"Completed", "Failed"}
        api = DurableApi.of(host.url, host.system_key)
        return {name: (instance, episode_contexts(api, instance)) for name, instance in instances.items()}


@pytest.fixture(scope="module")
def handles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The features app's functions, imported here under its module name, then forgotten again."""
    saved_module, saved_path = sys.modules.pop("function_app", None), list(sys.path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FEATURES_MARK_DIR", str(tmp_path_factory.mktemp("marks")))
        patch.setenv("TICK_SCHEDULE", "0 0 0 1 1 *")
        try:
            yield load_app(APPS / "features").callables
        finally:
            sys.modules.pop("function_app", None)
            if saved_module is not None:
                sys.modules["function_app"] = saved_module
            sys.path[:] = saved_path


def answer(run: Any) -> str:
    """An episode's answer, or what it raised (a failing orchestrator raises its state inside the message)."""
    try:
        return str(run())
    except Exception as exc:
        return f"raised {exc}"


def tail(context: str, past: int) -> str:
    fields = json.loads(context)
    return json.dumps({**fields, "history": fields["history"][past:]})


def test_a_session_answers_every_episode_as_a_full_replay_does(
    recorded: dict[str, tuple[str, list[str]]], handles: dict[str, Any]
) -> None:
    for name, (instance, contexts) in recorded.items():
        handle, sessions = handles[name], Sessions()
        assert len(contexts) >= 2, name
        for number, (context, (past, body)) in enumerate(zip(contexts, session_tails(contexts), strict=True), 1):
            expected = answer(lambda: handle(context))  # noqa: B023  (called at once)
            assert answer(lambda: sessions.run(handle, instance, "x", past, body)[0]) == expected, name  # noqa: B023
            # Kept while the orchestration runs; dropped by the episode that completes or fails it.
            assert (instance in sessions.sessions) is (number < len(contexts)), name
        # Every episode after the first went on from the session: none replayed the history again.
        assert (sessions.replayed, sessions.resumed) == (1, len(contexts) - 1), name


def test_a_session_that_does_not_end_where_the_events_begin_is_a_miss(
    recorded: dict[str, tuple[str, list[str]]], handles: dict[str, Any]
) -> None:
    instance, (first, second, third, *_) = recorded["sequence"]
    handle, sessions = handles["sequence"], Sessions(kept=1)
    past = len(json.loads(first)["history"])
    sessions.run(handle, instance, "x", 0, first)
    with pytest.raises(SessionMiss):  # another execution of the same instance
        sessions.run(handle, instance, "y", past, tail(second, past))
    sessions.run(handle, instance, "x", 0, first)
    with pytest.raises(SessionMiss):  # events that do not follow on from what the session has seen
        sessions.run(handle, instance, "x", past + 1, tail(second, past + 1))
    sessions.run(handle, instance, "x", 0, first)
    other, contexts = recorded["retries"]
    sessions.run(handles["retries"], other, "x", 0, contexts[0])  # kept=1: the first session is evicted
    with pytest.raises(SessionMiss):
        sessions.run(handle, instance, "x", past, tail(second, past))
    # After a miss the host sends the whole history, and the session goes on from there.
    assert sessions.run(handle, instance, "x", 0, second) == (handle(second), True)
    past = len(json.loads(second)["history"])
    assert sessions.run(handle, instance, "x", past, tail(third, past)) == (handle(third), True)


def test_verify_mode_fails_an_episode_whose_session_answer_differs(
    recorded: dict[str, tuple[str, list[str]]], handles: dict[str, Any]
) -> None:
    instance, (first, second, *_) = recorded["sequence"]
    handle, sessions = handles["sequence"], Sessions(verify=True)
    sessions.run(handle, instance, "x", 0, first)
    sessions.sessions[instance].context._custom_status = "changed behind the SDK's back"
    past = len(json.loads(first)["history"])
    with pytest.raises(Exception, match="a full replay answers"):
        sessions.run(handle, instance, "x", past, second)  # verify mode is sent whole histories


def test_the_mode_setting_is_checked() -> None:
    assert mode({}) == "1"
    assert mode({"DEVHOST_ORCHESTRATION_SESSIONS": " Verify "}) == "verify"
    with pytest.raises(ValueError, match="must be 1, 0 or verify"):
        mode({"DEVHOST_ORCHESTRATION_SESSIONS": "yes"})
