"""Decision policy: what to do with a task attempt's container group after observing something.

Attempt semantics: every attempt is a fresh container group (new name, new callback token, `BATCH_ATTEMPT`
incremented) and counts against `maxAttempts`. Restart-in-place re-runs the current attempt's group after
an infrastructure hiccup (the container never started, a platform-maintenance kill) and does not count.
Transient create errors re-create the same attempt after a back-off and do not count either; after
MAX_TRANSIENT_CREATE_ERRORS in a row the task fails. Throttling (429) and quota refusals are not errors but
waits: the task stays Queued with a pending reason and re-creates after ARM's Retry-After or a back-off, for as
long as it takes (the job timeout and cancel still apply). A Spot create the region cannot serve (no Spot
there, Spot quota, no Spot capacity) falls back to Regular when the task allows it.

`decide` is pure and total: orchestrators call it while replaying, so it must not read clocks or random
numbers; back-off jitter is derived from a seed (the task's instance id) instead.

Exit conditions (`acibatch.exitrules`, the job's and the task's `exitConditions`) decide a user exit code first:
`succeed` and `fail` end the task at once, `retry` is the built-in retry-while-attempts-remain; their
dependencyAction and jobAction ride on the Decision. Platform failures (a Spot eviction or kill, a group that
disappeared, a container that never started after its restarts in place) start a new attempt that does not count
against maxAttempts (`Decision.platform`), up to MAX_PLATFORM_RETRIES per task, as Azure Batch's recovery retries
do not count against maxTaskRetryCount.

File failures (a task run with the acibatch agent: a resource file it could not stage in, an output it could not
upload) fail the task with Batch's category (`Decision.failure_category`) and are not retried, as Batch retries
neither (its `TaskExecutionInformation.retryCount`), unless the exit conditions say `retry`: their
`preProcessingError` / `fileUploadError`, else their `default` (Batch's fallback for both), and for an upload
failure an exit code the rules name first (Batch: "the action specified by the exit code takes precedence"). No rule
makes a file failure a success: the files did not move.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from enum import StrEnum

from acibatch.exitrules import (
    ExitAction,
    ExitConditions,
    ExitOptions,
    options_for_code,
    options_for_file_upload,
    options_for_pre_processing,
)
from acibatch.records import FailureCategory

MAX_RESTARTS_IN_PLACE = 2
MAX_TRANSIENT_CREATE_ERRORS = 8
MAINTENANCE_EXIT_CODES = frozenset({7147, 7148})
KILLED_EXIT_CODE = 137
# New attempts for platform failures that do not count against maxAttempts; past this many a task whose
# container groups keep vanishing is failing for a reason of its own, and its later attempts count.
MAX_PLATFORM_RETRIES = 3
# A task run with the acibatch agent: how long its sidecar may go on saving logs and uploading outputs once the
# command has ended, past taskTimeoutSeconds if need be (the command's own time is bounded by the timeout; the
# uploads by this). The attempt's SAS last as long (acibatch.blobstore.sas.UPLOAD_GRACE), so the uploads never
# outlive their credentials, nor the credentials the time the attempt waits for them.
UPLOAD_GRACE_SECONDS = 3600

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
THROTTLE_CODES = frozenset({"TooManyRequests", "Throttled", "ResourceRequestsThrottled"})
TRANSIENT_CODES = frozenset(
    {
        "ContainerGroupTransitioning",
        "ServiceUnavailable",
        "RegistryErrorResponse",
        "InternalServerError",
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
    QUOTA = "quota"  # back-pressure: wait longer, do not hot-retry, never fail for it
    THROTTLED = "throttled"  # ARM's 429: wait its Retry-After, never fail for it
    CAPACITY = "capacity"  # ACI has no room in the location right now: wait and back off, never fail for it


# Create errors that are waits, not failures, and how a task's pendingReason names them.
WAITS = {
    ErrorClass.THROTTLED: "ARM throttled the create",
    ErrorClass.QUOTA: "ACI quota",
    ErrorClass.CAPACITY: "ACI capacity",
}


def classify_arm_error(status: int | None, code: str | None, message: str | None) -> ErrorClass:
    """Classify by code, then message text (async ACI failures carry a message and no code), then status."""
    text = (message or "").lower()
    if code in QUOTA_CODES or ("quota" in text and "exceeded" in text):
        return ErrorClass.QUOTA
    if code in THROTTLE_CODES or status == 429:
        return ErrorClass.THROTTLED
    if code in PERMANENT_CODES:
        return ErrorClass.PERMANENT
    if code == "InsufficientCapacity" or "not available in the location" in text or "insufficientcapacity" in text:
        return ErrorClass.CAPACITY
    if code in TRANSIENT_CODES:
        return ErrorClass.TRANSIENT
    if "retry later" in text:
        return ErrorClass.TRANSIENT
    if "not accessible" in text or "inaccessibleimage" in text or "failed to pull image" in text:
        return ErrorClass.PERMANENT
    if status is None or status in {408, 409} or status >= 500:
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
    # The acibatch agent could not move a file (message: what and which file; exit_code: the command's, if it ran).
    PRE_PROCESSING_ERROR = "pre_processing_error"  # a resource file could not be staged in: the command never ran
    FILE_UPLOAD_ERROR = "file_upload_error"  # an output file could not be uploaded after the command ended


FILE_FAILURES = {
    ObservationKind.PRE_PROCESSING_ERROR: FailureCategory.PRE_PROCESSING_ERROR,
    ObservationKind.FILE_UPLOAD_ERROR: FailureCategory.FILE_UPLOAD_ERROR,
}


@dataclass(frozen=True)
class Observation:
    kind: ObservationKind
    exit_code: int | None = None
    arm_status: int | None = None
    arm_code: str | None = None
    arm_message: str | None = None
    message: str | None = None
    retry_after: float | None = None  # ARM's Retry-After on a throttled create, in seconds


@dataclass(frozen=True)
class AttemptState:
    attempt: int  # 1-based; counts against max_attempts
    max_attempts: int
    restarts_in_place: int = 0
    transient_errors: int = 0  # consecutive create errors in this attempt
    # Quota- or capacity-refused creates in this attempt (back-off only: they never fail it). ARM's throttling is
    # not counted: it says when to come back (Retry-After) and nothing about the region's room, so a throttled
    # task must not wait longer for capacity than one that was never throttled.
    waits: int = 0
    priority: str = "Regular"
    spot_fallback: bool = True
    on_success: str = "delete"
    on_failure: str = "delete"
    seed: str = ""  # jitter seed (the task instance id) so tasks back off at different times
    exit_rules: tuple[ExitConditions, ...] = ()  # the task's exitConditions, then the job's
    platform_retries: int = 0  # attempts so far that were platform retries (they do not count)

    @property
    def counted_attempt(self) -> int:
        """This attempt's number as counted against max_attempts."""
        return self.attempt - self.platform_retries


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
    pending_reason: str | None = None  # RETRY_CREATE that is a wait (throttling, quota), not an error
    wait: ErrorClass | None = None  # with pending_reason: which kind of wait (one of WAITS)
    platform: bool = False  # NEW_ATTEMPT for a platform failure: it does not count against max_attempts
    dependency_action: str | None = None  # an exit condition's dependencyAction ("satisfy" | "block")
    job_action: str | None = None  # an exit condition's jobAction ("terminate" stops the job)
    failure_category: FailureCategory | None = None  # a file failure ended the attempt (shown on a failed task)


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
    if state.counted_attempt < state.max_attempts:
        return Decision(
            group_action=GroupAction.STOP if stop_first else GroupAction.DELETE,
            next=Next.NEW_ATTEMPT,
            reason=f"attempt {state.counted_attempt} of {state.max_attempts}: {reason}",
            next_priority=state.priority,
        )
    finished = _finish(state, succeeded=False, reason=f"failed after {state.counted_attempt} attempt(s): {reason}")
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
    return _platform_retry(state, f"{reason} (after {state.restarts_in_place} restarts in place)")


