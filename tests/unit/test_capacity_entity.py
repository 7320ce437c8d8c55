"""The capacity entity reuses the state it stored last only when handed that very object back."""

from __future__ import annotations

import json
from typing import Any

from acibatch import tenancy
from entities.capacity import _LastState, apply


def request(lease: str, tenant: str = "a") -> dict[str, Any]:
    return {"leaseId": lease, "tenant": tenant, "cores": 1, "memoryGb": 1, "requestedAt": 0}


def quota(tenant: str) -> dict[str, Any]:
    return {"tenant": tenant, "quota": {"maxGroups": 2, "maxCores": 2, "maxMemoryGb": 2, "weight": 1}}


OPERATIONS: list[tuple[str, Any]] = [
    ("set_quota", quota("a")), ("set_quota", quota("b")),
    *[("acquire", request(f"a{i}")) for i in range(4)], *[("acquire", request(f"b{i}", "b")) for i in range(3)],
    ("release", {"leaseId": "a0", "now": 5}), ("release", {"leaseId": "b1", "now": 6}),
    ("acquire", request("a9")), ("release", {"leaseId": "a1", "now": 7}),
]  # fmt: skip


def run(batch_size: int) -> tuple[list[Any], Any]:
    """Operations in batches as the SDK runs them: one object handed on within a batch, JSON between."""
    results, stored = [], None
    for start in range(0, len(OPERATIONS), batch_size):
        stored = json.loads(json.dumps(stored))  # a new batch decodes the stored JSON afresh
        for operation, data in OPERATIONS[start : start + batch_size]:
            state = _LastState.load(stored, 3, 3)
            state, result = apply(state, operation, data)
            stored = state.to_dict()
            _LastState.keep(stored, state)
            results.append(json.loads(json.dumps(result)))
    return results, stored


def test_batched_operations_give_what_one_operation_per_batch_gives() -> None:
    assert run(batch_size=len(OPERATIONS)) == run(batch_size=1)


def test_the_kept_state_is_used_only_for_the_identical_object() -> None:
    state = tenancy.CapacityState.empty(max_groups=3, max_cores=3)
    state, _ = tenancy.set_tenant_quota(state, "a", tenancy.Quota(1, 1, 1))
    stored = state.to_dict()
    _LastState.keep(stored, state)
    assert _LastState.load(stored, 3, 3) is state
    equal_copy = json.loads(json.dumps(stored))
    assert _LastState.load(equal_copy, 3, 3) is not state
    assert _LastState.load(equal_copy, 3, 3) == state


def test_stored_forms_are_shared_but_to_dict_hands_out_copies() -> None:
    lease = tenancy.Lease(tenancy.LeaseRequest.from_dict(request("x")), started_at=1.0)
    copy = lease.to_dict()
    copy["tenant"] = "changed"
    assert lease.stored_form["tenant"] == "a" and lease.to_dict()["tenant"] == "a"
    assert lease.stored_form is lease.stored_form
