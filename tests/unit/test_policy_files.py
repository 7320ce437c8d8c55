"""File failures in the pure policy (a task run with the acibatch agent): Batch's preProcessingError and
fileUploadError fail the task with their category and are not retried unless the exit conditions say `retry`,
looked up as Batch looks them up."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from acibatch.exitrules import ExitConditions, parse_exit_conditions
from acibatch.policy import AttemptState, Next, Observation, ObservationKind, decide
from acibatch.records import FailureCategory

K = ObservationKind
PRE, UPLOAD = FailureCategory.PRE_PROCESSING_ERROR, FailureCategory.FILE_UPLOAD_ERROR
FIRST = AttemptState(attempt=1, max_attempts=3)
MISSING = Observation(K.PRE_PROCESSING_ERROR, message="inputs/d/a.csv: not found (file a.csv)")


def rules(value: dict[str, Any]) -> ExitConditions:
    errors: list[tuple[str, str]] = []
    parsed = parse_exit_conditions(value, "exitConditions", errors)
    assert parsed is not None, errors
    return parsed


def with_rules(*sets: dict[str, Any], attempt: int = 1) -> AttemptState:
    return replace(FIRST, attempt=attempt, exit_rules=tuple(rules(value) for value in sets))


@pytest.mark.parametrize(("kind", "category"), [(K.PRE_PROCESSING_ERROR, PRE), (K.FILE_UPLOAD_ERROR, UPLOAD)])
def test_a_file_failure_fails_at_once_with_its_category(kind: ObservationKind, category: FailureCategory) -> None:
    decision = decide(Observation(kind, exit_code=0, message="what (file f)"), FIRST)
    assert (decision.next, decision.failure_category) == (Next.FAIL, category)
    assert decision.reason == f"{category}: what (file f)"


def test_retry_is_the_exit_conditions_choice_and_attempts_still_bound_it() -> None:
    retry = {"preProcessingError": {"action": "retry"}}
    again = decide(MISSING, with_rules(retry))
    assert (again.next, again.failure_category) == (Next.NEW_ATTEMPT, PRE)
    assert again.reason.startswith("attempt 1 of 3: preProcessingError: ")
    last = decide(MISSING, with_rules(retry, attempt=3))
    assert (last.next, last.failure_category) == (Next.FAIL, PRE)


def test_no_rule_makes_a_file_failure_succeed() -> None:
    decision = decide(MISSING, with_rules({"preProcessingError": {"action": "succeed", "dependencyAction": "satisfy"}}))
    assert (decision.next, decision.dependency_action) == (Next.FAIL, "satisfy")
    assert decision.reason.endswith("; exitConditions cannot make a file failure succeed")


def test_the_tasks_rules_come_before_the_jobs_and_default_stands_in_for_a_missing_category() -> None:
    task, job = {"preProcessingError": {"action": "retry"}}, {"preProcessingError": {"action": "fail"}}
    assert decide(MISSING, with_rules(task, job)).next is Next.NEW_ATTEMPT
    # Batch: `default` is used for a pre-processing error when preProcessingError is absent (and likewise uploads).
    fallback = decide(MISSING, with_rules({"default": {"action": "fail", "jobAction": "terminate"}}))
    assert (fallback.next, fallback.job_action) == (Next.FAIL, "terminate")
    upload = Observation(K.FILE_UPLOAD_ERROR, exit_code=0, message="refused")
    assert decide(upload, with_rules({"default": {"action": "retry"}})).next is Next.NEW_ATTEMPT


def test_an_upload_failure_after_an_exit_code_a_rule_names_takes_that_codes_options() -> None:
    # Batch: "If the Task exited with an exit code that was specified via exitCodes or exitCodeRanges, and then
    # encountered a file upload error, then the action specified by the exit code takes precedence."
    state = with_rules({
        "exitCodes": [{"code": 3, "exitOptions": {"action": "retry"}}],
        "exitCodeRanges": [{"start": 10, "end": 19, "exitOptions": {"action": "fail", "dependencyAction": "satisfy"}}],
        "fileUploadError": {"action": "fail", "jobAction": "terminate"},
    })  # fmt: skip
    named = decide(Observation(K.FILE_UPLOAD_ERROR, exit_code=3, message="refused"), state)
    assert (named.next, named.failure_category) == (Next.NEW_ATTEMPT, UPLOAD)
    ranged = decide(Observation(K.FILE_UPLOAD_ERROR, exit_code=12, message="refused"), state)
    assert (ranged.next, ranged.dependency_action, ranged.job_action) == (Next.FAIL, "satisfy", "none")
    unnamed = decide(Observation(K.FILE_UPLOAD_ERROR, exit_code=0, message="refused"), state)
    assert (unnamed.next, unnamed.job_action) == (Next.FAIL, "terminate")
    # A pre-processing error has no exit code to look up: the command never ran.
    assert decide(replace(MISSING, exit_code=3), state).next is Next.FAIL


def test_no_other_observation_carries_a_failure_category() -> None:
    for observation in (Observation(K.EXITED, exit_code=1), Observation(K.CALLBACK_FAILED), Observation(K.TIMED_OUT)):
        assert decide(observation, FIRST).failure_category is None