def _platform_retry(state: AttemptState, reason: str) -> Decision:
    """A platform failure: a new attempt that does not count, while MAX_PLATFORM_RETRIES allow; then a counted one."""
    if state.platform_retries < MAX_PLATFORM_RETRIES:
        return Decision(
            GroupAction.DELETE,
            Next.NEW_ATTEMPT,
            f"platform retry {state.platform_retries + 1} (not counted against maxAttempts): {reason}",
            next_priority=state.priority,
            platform=True,
        )
    return _retry_or_fail(state, f"{reason} (after {state.platform_retries} platform retries)")


def _evicted(state: AttemptState, reason: str) -> Decision:
    if state.priority == "Spot" and state.spot_fallback:
        # Eviction is not the task's fault: the Regular attempt is not counted against maxAttempts, and it
        # happens at most once because the task never goes back to Spot.
        return Decision(
            GroupAction.DELETE,
            Next.NEW_ATTEMPT,
            f"{reason}; falling back to Regular priority (not counted against maxAttempts)",
            next_priority="Regular",
            platform=True,
        )
    # ACI restarts evicted Spot groups by itself; keep waiting (the task timeout still applies).
    return Decision(
        GroupAction.NONE, Next.WAIT, f"{reason}; waiting for ACI to restart it", next_priority=state.priority
    )


