"""Decision policy: what to do with a task attempt's container group after observing something.

Attempt semantics: every attempt is a fresh container group (new name, new callback token, `BATCH_ATTEMPT`
incremented) and counts against `maxAttempts`. Restart-in-place re-runs the current attempt's group after
an infrastructure hiccup (the container never started, a platform-maintenance kill) and does not count.
Transient create errors re-create the same attempt after a back-off and do not count either.

`decide` is pure and total: orchestrators call it while replaying, so it must not read clocks or random
numbers; back-off jitter is derived from a seed (the task's instance id) instead.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

MAX_RESTARTS_IN_PLACE = 2
MAX_TRANSIENT_CREATE_ERRORS = 8
MAX_QUOTA_WAITS = 30
MAINTENANCE_EXIT_CODES = frozenset({7147, 7148})
KILLED_EXIT_CODE = 137

PERMANENT_CODES = frozenset(
    {
        "InaccessibleImage",
        "InvalidImage",
        "OsVersionNotSupported",
        "ResourceGroupNotFound",
        "SubscriptionNotFound",
        "AuthorizationFailed",
        "InvalidAuthenticationToken",
        "LinkedAuthorizationFailed",
        "InvalidContainerGroupName",
        "InvalidResourceName",
        "InvalidRequestContent",
        "InvalidParameter",
        "BadRequest",
        "RequestContentTooLarge",
        "LocationNotAvailableForResourceType",
        "PriorityNotSpecified",
        "MissingRequiredProperty",
        "SpotPriorityContainerGroupNotSupportedForInboundConnectivity",
        "SpotPriorityContainerGroupNotSupportedInSku",
        "SpotPriorityContainerGroupWithGPUResourcesNotSupported",
        "UnsupportedOperation",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "ContainerGroupTransitioning",
        "ServiceUnavailable",
        "RegistryErrorResponse",
        "InternalServerError",
        "TooManyRequests",
        "GatewayTimeout",
        "Conflict",
        "InsufficientCapacity",
        "OperationPreempted",
    }
)
QUOTA_CODES = frozenset({"ContainerGroupQuotaReached", "QuotaExceeded"})
# Not an ARM code: the create activity's own failure when the job's sealed secure env values cannot be opened.
# No retry can help (the keys do not change while the task waits), so it fails the task with its own message.
SECURE_ENV_UNSEALABLE = "SecureEnvUnsealable"


class ErrorClass(StrEnum):
    TRANSIENT = "transient"  # retry the same create after a back-off
    PERMANENT = "permanent"  # fix the request or the configuration: fail fast with ARM's message
    QUOTA = "quota"  # back-pressure: wait longer, do not hot-retry


def classify_arm_error(status: int | None, code: str | None, message: str | None) -> ErrorClass:
    """Classify by code, then message text (async ACI failures carry a message and no code), then status."""
    text = (message or "").lower()
    if code in QUOTA_CODES or ("quota" in text and "exceeded" in text):
        return ErrorClass.QUOTA
    if code in PERMANENT_CODES:
        return ErrorClass.PERMANENT
    if code in TRANSIENT_CODES:
        return ErrorClass.TRANSIENT
    if "not available in the location" in text or "insufficientcapacity" in text or "retry later" in text:
        return ErrorClass.TRANSIENT
    if "not accessible" in text or "inaccessibleimage" in text or "failed to pull image" in text:
        return ErrorClass.PERMANENT
    if status is None or status in {408, 409, 429} or status >= 500:
        return ErrorClass.TRANSIENT
    if 400 <= status < 500:
        return ErrorClass.PERMANENT
    return ErrorClass.TRANSIENT


class ObservationKind(StrEnum):
    CALLBACK_SUCCEEDED = "callback_succeeded"
    CALLBACK_FAILED = "callback_failed"
    EXITED = "exited"  # the container terminated (exit_code), seen by polling
    TIMED_OUT = "timed_out"  # taskTimeoutSeconds passed while the attempt ran
    EVICTED = "evicted"  # the platform interrupted or restarted the run: how a Spot eviction shows (GroupState)
    CANCELLED = "cancelled"
    CREATE_FAILED = "create_failed"  # ARM error at create, or provisioning failed later
    NOT_STARTED = "not_started"  # the container is stuck waiting (e.g. a transient pull error)
    LOST = "lost"  # the group disappeared out of band


@dataclass(frozen=True)
class Observation:
    kind: ObservationKind
    exit_code: int | None = None
    arm_status: int | None = None
    arm_code: str | None = None
    arm_message: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class AttemptState:
    attempt: int  # 1-based; counts against max_attempts
    max_attempts: int
    restarts_in_place: int = 0
    transient_errors: int = 0  # consecutive create errors in this attempt
    priority: str = "Regular"
    spot_fallback: bool = True
    on_success: str = "delete"
    on_failure: str = "delete"
    seed: str = ""  # jitter seed (the task instance id) so tasks back off at different times


class GroupAction(StrEnum):
    DELETE = "delete"
    STOP = "stop"
    RESTART_IN_PLACE = "restart_in_place"
    NONE = "none"


class Next(StrEnum):
    SUCCEED = "succeed"
    FAIL = "fail"
    CANCEL = "cancel"
    NEW_ATTEMPT = "new_attempt"
    RETRY_CREATE = "retry_create"
    WAIT = "wait"


@dataclass(frozen=True)
class Decision:
    group_action: GroupAction
    next: Next
    reason: str
    delay_seconds: float = 0.0
    next_priority: str = "Regular"
    delete_after_stop: bool = True  # False keeps a stopped group for inspection (onSuccess/onFailure: stop)


def backoff_seconds(n: int, base: float = 2.0, cap: float = 120.0, seed: str = "") -> float:
    """Exponential back-off with deterministic jitter of up to +25%, derived from `seed` and `n`."""
    raw = min(cap, base * float(2 ** max(0, n)))
    digest = hashlib.sha256(f"{seed}:{n}".encode()).digest()
    jitter = int.from_bytes(digest[:2], "big") / 65535 * 0.25
    return round(min(cap, raw * (1 + jitter)), 3)


def _finish(state: AttemptState, succeeded: bool, reason: str) -> Decision:
    keep = (state.on_success if succeeded else state.on_failure) == "stop"
    return Decision(
        group_action=GroupAction.STOP if keep else GroupAction.DELETE,
        next=Next.SUCCEED if succeeded else Next.FAIL,
        reason=reason,
        next_priority=state.priority,
        delete_after_stop=not keep,
    )


def _retry_or_fail(state: AttemptState, reason: str, stop_first: bool = False) -> Decision:
    """A failed attempt: a new attempt while attempts remain, else the task fails."""
    if state.attempt < state.max_attempts:
        return Decision(
            group_action=GroupAction.STOP if stop_first else GroupAction.DELETE,
            next=Next.NEW_ATTEMPT,
            reason=f"attempt {state.attempt} of {state.max_attempts}: {reason}",
            next_priority=state.priority,
        )
    finished = _finish(state, succeeded=False, reason=f"failed after {state.attempt} attempt(s): {reason}")
    if stop_first and finished.group_action is GroupAction.DELETE:
        return Decision(GroupAction.STOP, Next.FAIL, finished.reason, next_priority=state.priority)
    return finished


def _restart_in_place(state: AttemptState, reason: str) -> Decision:
    if state.restarts_in_place < MAX_RESTARTS_IN_PLACE:
        return Decision(
            GroupAction.RESTART_IN_PLACE,
            Next.WAIT,
            f"restarting in place: {reason}",
            next_priority=state.priority,
        )
    return _retry_or_fail(state, f"{reason} (after {state.restarts_in_place} restarts in place)")


def _evicted(state: AttemptState, reason: str) -> Decision:
    if state.priority == "Spot" and state.spot_fallback:
        # Eviction is not the task's fault: the Regular attempt is granted even when it exceeds maxAttempts,
        # and it happens at most once because the task never goes back to Spot.
        return Decision(
            GroupAction.DELETE,
            Next.NEW_ATTEMPT,
            f"{reason}; falling back to Regular priority",
            next_priority="Regular",
        )
    # ACI restarts evicted Spot groups by itself; keep waiting (the task timeout still applies).
    return Decision(
        GroupAction.NONE, Next.WAIT, f"{reason}; waiting for ACI to restart it", next_priority=state.priority
    )


def decide(observation: Observation, state: AttemptState) -> Decision:
    kind, code = observation.kind, observation.exit_code
    detail = f": {observation.message}" if observation.message else ""
    if kind is ObservationKind.CANCELLED:
        return Decision(GroupAction.STOP, Next.CANCEL, "cancelled", next_priority=state.priority)
    if kind is ObservationKind.CALLBACK_SUCCEEDED or (kind is ObservationKind.EXITED and code == 0):
        return _finish(state, succeeded=True, reason="succeeded")
    if kind is ObservationKind.EXITED and code in MAINTENANCE_EXIT_CODES:
        return _restart_in_place(state, f"platform maintenance stopped the container (exit {code})")
    if kind is ObservationKind.EXITED and code == KILLED_EXIT_CODE and state.priority == "Spot" and state.spot_fallback:
        # ACI documents no exit code for a Spot eviction, so an unexplained kill of a Spot container is taken for a
        # possible one and falls back to Regular: the cautious reading, at the cost of one Regular attempt when it
        # was an OOM kill. Without a fallback it is an ordinary failed attempt: the container is Terminated under
        # restart policy Never, so waiting for ACI to restart it (what an interruption gets) would only burn time
        # until the task timeout.
        return _evicted(state, "the Spot container was killed (exit 137)")
    if kind is ObservationKind.CALLBACK_FAILED:
        exit_text = f" with exit code {code}" if code is not None else ""
        return _retry_or_fail(state, f"the task reported failure{exit_text}{detail}")
    if kind is ObservationKind.EXITED:
        exit_text = f"exit code {code}" if code is not None else "no exit code"
        return _retry_or_fail(state, f"the container ended with {exit_text}{detail}")
    if kind is ObservationKind.TIMED_OUT:
        return _retry_or_fail(state, f"timed out{detail}", stop_first=True)
    if kind is ObservationKind.EVICTED:
        return _evicted(state, f"the platform interrupted the container group{detail}")
    if kind is ObservationKind.NOT_STARTED:
        return _restart_in_place(state, f"the container did not start{detail}")
    if kind is ObservationKind.LOST:
        return _retry_or_fail(state, f"the container group disappeared{detail}")
    # CREATE_FAILED
    if observation.arm_code == SECURE_ENV_UNSEALABLE:
        return _finish(state, succeeded=False, reason=f"secure env values: {observation.arm_message}")
    error_class = classify_arm_error(observation.arm_status, observation.arm_code, observation.arm_message)
    code_text = f"{observation.arm_code}: " if observation.arm_code else ""
    arm = f"{code_text}{observation.arm_message or 'unknown error'}"
    if error_class is ErrorClass.PERMANENT:
        return _finish(state, succeeded=False, reason=f"ACI refused the container group: {arm}")
    limit = MAX_QUOTA_WAITS if error_class is ErrorClass.QUOTA else MAX_TRANSIENT_CREATE_ERRORS
    if state.transient_errors >= limit:
        return _finish(state, succeeded=False, reason=f"ACI kept failing ({state.transient_errors} tries): {arm}")
    base, cap = (15.0, 300.0) if error_class is ErrorClass.QUOTA else (2.0, 60.0)
    return Decision(
        GroupAction.NONE,
        Next.RETRY_CREATE,
        f"{error_class} ACI error, retrying: {arm}",
        delay_seconds=backoff_seconds(state.transient_errors, base, cap, state.seed),
        next_priority=state.priority,
    )
