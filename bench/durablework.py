"""The Durable work one task of a job costs: devhost's counts (`devhost/durable/workcount.py`) before and after
the job, the bench's own calls taken out, divided by the job's tasks, with the storage transactions they model.

The bench's own Durable API calls (its polling of the job's end) reach devhost like the app's durable-client
calls and are counted with them; the bench counts them itself in `DurableApi.calls`, by the same route names, and
subtracts them. Reading the counts (`devhost/work`) is not counted by devhost.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

from bench.durable_api import DurableApi
from bench.workmodel import storage_transactions
from devhost.durable.workcount import Work

Counts = dict[str, dict[str, int]]
# The kinds the issue's "Durable work per task" adds up: what runs user code or crosses the client boundary.
ISSUE_KINDS = (Work.EPISODE, Work.ACTIVITY, Work.ENTITY_OPERATION, Work.CLIENT_CALL)


def settled_counts(api: DurableApi, quiet: float = 1.0, poll: float = 0.2, timeout: float = 30.0) -> dict[str, Any]:
    """devhost's counts once they have not moved for `quiet` seconds (a job's last signals are applied after its
    orchestration ends), or after `timeout`: {"counts", "settled" (False on timeout), "waited" seconds}."""
    started = time.monotonic()
    counts: Counts = api.get("devhost/work")
    still_since = started
    while True:
        time.sleep(poll)
        now = time.monotonic()
        latest: Counts = api.get("devhost/work")
        if latest != counts:
            counts, still_since = latest, now
        elif now - still_since >= quiet:
            return {"counts": counts, "settled": True, "waited": round(now - started, 2)}
        if now - started >= timeout:
            return {"counts": latest, "settled": False, "waited": round(now - started, 2)}


def difference(after: Mapping[str, Mapping[str, int]], before: Mapping[str, Mapping[str, int]]) -> Counts:
    """What was counted between two snapshots, by kind then name (names that did not move left out)."""
    result: Counts = {}
    for kind, names in after.items():
        earlier = before.get(kind, {})
        moved = {name: count - earlier.get(name, 0) for name, count in names.items()}
        result[kind] = {name: change for name, change in moved.items() if change}
    return result


def without_own_calls(counts: Counts, own: Mapping[str, int]) -> Counts:
    """`counts` less the bench's own client calls (`own`, by route name); a negative result means the two
    tallies disagree, which would make every figure built on them wrong, so it raises."""
    calls = Counter(counts.get(Work.CLIENT_CALL, {}))
    calls.subtract(own)
    if any(count < 0 for count in calls.values()):
        raise RuntimeError(f"the bench counted more of its own calls ({dict(own)}) than devhost did: {counts}")
    return {**counts, str(Work.CLIENT_CALL): {name: count for name, count in calls.items() if count}}


def per_task(counts: Counts, tasks: int) -> dict[str, dict[str, float]]:
    return {kind: {name: round(count / tasks, 3) for name, count in names.items()} for kind, names in counts.items()}


def summary(counts: Counts, tasks: int) -> dict[str, Any]:
    """The figures per task: the issue's total, each kind's sum, each name, and the modelled storage cost."""
    each = per_task(counts, tasks)
    kinds = {kind: round(sum(names.values()), 2) for kind, names in each.items()}
    return {
        "per_task_total": round(sum(kinds.get(kind, 0.0) for kind in ISSUE_KINDS), 2),
        "per_task_by_kind": kinds,
        "per_task": each,
        "storage_transactions_per_task": storage_transactions(each),
    }


def work_rows(label: str, work: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Table rows: the total and its parts, messages and entity batches, and the modelled storage cost."""
    kinds, storage = work["per_task_by_kind"], work["storage_transactions_per_task"]
    parts = " + ".join(f"{kinds.get(kind, 0)} {kind}" for kind in ISSUE_KINDS)
    queue = sum(storage[name] for name in ("queueEnqueue", "queueDequeue", "queueDelete"))
    tables = round(storage["total"] - queue, 2)
    storage_row = f"{storage['total']} (queues {round(queue, 2)}, tables {tables})"
    return [
        (f"Durable work per task, {label}", f"{work['per_task_total']} = {parts}"),
        ("  messages / entity batches per task", f"{kinds.get(Work.MESSAGE, 0)} / {kinds.get(Work.ENTITY_BATCH, 0)}"),
        ("  Azure Storage transactions per task (model)", storage_row),
    ]


def modes_compared(shipped: list[dict[str, Any]], azure: list[dict[str, Any]]) -> dict[str, Any]:
    """End-to-end rounds as shipped and in Azure mode side by side: devhost's CPU per task (the median over each
    mode's rounds) and the Durable work per task by kind (the same job should cost the same work either way; the
    difference is Azure mode's less shipped's, of the two modes' median rounds)."""

    def cpu(rounds: list[dict[str, Any]]) -> float | None:
        values = [run["devhost_cpu_ms_per_task"]["total"] for run in rounds]
        return round(statistics.median(values), 2) if values else None

    def work(rounds: list[dict[str, Any]]) -> dict[str, float]:
        totals = sorted(rounds, key=lambda run: run["seconds"])
        return dict(totals[len(totals) // 2]["work"]["per_task_by_kind"]) if totals else {}

    as_shipped, in_azure = work(shipped), work(azure)
    kinds = sorted({*as_shipped, *in_azure})
    return {
        "devhost_cpu_ms_per_task_median": {"shipped": cpu(shipped), "azure_mode": cpu(azure)},
        "work_per_task_difference": {k: round(in_azure.get(k, 0.0) - as_shipped.get(k, 0.0), 2) for k in kinds},
    }