def _with_options(decision: Decision, options: ExitOptions) -> Decision:
    """The decision carrying the exit options' dependency and job actions (on the attempt that ends the task)."""
    if decision.next is Next.NEW_ATTEMPT:
        return decision
    return replace(
        decision,
        dependency_action=None if options.dependency_action is None else str(options.dependency_action),
        job_action=str(options.job_action),
    )


def _by_exit_rules(state: AttemptState, code: int, reason: str) -> Decision | None:
    """The user's exit conditions' decision for exit `code`, or None when no rule names it (built-in meaning).
    `default` covers non-zero codes only: 0 keeps meaning success unless a rule names it (as in Azure Batch)."""
    options = options_for_code(state.exit_rules, code)
    if options is None or (code == 0 and not _names_code(state.exit_rules, code)):
        return None
    if options.action is ExitAction.SUCCEED:
        decision = _finish(state, succeeded=True, reason=f"exit code {code} counts as success (exitConditions)")
    elif options.action is ExitAction.FAIL:
        decision = _finish(state, succeeded=False, reason=f"{reason}; exitConditions say fail without retry")
    else:
        decision = _retry_or_fail(state, reason)
    return _with_options(decision, options)


def _names_code(rules: tuple[ExitConditions, ...], code: int) -> bool:
    return any(conditions.for_code(code) is not None for conditions in rules)


def decide(observation: Observation, state: AttemptState) -> Decision:
    kind, code = observation.kind, observation.exit_code
    detail = f": {observation.message}" if observation.message else ""
    if kind is ObservationKind.CANCELLED:
        return Decision(GroupAction.STOP, Next.CANCEL, "cancelled", next_priority=state.priority)
    if kind in FILE_FAILURES:
        return _file_failure(observation, state, FILE_FAILURES[kind])
    decided = _user_exit(observation, state, detail)
    if decided is not None:
        return decided
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
        return _platform_retry(state, f"the container group disappeared{detail}")
    # CREATE_FAILED
    if observation.arm_code == SECURE_ENV_UNSEALABLE:
        return _finish(state, succeeded=False, reason=f"secure env values: {observation.arm_message}")
    error_class = classify_arm_error(observation.arm_status, observation.arm_code, observation.arm_message)
    code_text = f"{observation.arm_code}: " if observation.arm_code else ""
    arm = f"{code_text}{observation.arm_message or 'unknown error'}"
    if state.priority == "Spot" and state.spot_fallback and _spot_cannot_be_served(observation, error_class):
        # Not the task's fault and not worth waiting for: run it as Regular (at most once: it never goes back).
        return Decision(GroupAction.DELETE, Next.NEW_ATTEMPT, f"Spot create refused ({arm}); falling back to Regular",
                        next_priority="Regular", platform=True)  # fmt: skip
    if error_class is ErrorClass.PERMANENT:
        refused = _finish(state, succeeded=False, reason=f"ACI refused the container group: {arm}")
        # Batch's preProcessingError: the task could not start. Only `fail` and its actions apply here: a retry or
        # a success of a request ACI refuses as malformed would only repeat or hide the refusal.
        options = options_for_pre_processing(state.exit_rules)
        return refused if options is None else _with_options(refused, options)
    if error_class in WAITS:
        if error_class is ErrorClass.THROTTLED and observation.retry_after:
            delay = round(min(observation.retry_after, 3600.0), 3)
        elif error_class is ErrorClass.CAPACITY:  # ACI says "at this moment": it often has room again soon
            delay = backoff_seconds(state.waits, 5.0, 120.0, state.seed)
        else:
            delay = backoff_seconds(state.waits, 15.0, 300.0, state.seed)
        what = WAITS[error_class]
        return Decision(
            GroupAction.NONE,
            Next.RETRY_CREATE,
            f"{error_class} ACI error, waiting: {arm}",
            delay_seconds=delay,
            next_priority=state.priority,
            pending_reason=f"{what}: {arm}"[:300],
            wait=error_class,
        )
    if state.transient_errors >= MAX_TRANSIENT_CREATE_ERRORS:
        return _finish(state, succeeded=False, reason=f"ACI kept failing ({state.transient_errors} tries): {arm}")
    return Decision(
        GroupAction.NONE,
        Next.RETRY_CREATE,
        f"{error_class} ACI error, retrying: {arm}",
        delay_seconds=backoff_seconds(state.transient_errors, 2.0, 60.0, state.seed),
        next_priority=state.priority,
    )


