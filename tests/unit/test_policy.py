"""The decision policy, row by row, and ARM error classification."""

import pytest

from acibatch.policy import (
    MAX_RESTARTS_IN_PLACE,
    MAX_TRANSIENT_CREATE_ERRORS,
    AttemptState,
    ErrorClass,
    GroupAction,
    Next,
    Observation,
    ObservationKind,
    backoff_seconds,
    classify_arm_error,
    decide,
)

K = ObservationKind
FIRST = AttemptState(attempt=1, max_attempts=3)
LAST = AttemptState(attempt=3, max_attempts=3)
KEEP = AttemptState(attempt=3, max_attempts=3, on_success="stop", on_failure="stop")
SPOT = AttemptState(attempt=1, max_attempts=1, priority="Spot", spot_fallback=True)
SPOT_NO_FALLBACK = AttemptState(attempt=1, max_attempts=1, priority="Spot", spot_fallback=False)
CAPACITY = "The requested resource is not available in the location 'westeurope' at this moment."


@pytest.mark.parametrize(
    ("observation", "state", "action", "next_step", "keep"),
    [
        (Observation(K.CALLBACK_SUCCEEDED), FIRST, GroupAction.DELETE, Next.SUCCEED, False),
        (Observation(K.EXITED, exit_code=0), FIRST, GroupAction.DELETE, Next.SUCCEED, False),
        (Observation(K.CALLBACK_SUCCEEDED), KEEP, GroupAction.STOP, Next.SUCCEED, True),
        (Observation(K.CALLBACK_FAILED, exit_code=2), FIRST, GroupAction.DELETE, Next.NEW_ATTEMPT, False),
        (Observation(K.CALLBACK_FAILED, exit_code=2), LAST, GroupAction.DELETE, Next.FAIL, False),
        (Observation(K.EXITED, exit_code=1), KEEP, GroupAction.STOP, Next.FAIL, True),
        (Observation(K.EXITED, exit_code=None), FIRST, GroupAction.DELETE, Next.NEW_ATTEMPT, False),
        (Observation(K.TIMED_OUT), FIRST, GroupAction.STOP, Next.NEW_ATTEMPT, False),
        (Observation(K.TIMED_OUT), LAST, GroupAction.STOP, Next.FAIL, False),
        (Observation(K.TIMED_OUT), KEEP, GroupAction.STOP, Next.FAIL, True),
        (Observation(K.CANCELLED), FIRST, GroupAction.STOP, Next.CANCEL, False),
        (Observation(K.LOST), FIRST, GroupAction.DELETE, Next.NEW_ATTEMPT, False),
        (Observation(K.LOST), LAST, GroupAction.DELETE, Next.FAIL, False),
        (Observation(K.NOT_STARTED), FIRST, GroupAction.RESTART_IN_PLACE, Next.WAIT, False),
        (Observation(K.EXITED, exit_code=7147), FIRST, GroupAction.RESTART_IN_PLACE, Next.WAIT, False),
        (Observation(K.EVICTED), SPOT, GroupAction.DELETE, Next.NEW_ATTEMPT, False),
        (Observation(K.EXITED, exit_code=137), SPOT, GroupAction.DELETE, Next.NEW_ATTEMPT, False),
        (Observation(K.EVICTED), SPOT_NO_FALLBACK, GroupAction.NONE, Next.WAIT, False),
        (Observation(K.EXITED, exit_code=137), FIRST, GroupAction.DELETE, Next.NEW_ATTEMPT, False),
        (Observation(K.CREATE_FAILED, arm_status=400, arm_code="InaccessibleImage", arm_message="no"), FIRST,
         GroupAction.DELETE, Next.FAIL, False),
        (Observation(K.CREATE_FAILED, arm_status=409, arm_code="ServiceUnavailable", arm_message=CAPACITY), FIRST,
         GroupAction.NONE, Next.RETRY_CREATE, False),
        (Observation(K.CREATE_FAILED, arm_message=CAPACITY), FIRST, GroupAction.NONE, Next.RETRY_CREATE, False),
        (Observation(K.CREATE_FAILED, arm_status=400, arm_code="ContainerGroupQuotaReached"), FIRST,
         GroupAction.NONE, Next.RETRY_CREATE, False),
    ],
)  # fmt: skip
def test_decision_table(
    observation: Observation, state: AttemptState, action: GroupAction, next_step: Next, keep: bool
) -> None:
    decision = decide(observation, state)
    assert (decision.group_action, decision.next) == (action, next_step), decision.reason
    assert decision.delete_after_stop is not keep
    assert decision.reason


