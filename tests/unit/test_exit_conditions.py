"""Exit conditions in the pure policy: succeed, fail and retry by exit code, their dependency and job actions, and
platform failures retried without using the user's attempts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from acibatch.exitrules import ExitConditions, parse_exit_conditions
from acibatch.policy import MAX_PLATFORM_RETRIES, AttemptState, GroupAction, Next, Observation, ObservationKind, decide

K = ObservationKind


def rules(value: dict) -> ExitConditions:  # type: ignore[type-arg]
    errors: list[tuple[str, str]] = []
    parsed = parse_exit_conditions(value, "exitConditions", errors)
    assert parsed is not None, errors
    return parsed


TASK = rules(
    {
        "exitCodes": [
            {"code": 3, "exitOptions": {"action": "succeed"}},
            {"code": 4, "exitOptions": {"action": "fail", "dependencyAction": "block", "jobAction": "terminate"}},
        ],
        "exitCodeRanges": [{"start": 10, "end": 19, "exitOptions": {"action": "fail", "dependencyAction": "satisfy"}}],
    }
)
JOB = rules(
    {
        "exitCodes": [{"code": 3, "exitOptions": {"action": "fail"}}, {"code": 5, "exitOptions": {"action": "retry"}}],
        "default": {"action": "fail"},
        "preProcessingError": {"action": "fail", "jobAction": "terminate"},
    }
)
STATE = AttemptState(attempt=1, max_attempts=3, exit_rules=(TASK, JOB))


def test_a_code_mapped_to_succeed_succeeds_and_the_task_rule_beats_the_job_rule() -> None:
    decision = decide(Observation(K.EXITED, exit_code=3), STATE)
    assert decision.next is Next.SUCCEED and "success" in decision.reason


def test_a_code_mapped_to_fail_fails_at_once_with_its_actions() -> None:
    decision = decide(Observation(K.CALLBACK_FAILED, exit_code=4), STATE)
    assert (decision.next, decision.dependency_action, decision.job_action) == (Next.FAIL, "block", "terminate")
    assert "without retry" in decision.reason


def test_a_range_and_the_job_default() -> None:
    in_range = decide(Observation(K.EXITED, exit_code=12), STATE)
    assert (in_range.next, in_range.dependency_action) == (Next.FAIL, "satisfy")
    assert decide(Observation(K.EXITED, exit_code=99), STATE).next is Next.FAIL  # the job's default: fail
    assert decide(Observation(K.EXITED, exit_code=5), STATE).next is Next.NEW_ATTEMPT


def test_zero_still_succeeds_under_a_default_and_no_rules_keep_the_builtin_meaning() -> None:
    assert decide(Observation(K.EXITED, exit_code=0), STATE).next is Next.SUCCEED
    plain = replace(STATE, exit_rules=())
    assert decide(Observation(K.EXITED, exit_code=4), plain).next is Next.NEW_ATTEMPT


def test_retry_ends_in_failure_when_attempts_run_out_and_then_carries_the_actions() -> None:
    retry = rules({"default": {"action": "retry", "dependencyAction": "satisfy"}})
    last = AttemptState(attempt=2, max_attempts=2, exit_rules=(retry,))
    decision = decide(Observation(K.EXITED, exit_code=1), last)
    assert (decision.next, decision.dependency_action) == (Next.FAIL, "satisfy")
    first = replace(last, attempt=1)
    assert decide(Observation(K.EXITED, exit_code=1), first).next is Next.NEW_ATTEMPT


def test_a_refused_create_uses_pre_processing_error() -> None:
    observation = Observation(K.CREATE_FAILED, arm_status=400, arm_code="InaccessibleImage", arm_message="no")
    decision = decide(observation, STATE)
    assert (decision.next, decision.job_action) == (Next.FAIL, "terminate")


def test_platform_codes_are_never_user_exit_codes() -> None:
    mapped = rules({"exitCodes": [{"code": 7147, "exitOptions": {"action": "fail"}}]})
    state = AttemptState(attempt=1, max_attempts=1, exit_rules=(mapped,))
    decision = decide(Observation(K.EXITED, exit_code=7147), state)
    assert decision.group_action is GroupAction.RESTART_IN_PLACE


@pytest.mark.parametrize(
    "observation",
    [Observation(K.LOST), Observation(K.EXITED, exit_code=137)],
    ids=["lost group", "Spot kill"],
)
def test_platform_failures_do_not_use_an_attempt(observation: Observation) -> None:
    only = AttemptState(attempt=1, max_attempts=1, priority="Spot", spot_fallback=True)
    decision = decide(observation, only)
    assert (decision.next, decision.platform) == (Next.NEW_ATTEMPT, True)
    assert "not counted" in decision.reason
    # The next attempt is number 2 but counts as the first: a user failure there still gets no retry (max 1)...
    after = replace(only, attempt=2, platform_retries=1, priority="Regular")
    assert after.counted_attempt == 1
    assert decide(Observation(K.EXITED, exit_code=1), after).next is Next.FAIL
    # ...and platform retries are bounded: past MAX_PLATFORM_RETRIES a lost group counts like any failure.
    spent = replace(after, attempt=1 + MAX_PLATFORM_RETRIES, platform_retries=MAX_PLATFORM_RETRIES)
    assert decide(Observation(K.LOST), spent).next is Next.FAIL


def test_validation_reports_every_problem_with_paths() -> None:
    errors: list[tuple[str, str]] = []
    value = {
        "exitCodes": [
            {"code": 1, "exitOptions": {"action": "explode"}},
            {"code": 1, "exitOptions": {"action": "fail"}},
        ],
        "exitCodeRanges": [{"start": 5, "end": 2, "exitOptions": {"action": "fail", "jobAction": "disable"}}],
        "default": "fail",
        "other": 1,
    }
    assert parse_exit_conditions(value, "tasks[0].exitConditions", errors) is None
    assert [path for path, _ in errors] == [
        "tasks[0].exitConditions.other",
        "tasks[0].exitConditions.exitCodes[0].exitOptions.action",
        "tasks[0].exitConditions.exitCodes[1].code",
        "tasks[0].exitConditions.exitCodeRanges[0]",
        "tasks[0].exitConditions.exitCodeRanges[0].exitOptions.jobAction",
        "tasks[0].exitConditions.default",
    ]


def test_round_trip() -> None:
    for conditions in (TASK, JOB):
        assert ExitConditions.from_dict(conditions.to_dict()) == conditions
