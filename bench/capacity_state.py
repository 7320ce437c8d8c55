"""The capacity entity's stored state with many queued leases: its size, and what loading and storing it costs.

The entity loads and stores its whole state on every batch of operations, and on Azure Storage a state over
about 45 KB travels through a blob, so its size matters as much as its CPU. Prints JSON:

    .venv/bin/python -m bench.capacity_state [--queued 1000]
"""

from __future__ import annotations

import argparse
import json
import timeit

from acibatch.naming import new_job_id, task_instance_id
from acibatch.tenancy import CapacityState, LeaseRequest, Quota, acquire, set_tenant_quota


def state_with(queued: int) -> CapacityState:
    """Two tenants of 10 groups each, one job each, and `queued` more requests waiting behind them."""
    state = CapacityState.empty(100, 100)
    for tenant in ("team-a", "team-b"):
        state, _ = set_tenant_quota(state, tenant, Quota(10, 10, 20))
    jobs = {"team-a": new_job_id(), "team-b": new_job_id()}
    start = 1_796_526_990.556
    for n in range(queued + 20):
        tenant = "team-a" if n % 2 else "team-b"
        lease = f"{task_instance_id(tenant, jobs[tenant], str(n))}#1"
        state, _ = acquire(state, LeaseRequest(lease, tenant, 0.5, 1.5, start + n * 0.013))
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queued", type=int, default=1000)
    args = parser.parse_args()
    state = state_with(args.queued)
    stored = json.dumps(state.to_dict(), separators=(",", ":"))
    rounds = 50
    seconds = timeit.timeit(lambda: json.dumps(CapacityState.from_dict(json.loads(stored)).to_dict()), number=rounds)
    print(json.dumps({
        "queued": sum(len(queue) for queue in state.queues.values()),
        "running": len(state.running),
        "storedBytes": len(stored),
        "loadAndStoreMs": round(seconds / rounds * 1000, 2),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