def _user_exit(observation: Observation, state: AttemptState, detail: str) -> Decision | None:
    """The exit conditions' decision for a user exit code (after the platform's own codes), or None."""
    kind, code = observation.kind, observation.exit_code
    if code is None or not state.exit_rules:
        return None
    if kind is ObservationKind.EXITED:
        platform = code in MAINTENANCE_EXIT_CODES or (
            code == KILLED_EXIT_CODE and state.priority == "Spot" and state.spot_fallback
        )
        if platform:
            return None
        return _by_exit_rules(state, code, f"the container ended with exit code {code}{detail}")
    if kind is ObservationKind.CALLBACK_FAILED:
        return _by_exit_rules(state, code, f"the task reported failure with exit code {code}{detail}")
    if kind is ObservationKind.CALLBACK_SUCCEEDED:
        return _by_exit_rules(state, code, f"the task reported exit code {code}{detail}")
    return None


def _file_failure(observation: Observation, state: AttemptState, category: FailureCategory) -> Decision:
    reason = f"{category}: {observation.message or 'a file could not be moved'}"
    options = _file_failure_options(state.exit_rules, category, observation.exit_code)
    if options is not None and options.action is ExitAction.RETRY:
        decision = _retry_or_fail(state, reason)
    else:
        if options is not None and options.action is ExitAction.SUCCEED:
            reason += "; exitConditions cannot make a file failure succeed"
        decision = _finish(state, succeeded=False, reason=reason)
    if options is not None:
        decision = _with_options(decision, options)
    return replace(decision, failure_category=category)


def _file_failure_options(
    rules: tuple[ExitConditions, ...], category: FailureCategory, exit_code: int | None
) -> ExitOptions | None:
    """Batch's lookup: for an upload failure an exit code a rule names; then the category's own options (the task's
    rules, then the job's); then `default`."""
    if category is FailureCategory.FILE_UPLOAD_ERROR and exit_code is not None:
        named = next((found for rules_ in rules if (found := rules_.for_code(exit_code)) is not None), None)
        if named is not None:
            return named
    if category is FailureCategory.PRE_PROCESSING_ERROR:
        own = options_for_pre_processing(rules)
    else:
        own = options_for_file_upload(rules)
    return own or next((c.default for c in rules if c.default is not None), None)


def _spot_cannot_be_served(observation: Observation, error_class: ErrorClass) -> bool:
    """Whether a Spot create failed for want of Spot here: a Spot code or quota, or no capacity in the location.
    ACI's answer for a region without Spot does not say "Spot" (it is the generic "not available in the
    location" 409), so capacity errors count too: Regular is where the task can run now."""
    code, text = observation.arm_code or "", (observation.arm_message or "").lower()
    return (
        code.startswith("SpotPriority")
        or "spot" in text
        or error_class is ErrorClass.QUOTA
        or code == "InsufficientCapacity"
        or "insufficientcapacity" in text
        or "not available in the location" in text
    )
