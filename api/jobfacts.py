"""What the job API needs of a job's input (its task ids in order, when it was submitted, its dependency graph),
read once per worker process and kept, so a job's reads cost what the answer holds, not what the input holds.

A job's input never changes, but it holds the whole spec: tens of KB for 1,000 tasks, hundreds for 10,000, and
every status read that shows it moves and decodes all of it. So a read of a job asks for its status without the
input (`api.statusreads`) and takes these facts from here; only the first read of a job in a worker process (or
one after the job's entry made way for others) reads the input. The entry is keyed by the instance's creation
time as well, so a purged and resubmitted job id is read afresh. Entries are kept by how many task ids they hold,
so a worker keeps recent jobs whatever their sizes within a bounded memory.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import azure.durable_functions as df

from acibatch.dag import Graph
from acibatch.naming import job_instance_id
from acibatch.spec import JobSpec
from api.statusreads import InstanceStatus, read_status

# Task ids kept per worker process across all kept jobs (a few MB), and at most this many jobs.
IDS_KEPT = 200_000
JOBS_KEPT = 64


@dataclass
class JobFacts:
    """The parts of a job's input the API shows or pages by."""

    task_ids: tuple[str, ...]
    submitted_at: str | None
    spec: dict[str, Any] | None = None  # kept only for a job with dependencies, to build its graph once
    _graph: Graph | None = field(default=None, repr=False)

    @classmethod
    def of_input(cls, job: dict[str, Any]) -> JobFacts:
        stored = job.get("spec", {})
        tasks = stored.get("tasks", []) if isinstance(stored, dict) else []
        ids = tuple(task["id"] for task in tasks)
        has_graph = "dependsOn" in stored or any("dependsOn" in task for task in tasks)
        return cls(ids, job.get("submittedAt"), spec=stored if has_graph else None)

    @property
    def graph(self) -> Graph | None:
        """The dependency graph of a job that has one (checked at submit, so it builds); None for others."""
        if self.spec is None:
            return None
        if self._graph is None:
            self._graph = JobSpec.from_dict(self.spec).graph()
        return self._graph


class FactsCache:
    """Recently read jobs' facts, least recently used first, bounded by jobs and by task ids held."""

    def __init__(self, ids_kept: int = IDS_KEPT, jobs_kept: int = JOBS_KEPT) -> None:
        self.ids_kept, self.jobs_kept = ids_kept, jobs_kept
        self.entries: OrderedDict[str, tuple[str, JobFacts]] = OrderedDict()
        self.ids_held = 0

    def get(self, instance: str, created: str) -> JobFacts | None:
        entry = self.entries.get(instance)
        if entry is None or entry[0] != created:
            return None
        self.entries.move_to_end(instance)
        return entry[1]

    def put(self, instance: str, created: str, facts: JobFacts) -> None:
        self.drop(instance)
        if len(facts.task_ids) > self.ids_kept:
            return  # larger than the whole budget: read it from the input each time rather than evict everything
        self.entries[instance] = (created, facts)
        self.ids_held += len(facts.task_ids)
        while self.ids_held > self.ids_kept or len(self.entries) > self.jobs_kept:
            _, (_, oldest) = self.entries.popitem(last=False)
            self.ids_held -= len(oldest.task_ids)

    def drop(self, instance: str) -> None:
        entry = self.entries.pop(instance, None)
        if entry is not None:
            self.ids_held -= len(entry[1].task_ids)


# Per worker process: the API's handlers run on the worker's event loop, one at a time between awaits.
CACHE = FactsCache()


async def job_status_and_facts(
    client: df.DurableOrchestrationClient, tenant: str, job_id: str, cache: FactsCache = CACHE
) -> tuple[InstanceStatus, JobFacts] | None:
    """The job orchestration's status (without its input) and the job's facts; None when the job does not exist.

    A job whose facts are kept costs one small status read; otherwise the status is read with its input."""
    instance = job_instance_id(tenant, job_id)
    if instance in cache.entries:
        status = await read_status(client, instance)
        if status is None:
            return None
        facts = cache.get(instance, status.created_text)
        if facts is not None:
            return status, facts
    status = await read_status(client, instance, with_input=True)
    if status is None:
        return None
    if not isinstance(status.input_, dict):
        return status, JobFacts.of_input({})  # no input to learn from (yet): nothing kept, read again next time
    facts = JobFacts.of_input(status.input_)
    cache.put(instance, status.created_text, facts)
    return status, facts
