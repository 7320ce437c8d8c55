"""Capacity (fair queue across tenants) and tenant accounting, with property-based tests."""

import json
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from acibatch.accounts import (
    TenantState,
    configure_tenant,
    count_task,
    list_jobs,
    record_usage,
    register_job,
    update_job,
)
from acibatch.tenancy import (
    AcquireResult,
    AcquireStatus,
    CapacityState,
    LeaseRequest,
    Quota,
    RegionLimits,
    ReleaseResult,
    acquire,
    release,
    set_region_limits,
    set_tenant_quota,
    snapshot,
)

TENANTS = ("a", "b", "c")


def request(lease: str, tenant: str, cores: float = 1.0, memory: float = 1.0, at: float = 0.0) -> LeaseRequest:
    return LeaseRequest(lease, tenant, cores, memory, at)


def region(groups: int = 4, cores: float = 4.0, **quotas: Quota) -> CapacityState:
    state = CapacityState.empty(groups, cores)
    for tenant, quota in quotas.items():
        state, _ = set_tenant_quota(state, tenant, quota)
    return state


def test_grant_queue_release_and_idempotency() -> None:
    state = region(2, 2, a=Quota(2, 2, 4, 1))
    state, first = acquire(state, request("l1", "a"))
    state, second = acquire(state, request("l2", "a"))
    state, third = acquire(state, request("l3", "a", at=1))
    assert [r.status for r in (first, second, third)] == [AcquireStatus.GRANTED] * 2 + [AcquireStatus.QUEUED]
    assert acquire(state, request("l1", "a"))[1].status is AcquireStatus.GRANTED
    assert acquire(state, request("l3", "a"))[1].status is AcquireStatus.QUEUED
    state, released = release(state, "l1", now=10)
    assert released.released is not None and released.released.started_at == 0.0
    assert [r.lease_id for r in released.granted] == ["l3"]
    assert state.running["l3"].started_at == 10
    again, twice = release(state, "l1", now=11)
    assert twice.released is None and twice.granted == [] and again.to_dict() == state.to_dict()
    assert CapacityState.from_dict(state.to_dict()).to_dict() == state.to_dict()
    assert snapshot(state, "a") == {
        "running_groups": 2,
        "running_cores": 2.0,
        "running_memory_gb": 2.0,
        "queued": 0,
    }


def test_rejections_name_the_reason() -> None:
    state = region(4, 4, a=Quota(2, 2, 2, 1))
    assert "no quota" in str(acquire(state, request("x", "nobody"))[1].reason)
    assert "at most 2 cores" in str(acquire(state, request("x", "a", cores=3))[1].reason)
    state = set_region_limits(region(4, 1, a=Quota(2, 2, 2, 1)), RegionLimits(4, 1, 1))
    assert "region allows 1" in str(acquire(state, request("x", "a", cores=2))[1].reason)


def test_released_capacity_goes_to_the_tenant_with_the_lowest_weighted_share() -> None:
    state = region(3, 3, big=Quota(3, 3, 9, 1), small=Quota(3, 3, 9, 1))
    for index in range(3):
        state, _ = acquire(state, request(f"big{index}", "big", at=index))
    for index in range(3, 6):
        state, _ = acquire(state, request(f"big{index}", "big", at=index))
    state, queued = acquire(state, request("small0", "small", at=10))
    assert queued.status is AcquireStatus.QUEUED
    state, released = release(state, "big0", now=20)
    assert [r.lease_id for r in released.granted] == ["small0"]  # small runs 0 cores: lowest share


def test_weights_divide_capacity() -> None:
    state = region(6, 6, heavy=Quota(6, 6, 6, 2), light=Quota(6, 6, 6, 1))
    state = set_region_limits(state, RegionLimits(0, 6, 6))
    for index in range(6):
        state, _ = acquire(state, request(f"h{index}", "heavy", at=index))
        state, _ = acquire(state, request(f"l{index}", "light", at=index))
    state = set_region_limits(state, RegionLimits(6, 6, 6))
    state, _ = release(state, "nonexistent", now=1)  # runs the dispatcher with the new limit
    running = Counter(lease.request.tenant for lease in state.running.values())
    assert running == {"heavy": 4, "light": 2}


def test_a_queued_request_can_be_withdrawn() -> None:
    state = region(1, 1, a=Quota(1, 1, 1, 1))
    state, _ = acquire(state, request("l1", "a"))
    state, _ = acquire(state, request("l2", "a"))
    state, withdrawn = release(state, "l2", now=1)
    assert withdrawn.released is None and state.queued("l2") is None


