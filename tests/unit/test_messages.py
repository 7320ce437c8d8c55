"""The typed messages across the Durable boundary read what release c32184a wrote, and write it byte for byte.

The literal payloads below are what c32184a's orchestrators, activities and entities put on the wire (the dicts
its code built by hand); histories recorded then replay against today's code, so each must parse, and today's
`to_dict()` must serialize to the same JSON text (key order included: that is what a history stores).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from acibatch import tenancy
from acibatch.accounts import TenantState
from acibatch.durable_names import CapacityOp, ScheduleIndexOp, ScheduleOp, TenantOp
from acibatch.leases import Quota
from acibatch.messages.aci import (
    CleanupRequest,
    CleanupResult,
    CreateGroupInput,
    CreateResult,
    GroupRef,
    GroupStateAnswer,
)
from acibatch.messages.capacity import (
    AcquireAnswer,
    CapacityGranted,
    CreateSlotAnswer,
    CreateSlotAsk,
    DeleteSlotAnswer,
    DeleteSlotAsk,
    Grant,
    LeaseAsk,
    QuotaChange,
    ReleaseAnswer,
    ReleaseAsk,
)
from acibatch.messages.jobs import JobRef
from acibatch.messages.progress import CancelMark, ProgressInit, TaskStateReport, UnrunTasks
from acibatch.messages.schedule import (
    ChangeAt,
    RunOutcome,
    RunRequest,
    ScheduleDelete,
    ScheduleInput,
    SchedulePut,
    SkippedTick,
    WakeRecord,
    stamped,
)
from acibatch.messages.sweep import OwnerProgress, ReclaimOrder
from acibatch.messages.tenant import JobRegistration, JobUpdate, TaskFinished, TenantConfig, UsageRecord
from acibatch.plan import JobInput, task_inputs
from acibatch.reconcile import Reclaim, ReclaimReason
from acibatch.records import JobProgress, TaskState
from acibatch.schedules import ConcurrencyPolicy, RunKind, ScheduleState, schedule_input
from acibatch.spec import parse_job_spec
from entities import capacity, jobprogress, schedule, tenant


def text(data: Any) -> str:
    return json.dumps(data)  # no sort_keys: the order is part of what a history holds


# -- capacity entity -------------------------------------------------------------------------------------------

OLD_ACQUIRE = {
    "leaseId": "task:team-a:j1:0#1",
    "tenant": "team-a",
    "cores": 1,
    "memoryGb": 1.5,
    "requestedAt": 1767603540.25,
    "spot": False,
}


def test_an_acquire_request_keeps_its_wire_form_and_the_entity_reads_it_as_before() -> None:
    # Whole cores stay an int on the wire (the task sent them as it had them); the entity converts.
    built = LeaseAsk("task:team-a:j1:0#1", "team-a", 1, 1.5, 1767603540.25)
    assert text(built.to_dict()) == text(OLD_ACQUIRE)
    assert LeaseAsk.parse(OLD_ACQUIRE) == tenancy.LeaseRequest("task:team-a:j1:0#1", "team-a", 1.0, 1.5, 1767603540.25)
    with_priority = {**OLD_ACQUIRE, "spot": True, "priority": 3}
    assert text(LeaseAsk(*list(with_priority.values())).to_dict()) == text(with_priority)
    request = LeaseAsk.parse(with_priority)
    assert (request.spot, request.priority, type(request.cores)) == (True, 3, float)


@pytest.mark.parametrize(
    "old",
    [
        {"status": "GRANTED", "reason": None, "createAt": 1767603540.25},
        {"status": "QUEUED", "reason": "fair queue: 2 earlier request(s) of this tenant first", "createAt": None},
        {"status": "REJECTED", "reason": "tenant 'x' has no quota", "createAt": None},
    ],
)
def test_acquire_answers_parse_to_a_named_grant_and_serialize_unchanged(old: dict[str, Any]) -> None:
    answer = AcquireAnswer.parse(old)
    assert answer.status is Grant(old["status"]) and answer.reason == old["reason"]
    assert text(answer.to_dict()) == text(old)


def entity_state() -> tenancy.CapacityState:
    state = tenancy.CapacityState.empty(max_groups=1, max_cores=4)
    state, _ = tenancy.set_tenant_quota(state, "team-a", tenancy.Quota(4, 4, 16))
    return state


def test_the_capacity_entity_answers_what_the_task_parses_and_hands_the_grants_on_as_they_came() -> None:
    state = entity_state()
    state, first = capacity.apply(state, "acquire", OLD_ACQUIRE)
    assert AcquireAnswer.parse(first).status is Grant.GRANTED
    waiting = {**OLD_ACQUIRE, "leaseId": "task:team-a:j1:1#1", "requestedAt": 1767603541.0, "spot": True}
    state, second = capacity.apply(state, "acquire", waiting)
    assert AcquireAnswer.parse(second).status is Grant.QUEUED  # the region runs one group at a time
    state, released = capacity.apply(state, "release", ReleaseAsk("task:team-a:j1:0#1", 1767603600.0).to_dict())
    answer = ReleaseAnswer.parse(released)
    assert answer.granted_ids == ["task:team-a:j1:1#1"]
    assert answer.held_since == 1767603540.25
    # wake_waiters receives the granted leases exactly as the entity wrote them (Spot flag, slot and all).
    assert text(list(answer.granted)) == text(released["granted"])
    assert text(answer.to_dict()) == text(released)
    assert released["granted"][0]["spot"] is True and "createAt" in released["granted"][0]


def test_an_older_release_answer_with_only_the_fields_the_task_read_still_parses() -> None:
    old = {"granted": [{"leaseId": "task:team-b:j9:0#1"}], "released": {"startedAt": 100.0}}
    answer = ReleaseAnswer.parse(old)
    assert answer.granted_ids == ["task:team-b:j9:0#1"] and answer.held_since == 100.0
    assert ReleaseAnswer.parse({"granted": [], "released": None}).held_since is None


def test_slot_requests_and_answers_keep_their_wire_forms() -> None:
    create = {"leaseId": "task:team-a:j1:0#1", "now": 10.0, "notBefore": 40.0, "throttled": True}
    assert text(CreateSlotAsk.parse(create).to_dict()) == text(create)
    delete = {"now": 10.0, "notBefore": 10.0, "throttled": False}
    assert text(DeleteSlotAsk.parse(delete).to_dict()) == text(delete)
    assert CreateSlotAnswer.parse({"createAt": 41.5}).at == 41.5
    assert CreateSlotAnswer.parse({"createAt": None}).at is None  # the lease is gone
    assert CreateSlotAnswer.parse(None).at is None  # an entity call that answered nothing
    assert DeleteSlotAnswer.parse({"deleteAt": 12.0}).at == 12.0
    state, answered = capacity.apply(entity_state(), "reserve_delete", delete)
    assert DeleteSlotAnswer.parse(answered).at == 10.0 and state.to_dict()["deletes"]


def test_the_capacity_granted_event_is_built_from_the_entitys_leases_or_bare_ids() -> None:
    leases = [{"leaseId": "t:a#1", "tenant": "a", "createAt": 12.5}, "t:b#2"]
    event = CapacityGranted.from_granted(leases)
    assert text(event.to_dict()) == text({"leases": ["t:a#1", "t:b#2"], "createAt": {"t:a#1": 12.5}})
    received = CapacityGranted.parse(event.to_dict())
    assert received is not None
    assert received.slot_for("t:a#1") == 12.5 and received.slot_for("t:b#2") == 0.0
    assert received.slot_for("t:c#1") is None  # a grant for someone else
    assert CapacityGranted.parse("not a grant") is None


# -- ACI activities --------------------------------------------------------------------------------------------


def a_task() -> Any:
    parsed = parse_job_spec({"jobId": "j1", "image": "registry.example.com/team/worker:1", "taskCount": 1})
    job = JobInput("team-a", "j1", parsed.to_dict(), None, parsed.fingerprint(), "2026-01-05T08:59:00.000000Z", 30.0)
    return task_inputs(job, job.job_spec(), 0, 1)[0]


def test_the_create_input_is_the_task_flat_then_the_attempt_and_parses_back() -> None:
    task = a_task()
    old = {
        **task.to_dict(),
        "name": "g-1",
        "attempt": 2,
        "priority": "Regular",
        "owner": "task:team-a:j1:0",
        "createdAt": 1767603540,
    }
    request = CreateGroupInput(task, "g-1", 2, "Regular", "task:team-a:j1:0", 1767603540)
    assert text(request.to_dict()) == text(old)
    assert CreateGroupInput.parse(old) == request


@pytest.mark.parametrize(
    "old",
    [
        {"ok": True},
        {"ok": False, "error": {"status": 409, "code": "Conflict", "message": "busy"}},
        {"ok": False, "error": {"status": 429, "code": "TooManyRequests", "message": "slow", "retryAfter": 30.0}},
        {"ok": False, "error": {"status": None, "code": "SecureEnvUnsealable", "message": "no key"}},
    ],
)
def test_create_results_parse_and_serialize_unchanged(old: dict[str, Any]) -> None:
    result = CreateResult.parse(old)
    assert result.ok is old["ok"]
    assert text(result.to_dict()) == text(old)


@pytest.mark.parametrize(
    "old",
    [
        {"name": "g-1", "stop": True, "delete": True},  # a task that failed past the policy
        {"name": "g-1", "stop": False, "delete": True},  # before a re-create
        {"name": "g-1", "stop": True, "delete": False, "exitCode": None},  # an attempt's end, exit unknown
        {"name": "g-1", "stop": False, "delete": True, "exitCode": 3},
    ],
)
def test_cleanup_requests_keep_the_exit_code_key_exactly_when_it_was_sent(old: dict[str, Any]) -> None:
    request = CleanupRequest.parse(old)
    assert text(request.to_dict()) == text(old)
    assert request.exit_code == old.get("exitCode")


def test_cleanup_results_parse_merge_and_serialize() -> None:
    throttled = {"logTail": "bye\n", "exitCode": 0, "existed": True, "retryAfter": 30.0}
    after = {"logTail": None, "exitCode": None, "existed": True, "retryAfter": None}
    first, second = CleanupResult.parse(throttled), CleanupResult.parse(after)
    assert text(first.to_dict()) == text(throttled)
    merged = second.over(first)  # the retried delete no longer stops the group, so it no longer reads the log
    assert (merged.log_tail, merged.exit_code, merged.existed) == ("bye\n", 0, True)
    assert CleanupResult.parse(None) == CleanupResult()


def test_group_state_answers_tell_a_throttled_read_from_a_state() -> None:
    assert GroupStateAnswer.parse({"throttled": 0.0}).throttled == 0.0
    state = {"exists": True, "state": "Running", "exitCode": None}
    answer = GroupStateAnswer.parse(state)
    assert answer.throttled is None and answer.state == state
    assert text(GroupStateAnswer(None, throttled=5.0).to_dict()) == text({"throttled": 5.0})
    assert text(GroupRef("g-1").to_dict()) == text({"name": "g-1"})


# -- jobprogress and tenant entities, cancel_tasks -------------------------------------------------------------


def test_progress_messages_keep_their_wire_forms_and_the_entity_applies_them() -> None:
    assert text(ProgressInit(3).to_dict()) == text({"total": 3})
    report = {"taskId": "0", "state": "Running"}
    assert text(TaskStateReport("0", TaskState.RUNNING).to_dict()) == text(report)
    unrun = {"taskIds": ["1", "2"], "state": "Skipped", "reasons": ["upstream 0 failed", ""]}
    assert text(UnrunTasks.parse(unrun).to_dict()) == text(unrun)
    progress = JobProgress.from_dict(None)  # a job's entity before its first operation
    jobprogress.apply(progress, "init", {"total": 3})
    assert CancelMark.parse(jobprogress.apply(progress, "begin", "0")).cancelled is False
    jobprogress.apply(progress, "set", report)
    jobprogress.apply(progress, "set_many", unrun)
    assert progress.task_state("0") is TaskState.RUNNING and progress.task_state("1") is TaskState.SKIPPED
    jobprogress.apply(progress, "cancel", None)
    assert CancelMark.parse(jobprogress.apply(progress, "cancelled", None)).cancelled is True
    assert CancelMark.parse(None).cancelled is False  # an entity never written: not cancelled


def test_tenant_messages_keep_their_wire_forms_and_the_entity_applies_them() -> None:
    assert text(TaskFinished(TaskState.SUCCEEDED).to_dict()) == text({"outcome": "Succeeded"})
    usage = {"leaseId": "t#1", "cores": 1, "memoryGb": 1.5, "seconds": 12.5}
    assert text(UsageRecord("t#1", 1, 1.5, 12.5).to_dict()) == text(usage)
    running = {"jobId": "j1", "state": "Running"}
    ended = {"jobId": "j1", "state": "Succeeded", "finishedAt": "2026-01-05T09:00:00.000000Z"}
    assert text(JobUpdate("j1", "Running").to_dict()) == text(running)
    assert text(JobUpdate.parse(ended).to_dict()) == text(ended)
    assert text(JobRef("team-a", "j1").to_dict()) == text({"tenant": "team-a", "jobId": "j1"})
    state = tenant.apply(TenantState.from_dict(None), "record_usage", usage)
    state = tenant.apply(state, "task_finished", {"outcome": "Succeeded"})
    assert state.core_seconds == 12.5 and state.gb_seconds == 18.75
    assert tenant.apply(state, "record_usage", usage).core_seconds == 12.5  # a repeated release counts once
    with pytest.raises(ValueError):
        tenant.apply(state, "task_finished", {"outcome": "Exploded"})


# -- the API's signals to the tenant and capacity entities -----------------------------------------------------

OLD_QUOTA = {"maxGroups": 4, "maxCores": 8.0, "maxMemoryGb": 16.0, "weight": 1.0}


def test_the_apis_tenant_signals_keep_their_op_names_and_wire_forms_and_the_entity_applies_them() -> None:
    assert (TenantOp.CONFIGURE, TenantOp.REGISTER_JOB, CapacityOp.SET_QUOTA) == (
        "configure",
        "register_job",
        "set_quota",
    )
    quota = Quota(4, 8.0, 16.0)
    configure = {"quota": OLD_QUOTA, "apiKeyHash": "h1"}
    assert text(TenantConfig(quota, "h1").to_dict()) == text(configure)
    assert text(TenantConfig(quota).to_dict()) == text({"quota": OLD_QUOTA})  # a quota change keeps the key
    assert text(QuotaChange("team-a", quota).to_dict()) == text({"tenant": "team-a", "quota": OLD_QUOTA})
    register = {"jobId": "j1", "createdAt": "2026-01-05T09:00:00.000000Z", "fingerprint": "fp"}
    assert text(JobRegistration("j1", "2026-01-05T09:00:00.000000Z", "fp").to_dict()) == text(register)
    state = tenant.apply(TenantState.from_dict(None), "configure", configure)
    state = tenant.apply(state, "register_job", register)
    assert (state.quota, state.api_key_hash) == (quota, "h1")
    state = tenant.apply(state, "configure", {"quota": {**OLD_QUOTA, "maxGroups": 9}})
    assert (state.quota.max_groups, state.api_key_hash) == (9, "h1")  # no hash sent: the key stays
    older = JobRegistration.parse({"jobId": "j0", "createdAt": "2025-12-01T00:00:00Z"})
    assert older.fingerprint == ""  # registered before submits were fingerprinted
    assert "j1" in tenant.apply(state, "register_job", older.to_dict()).jobs


# -- schedules -------------------------------------------------------------------------------------------------

JOB = {"tasks": [{"id": "0", "image": "busybox", "command": ["true"]}]}
DEFINITION = {"cron": "0 9 * * *", "job": JOB}
OLD_PUT = {
    "tenant": "team-a",
    "scheduleId": "nightly",
    "definition": DEFINITION,
    "sealedSecureEnv": None,
    "at": "2026-01-05T09:00:00+00:00",
    "version": "v1",
}


def test_the_apis_schedule_changes_keep_their_op_names_and_wire_forms_once_stamped() -> None:
    ops = {op.value for op in ScheduleOp} | {op.value for op in ScheduleIndexOp}
    assert ops == {"get", "put", "delete", "suspend", "resume", "trigger", "record", "add", "remove"}
    put = SchedulePut("team-a", "nightly", DEFINITION, None, "2026-01-05T09:00:00+00:00")
    assert text(stamped(put, "v1").to_dict()) == text(OLD_PUT)
    assert SchedulePut.parse(OLD_PUT) == stamped(put, "v1")
    at = {"at": "2026-01-05T09:00:00Z", "version": "v2"}
    assert text(stamped(ChangeAt("2026-01-05T09:00:00Z"), "v2").to_dict()) == text(at)
    assert text(stamped(ScheduleDelete(), "v3").to_dict()) == text({"version": "v3"})


def test_the_schedule_entity_applies_old_changes_and_names_a_malformed_or_unknown_one() -> None:
    state, _ = schedule.apply(ScheduleState(), "put", OLD_PUT)
    state, _ = schedule.apply(state, "trigger", {"at": "2026-01-05T10:00:00Z", "version": "v2"})
    state, _ = schedule.apply(state, "suspend", {"at": "2026-01-05T10:00:01+00:00", "version": "v3"})
    _, stored = schedule.apply(state, "get", None)
    read = ScheduleState.from_dict(stored)
    assert (read.exists, read.suspended, read.triggers, read.version) == (True, True, ["2026-01-05T10:00:00Z"], "v3")
    with pytest.raises(KeyError, match="version"):
        schedule.apply(state, "resume", {"at": "2026-01-05T10:00:02+00:00"})
    with pytest.raises(ValueError, match="schedule entity has no operation 'pause'"):
        schedule.apply(state, "pause", {})
    deleted, _ = schedule.apply(state, "delete", {"version": "v4"})
    assert (deleted.exists, deleted.version) == (False, "v4")


def test_the_schedule_orchestrations_input_is_the_one_schedule_input_builds() -> None:
    old = schedule_input("team-a", "nightly", "2026-01-05T09:00:00+00:00")
    assert text(ScheduleInput("team-a", "nightly", "2026-01-05T09:00:00+00:00").to_dict()) == text(old)
    assert ScheduleInput.parse(old).cursor == "2026-01-05T09:00:00+00:00"


OLD_RUN = {
    "tenant": "team-a",
    "scheduleId": "nightly",
    "scheduledFor": "2026-01-05T09:00:00Z",
    "kind": "scheduled",
    "policy": "Forbid",
    "job": JOB,
    "sealedSecureEnv": "sealed:abc",
    "recentJobs": ["nightly.20260104T090000Z"],
}


def test_a_run_request_keeps_its_wire_form_and_parses_to_named_kinds() -> None:
    run = RunRequest.parse(OLD_RUN)
    assert (run.kind, run.policy, run.recent_jobs) == (
        RunKind.SCHEDULED,
        ConcurrencyPolicy.FORBID,
        ("nightly.20260104T090000Z",),
    )
    assert text(run.to_dict()) == text(OLD_RUN)
    first = RunRequest.parse({**OLD_RUN, "kind": "manual", "sealedSecureEnv": None, "recentJobs": []})
    assert (first.kind, first.sealed_secure_env, first.recent_jobs) == (RunKind.MANUAL, None, ())
    with pytest.raises(ValueError):
        RunRequest.parse({**OLD_RUN, "policy": "Sometimes"})


TICK = {"scheduledFor": "2026-01-05T09:00:00Z", "kind": "scheduled", "jobId": "nightly.20260105T090000Z"}


@pytest.mark.parametrize(
    "old",
    [
        {**TICK, "submitted": True},
        {**TICK, "submitted": True, "replaced": ["nightly.20260104T090000Z"]},
        {**TICK, "submitted": False, "reason": "concurrencyPolicy is Forbid and job x of this schedule is running"},
        {**TICK, "jobId": None, "submitted": False, "reason": "submitting the job failed 3 times: boom"},
    ],
)
def test_run_outcomes_parse_and_serialize_unchanged(old: dict[str, Any]) -> None:
    outcome = RunOutcome.parse(old)
    assert outcome.kind is RunKind.SCHEDULED and outcome.submitted is old["submitted"]
    assert text(outcome.to_dict()) == text(old)


def test_a_refused_run_is_the_submitted_one_with_a_reason_in_the_activitys_key_order() -> None:
    submitted = RunOutcome("2026-01-05T09:00:00Z", RunKind.SCHEDULED, "nightly.20260105T090000Z", submitted=True)
    refused = {**TICK, "submitted": False, "reason": "why"}
    assert text(submitted.refused("why").to_dict()) == text(refused)


def test_a_wake_record_keeps_its_wire_form_and_the_entity_counts_it() -> None:
    run = {**TICK, "submitted": True}
    skipped = {"scheduledFor": "2026-01-05T08:00:00Z", "kind": "scheduled", "reason": "3600 s late"}
    old = {"runs": [run], "skipped": skipped, "missed": 2, "triggersDone": ["2026-01-05T08:30:00Z"]}
    built = WakeRecord(
        [RunOutcome.parse(run)], SkippedTick("2026-01-05T08:00:00Z", "3600 s late"), 2, ["2026-01-05T08:30:00Z"]
    )
    assert text(built.to_dict()) == text(old)
    quiet = {"runs": [], "skipped": None, "missed": 1, "triggersDone": []}
    assert text(WakeRecord([], None, 1, []).to_dict()) == text(quiet)
    state, _ = schedule.apply(ScheduleState(), "put", OLD_PUT)
    state, _ = schedule.apply(state, "record", old)
    assert state.last_run == run and state.last_skip == skipped
    assert (state.counts["submitted"], state.counts["skipped"], state.counts["missed"]) == (1, 1, 2)


# -- the sweep -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("custom", "group", "attempt"),
    [
        ({"groupName": "g-2", "attempt": 2, "state": "Running"}, "g-2", 2),
        ({"state": "Queued", "attempt": 1}, None, 1),
        ({"groupName": "g-1", "attempt": True}, "g-1", None),  # JSON true is no attempt number
        ({"attempt": "2"}, None, None),
        ("Running", None, None),  # an older task's plain-text status
        (None, None, None),
    ],
)
def test_the_sweep_reads_a_task_owners_group_and_attempt_off_its_custom_status(
    custom: Any, group: str | None, attempt: int | None
) -> None:
    assert OwnerProgress.parse(custom) == OwnerProgress(group, attempt)


def test_the_reclaim_order_keeps_the_stale_leases_wire_form_and_order() -> None:
    old = [
        {"leaseId": "task:t:j:1#1", "owner": "task:t:j:1", "reason": "OwnerUnknown", "queued": True, "detail": "q"},
        {"leaseId": "task:t:j:0#2", "owner": "task:t:j:0", "reason": "OwnerOnLaterAttempt", "queued": False,
         "detail": "on attempt 3"},
    ]  # fmt: skip
    order = ReclaimOrder.parse(old)
    assert order.leases[0] == Reclaim("task:t:j:1#1", "task:t:j:1", ReclaimReason.OWNER_UNKNOWN, True, "q")
    assert text(order.to_list()) == text(old)
    assert ReclaimOrder.parse(None).to_list() == []