def test_spot_eviction_falls_back_to_regular() -> None:
    assert decide(Observation(K.EVICTED), SPOT).next_priority == "Regular"
    assert decide(Observation(K.CALLBACK_FAILED), AttemptState(1, 3, priority="Spot")).next_priority == "Spot"


def test_restart_in_place_is_capped_then_counts_as_a_failed_attempt() -> None:
    state = AttemptState(attempt=1, max_attempts=2, restarts_in_place=MAX_RESTARTS_IN_PLACE)
    decision = decide(Observation(K.NOT_STARTED, message="pull failed"), state)
    assert decision.next is Next.NEW_ATTEMPT
    assert "pull failed" in decision.reason


def test_transient_create_errors_back_off_then_fail() -> None:
    observation = Observation(K.CREATE_FAILED, arm_status=503, arm_message="busy")
    delays = [decide(observation, AttemptState(1, 3, transient_errors=n, seed="s")).delay_seconds for n in range(4)]
    assert delays == sorted(delays) and delays[0] >= 2
    exhausted = decide(observation, AttemptState(1, 3, transient_errors=MAX_TRANSIENT_CREATE_ERRORS))
    assert exhausted.next is Next.FAIL and "busy" in exhausted.reason


def test_permanent_failure_reports_the_arm_message() -> None:
    decision = decide(
        Observation(K.CREATE_FAILED, arm_status=400, arm_code="InaccessibleImage", arm_message="image 'x' is gone"),
        FIRST,
    )
    assert decision.reason.endswith("InaccessibleImage: image 'x' is gone")


@pytest.mark.parametrize(
    ("status", "code", "message", "expected"),
    [
        (404, "ResourceGroupNotFound", None, ErrorClass.PERMANENT),
        (400, "InaccessibleImage", None, ErrorClass.PERMANENT),
        (409, "ContainerGroupTransitioning", None, ErrorClass.TRANSIENT),
        (409, "ServiceUnavailable", CAPACITY, ErrorClass.TRANSIENT),
        (None, None, CAPACITY, ErrorClass.TRANSIENT),
        (400, "ContainerGroupQuotaReached", None, ErrorClass.QUOTA),
        (
            409,
            "ServiceUnavailable",
            "container group quota 'ContainerGroups' exceeded in region",
            ErrorClass.QUOTA,
        ),
        (429, None, None, ErrorClass.TRANSIENT),
        (503, None, None, ErrorClass.TRANSIENT),
        (None, None, "ConnectionError: refused", ErrorClass.TRANSIENT),
        (400, "SomethingNew", None, ErrorClass.PERMANENT),
        (None, None, "The image 'x' is not accessible", ErrorClass.PERMANENT),
        (302, None, None, ErrorClass.TRANSIENT),
    ],
)
def test_classify(status: int | None, code: str | None, message: str | None, expected: ErrorClass) -> None:
    assert classify_arm_error(status, code, message) is expected


def test_backoff_is_deterministic_capped_and_jittered_by_seed() -> None:
    assert backoff_seconds(3, seed="a") == backoff_seconds(3, seed="a")
    assert backoff_seconds(3, seed="a") != backoff_seconds(3, seed="b")
    assert backoff_seconds(30, base=2, cap=60) == 60
    assert 2 <= backoff_seconds(0, base=2) <= 2.5