def test_raising_a_quota_grants_waiting_requests() -> None:
    state = region(4, 4, a=Quota(1, 1, 1, 1))
    state, _ = acquire(state, request("l1", "a"))
    state, _ = acquire(state, request("l2", "a"))
    state, granted = set_tenant_quota(state, "a", Quota(2, 2, 2, 1), now=5)
    assert [r.lease_id for r in granted] == ["l2"]


class CapacityMachine(RuleBasedStateMachine):
    """Random acquire/release sequences never over-grant, lose or double-grant a lease."""

    def __init__(self) -> None:
        super().__init__()
        self.state = region(5, 6, a=Quota(3, 3, 6, 1), b=Quota(2, 4, 4, 2), c=Quota(4, 2, 8, 1))
        self.clock = 0.0
        self.granted_ever: Counter[str] = Counter()
        self.released: set[str] = set()
        self.requested: dict[str, LeaseRequest] = {}
        self.counter = 0

    def note(self, granted: list[LeaseRequest]) -> None:
        for lease in granted:
            self.granted_ever[lease.lease_id] += 1

    @rule(
        tenant=st.sampled_from(TENANTS),
        cores=st.sampled_from([0.5, 1.0, 2.0]),
        memory=st.sampled_from([1.0, 2.0]),
    )
    def acquire(self, tenant: str, cores: float, memory: float) -> None:
        self.counter += 1
        self.clock += 1
        lease = request(f"{tenant}{self.counter}", tenant, cores, memory, self.clock)
        self.state, result = acquire(self.state, lease)
        self.requested[lease.lease_id] = lease
        if result.status is AcquireStatus.GRANTED:
            self.note([lease])

    @precondition(lambda self: bool(self.state.running))
    @rule(data=st.data())
    def release_running(self, data: st.DataObject) -> None:
        lease_id = data.draw(st.sampled_from(sorted(self.state.running)))
        self.clock += 1
        self.state, result = release(self.state, lease_id, self.clock)
        self.released.add(lease_id)
        self.note(result.granted)

    @invariant()
    def never_over_granted(self) -> None:
        groups, cores = self.state.region_usage()
        assert groups <= self.state.max_groups and cores <= self.state.max_cores + 1e-9
        for tenant, quota in self.state.quotas.items():
            used_groups, used_cores, used_memory = self.state.tenant_usage(tenant)
            assert used_groups <= quota.max_groups
            assert used_cores <= quota.max_cores + 1e-9 and used_memory <= quota.max_memory_gb + 1e-9

    @invariant()
    def no_lease_lost_or_granted_twice(self) -> None:
        assert all(count == 1 for count in self.granted_ever.values())
        queued = {r.lease_id for queue in self.state.queues.values() for r in queue}
        running = set(self.state.running)
        assert not queued & running
        for lease_id in self.requested:
            assert (lease_id in queued) + (lease_id in running) + (lease_id in self.released) == 1

    @invariant()
    def nothing_waits_that_could_run(self) -> None:
        for queue in self.state.queues.values():
            if queue:
                assert not self.state.fits_now(queue[0])

    def teardown(self) -> None:
        # Drain: releasing everything eventually grants every queued request exactly once.
        while self.state.running:
            lease_id = sorted(self.state.running)[0]
            self.state, result = release(self.state, lease_id, self.clock)
            self.released.add(lease_id)
            self.note(result.granted)
        assert not any(self.state.queues.values())
        assert set(self.granted_ever) == set(self.requested)


TestCapacityMachine = CapacityMachine.TestCase
TestCapacityMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


def test_tenant_accounting_counts_usage_once_and_indexes_jobs() -> None:
    state = TenantState()
    state = record_usage(state, "l1", cores=2, memory_gb=4, seconds=10)
    state = record_usage(state, "l1", cores=2, memory_gb=4, seconds=10)
    assert (state.core_seconds, state.gb_seconds) == (20, 40)
    state = count_task(count_task(state, "Succeeded"), "Failed")
    assert state.task_counts == {"succeeded": 1, "failed": 1, "cancelled": 0}
    for index in range(5):
        state = register_job(state, f"j{index}", f"2026-01-0{index + 1}", "fp")
    state = register_job(state, "j0", "later", "other")  # already known: unchanged
    state = update_job(state, "j1", "Succeeded", "done")
    state = update_job(state, "j1", "Running")  # a finished job never goes back
    page, total = list_jobs(state, None, 0, 2)
    assert total == 5 and [job["jobId"] for job in page] == ["j4", "j3"]
    assert list_jobs(state, "Succeeded", 0, 10)[0] == [
        {"jobId": "j1", "state": "Succeeded", "createdAt": "2026-01-02", "finishedAt": "done"}
    ]
    assert TenantState.from_dict(state.to_dict()) == state
    assert TenantState.from_dict(None) == TenantState()


