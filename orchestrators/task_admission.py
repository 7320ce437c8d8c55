"""Admission: a task attempt takes a capacity lease (queueing until it is granted) and gives it back.

The capacity entity (`acibatch.tenancy`) grants in fair order; a grant wakes the waiting task with a
`CapacityGranted` event raised by an at-least-once activity, and a back-off timer heals a lost one.
"""

from __future__ import annotations

from contextlib import suppress

from acibatch.agentshare import rejection_note
from acibatch.checkpoint import Phase
from acibatch.messages.capacity import AcquireAnswer, CapacityGranted, Grant, LeaseAsk, ReleaseAnswer, ReleaseAsk
from acibatch.messages.tenant import UsageRecord
from orchestrators import calls
from orchestrators.calls import Steps
from orchestrators.task_generations import maybe_continue
from orchestrators.task_run import TaskRun, Woken, iso

# Bounds of the timer that heals a lost wake-up: the first wait, and the longest a granted lease can sit unused.
CAPACITY_WAIT_FIRST_SECONDS = 30
CAPACITY_WAIT_MAX_SECONDS = 300


def capacity_wait_seconds(waits: int, rounds: int | None = None) -> float:
    """How long a queued task waits before it asks the capacity entity again.

    Wake-ups come as CapacityGranted events (raised by an at-least-once activity); the timer only heals a lost
    one, so it starts late and backs off: a thousand waiting tasks must not poll the capacity entity. It also
    starts later the more turns of the tenant's running leases are ahead (`AcquireAnswer.rounds`, at least one
    first wait per turn): a task deep in a 10,000-task queue cannot be granted within 30 s, and every early ask
    would cost an entity operation and two episodes. The cap bounds how long a lost wake-up can leave a granted
    lease unused, whatever the depth.
    """
    turns = max(1, rounds or 1)
    return float(min(CAPACITY_WAIT_FIRST_SECONDS * 2**waits * turns, CAPACITY_WAIT_MAX_SECONDS))


def lease_ask(run: TaskRun) -> LeaseAsk:
    task = run.task
    return LeaseAsk(
        lease_id=run.lease_id,
        tenant=task.tenant,
        # The whole group's request (the agent's sidecar included): what ACI counts against the region's quota.
        cores=task.group_cpu,
        memory_gb=task.group_memory_gb,
        requested_at=run.now.timestamp(),
        spot=run.priority == "Spot",
        priority=task.job_priority or 0,
    )


def acquire(run: TaskRun, answer: AcquireAnswer | None) -> Steps[str | None]:
    """Hold a capacity lease; returns None when granted, else why the task cannot run.

    `answer` is the capacity entity's answer to the request already sent for this lease, if any.
    """
    while True:
        if run.cancelled:
            # Through `release`: if the lease was granted meanwhile, whoever gets it next is woken.
            yield from release(run)
            return "the job was cancelled while the task was queued"
        if answer is None:
            answer = AcquireAnswer.parse((yield calls.acquire(run.context, lease_ask(run))))
        status, reason, granted_at, rounds = answer.status, answer.reason, answer.create_at, answer.rounds
        answer = None
        if status is Grant.GRANTED:
            run.create_at = granted_at or 0.0
            return None
        if status is Grant.REJECTED:
            if run.priority == "Spot" and run.task.spot_fallback:
                run.priority = "Regular"  # the region cannot give this task Spot cores: ask for Regular ones
                run.publish(error=f"Spot is not possible ({reason}); falling back to Regular")
                continue
            note = rejection_note(run.task.agent_cpu, run.task.agent_memory_gb) if run.task.agent_cpu else ""
            return f"the task can never be scheduled: {reason}{note}"
        if reason != run.record.pending_reason:
            run.publish(pending_reason=reason)
        maybe_continue(run, Phase.QUEUED)
        woken, payload = yield from run.race(run.grants, capacity_wait_seconds(run.capacity_waits, rounds))
        # The releasing task's capacity call already granted these leases; asking again would only add a round
        # trip to the dispatch path. A stale, foreign or repeated wake-up (or the timer) asks again.
        grant = CapacityGranted.parse(payload) if woken is Woken.EVENT else None
        slot = None if grant is None else grant.slot_for(run.lease_id)
        if slot is not None:
            run.create_at = slot
            return None
        run.capacity_waits += 1


def release(run: TaskRun) -> Steps[None]:
    """Give the lease back and wake whoever it goes to; best-effort (reconciliation reclaims a lost one)."""
    try:
        answer = yield calls.release(run.context, ReleaseAsk(run.lease_id, run.now.timestamp()))
    except Exception:
        return
    released = ReleaseAnswer.parse(answer)
    if released.granted:
        run.handovers.append({"freedAt": iso(run.now), "to": released.granted_ids})
        with suppress(Exception):  # each waiter's own back-off timer heals a lost wake-up
            yield calls.wake_waiters(run.context, released.granted)
    began = released.held_since
    if began is not None:
        seconds = max(0.0, run.now.timestamp() - began)
        usage = UsageRecord(run.lease_id, run.task.group_cpu, run.task.group_memory_gb, seconds)
        calls.record_usage(run.context, run.task.tenant, usage)