def test_results_cross_the_durable_boundary_as_json() -> None:
    state = region(1, 1, a=Quota(1, 1, 1, 1))
    state, _ = acquire(state, request("l1", "a"))
    state, queued = acquire(state, request("l2", "a", at=1))
    queued_reason = "tenant quota: 1 of 1 container groups in use"
    expected = {"status": "QUEUED", "reason": queued_reason, "createAt": None, "rounds": 1}
    assert json.loads(json.dumps(queued.to_dict())) == expected
    rejected = {"status": "REJECTED", "reason": "why", "createAt": None}
    assert AcquireResult(AcquireStatus.REJECTED, "why").to_dict() == rejected
    state, released = release(state, "l1", now=3)
    wire = json.loads(json.dumps(released.to_dict()))
    assert wire["released"]["leaseId"] == "l1" and wire["released"]["startedAt"] == 0.0
    assert [LeaseRequest.from_dict(item) for item in wire["granted"]] == [request("l2", "a", at=1)]
    assert wire["granted"][0]["createAt"] >= 3  # a create slot, never before the grant
    assert ReleaseResult([], None).to_dict() == {"granted": [], "released": None}
    assert json.loads(json.dumps(state.to_dict())) == state.to_dict()


def test_a_request_of_a_tenant_without_quota_never_fits() -> None:
    assert not region(4, 4).fits_now(request("x", "nobody"))


def test_configuring_a_tenant_keeps_the_key_hash_unless_a_new_one_is_given() -> None:
    state = configure_tenant(TenantState(), Quota(1, 2, 3, 1), "hash1")
    state = configure_tenant(state, Quota(2, 2, 3, 1), None)
    assert (state.quota, state.api_key_hash) == (Quota(2, 2, 3, 1), "hash1")
    assert TenantState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    with pytest.raises(ValueError, match="unknown task outcome"):
        count_task(state, "Exploded")


@settings(max_examples=80, deadline=None)
@given(
    weights=st.lists(st.sampled_from([1.0, 2.0, 3.0]), min_size=2, max_size=3),
    size=st.sampled_from([0.5, 1.0, 2.0]),
    capacity=st.integers(2, 12),
    choices=st.lists(st.integers(0, 10_000), min_size=1, max_size=40),
)
def test_a_tenant_under_its_share_is_not_starved_by_a_long_queue(
    weights: list[float], size: float, capacity: int, choices: list[int]
) -> None:
    """The first tenant fills the region and keeps a long queue; the others arrive later with equal-sized
    requests. While the first tenant's early leases end, each freed slot goes to a tenant with the lowest
    share (running cores / weight), and once they have all ended no waiting tenant's share trails another's by
    more than one request: the capacity has converged to the weights and stays there whichever leases end."""
    tenants = [f"t{index}" for index in range(len(weights))]
    quotas = {
        tenant: Quota(1000, 1000 * size, 1000 * size, weight) for tenant, weight in zip(tenants, weights, strict=True)
    }
    state = region(capacity, capacity * size, **quotas)
    clock = 0.0
    for tenant, depth in zip(tenants, [4 * capacity] + [capacity] * (len(tenants) - 1), strict=True):
        for index in range(depth):
            clock += 1
            state, _ = acquire(state, request(f"{tenant}-{index}", tenant, size, size, clock))
    early = sorted(state.running)
    assert {state.running[lease_id].request.tenant for lease_id in early} == {"t0"}

    def share(tenant: str) -> float:
        return state.tenant_usage(tenant)[1] / state.quotas[tenant].weight

    def check_balanced() -> None:
        for behind in (tenant for tenant in tenants if state.queues.get(tenant)):
            for ahead in tenants:
                assert share(ahead) - size / state.quotas[ahead].weight <= share(behind) + 1e-9

    for index, lease_id in enumerate(early):
        waiting = [tenant for tenant in tenants if state.queues.get(tenant)]
        clock += 1
        state, result = release(state, lease_id, clock)
        [granted] = result.granted  # one equal-sized lease ended: exactly one waiting request takes its place
        lowest = min(share(tenant) - (size / state.quotas[tenant].weight if tenant == granted.tenant else 0)
                     for tenant in waiting)  # fmt: skip
        assert share(granted.tenant) - size / state.quotas[granted.tenant].weight <= lowest + 1e-9, index
    check_balanced()
    for choice in choices:
        if not state.running:
            break
        clock += 1
        state, result = release(state, sorted(state.running)[choice % len(state.running)], clock)
        assert len(result.granted) <= 1
        check_balanced()


def test_queued_requests_are_stored_as_compact_rows_and_older_forms_still_load() -> None:
    state = CapacityState.empty(max_groups=1, max_cores=1)
    state, _ = set_tenant_quota(state, "a", Quota(1, 1, 1))
    for i in range(3):
        state, _ = acquire(state, request(f"l{i}", "a", at=i + 0.25))
    stored = json.loads(json.dumps(state.to_dict()))
    packed = {"prefixes": [""], "shapes": [[1, 1]], "base": 1250, "rows": [[0, "l1", 0, 0], [0, "l2", 0, 1000]]}
    assert stored["queued"] == {"a": packed}
    assert "queues" not in stored and "waiting" not in stored
    assert CapacityState.from_dict(stored) == state
    assert [r.requested_at for r in CapacityState.from_dict(stored).queues["a"]] == [1.25, 2.25]
    stored.pop("queued")
    # The forms earlier versions stored: rows as they are in memory, dicts, and rows with times in seconds.
    rows = {**stored, "waiting": {"a": [["l1", 1, 1, 1250], ["l2", 1, 1, 2250]]}}
    as_dicts = {**stored, "queues": {"a": [r.to_dict() for r in state.queues["a"]]}}
    in_seconds = {**stored, "queues": {"a": [["l1", 1.0, 1.0, 1.25], ["l2", 1.0, 1.0, 2.25]]}}
    for older in (rows, as_dicts, in_seconds):
        assert CapacityState.from_dict(older) == state


def test_a_fractional_request_keeps_its_size_in_the_compact_row() -> None:
    state = CapacityState.empty(max_groups=1, max_cores=4)
    state, _ = set_tenant_quota(state, "a", Quota(2, 4, 8))
    state, _ = acquire(state, request("l0", "a", cores=1))
    state, _ = acquire(state, LeaseRequest("l1", "a", 0.5, 1.5, 7.0))
    stored = json.loads(json.dumps(state.to_dict()))
    assert stored["queued"] == {
        "a": {"prefixes": [""], "shapes": [[0.5, 1.5]], "base": 7000, "rows": [[0, "l1", 0, 0]]}
    }
    assert CapacityState.from_dict(stored).queued("l1") == LeaseRequest("l1", "a", 0.5, 1.5, 7.0)


def test_a_queued_answer_counts_the_turns_of_the_tenants_leases_ahead() -> None:
    # 3 groups at once for this tenant: the 4th to 6th waiting requests are one turn further back.
    state = region(10, 10, a=Quota(3, 10, 10, 1))
    answers = []
    for number in range(9):
        state, answer = acquire(state, request(f"l{number}", "a", at=number))
        answers.append(answer)
    assert [answer.status for answer in answers[:3]] == [AcquireStatus.GRANTED] * 3
    assert [answer.rounds for answer in answers[3:]] == [1, 1, 1, 2, 2, 2]
    # Asked again, a queued request's turns are counted from where it is now.
    state, _ = release(state, "l0", now=20)
    state, again = acquire(state, request("l8", "a", at=8))
    assert again.status is AcquireStatus.QUEUED and again.rounds == 2
    state, again = acquire(state, request("l6", "a", at=6))
    assert again.rounds == 1


def test_turns_are_counted_by_what_limits_the_request() -> None:
    # Cores bound it here: 4-core requests, 8 cores for the tenant -> 2 at once, though 10 groups are allowed.
    state = region(10, 100, a=Quota(10, 8, 100, 1))
    for number in range(6):
        state, answer = acquire(state, request(f"l{number}", "a", at=number, cores=4))
    assert answer.status is AcquireStatus.QUEUED and answer.rounds == 2  # 3 ahead of it, 2 per turn
    # The region can be the tighter bound: 3 groups in the region, whatever the tenant may.
    state = region(3, 100, a=Quota(50, 50, 50, 1))
    for number in range(10):
        state, answer = acquire(state, request(f"m{number}", "a", at=number))
    assert answer.rounds == 3  # 6 ahead of it, 3 per turn
