"""Task dependencies: parse and check `dependsOn`, and track which tasks may run as their upstream tasks end.

Pure: no clock, no I/O, so the job orchestrator can rebuild it on every replay. The graph is kept over task
indices (positions in the job's task list); the readiness state (`Readiness`) is one outcome letter per task plus
counters derived from it, so it travels through continue-as-new as a string of n characters.

Semantics (each task's `dependsOn.condition`):
- `allSucceeded` (default): the task runs once every upstream task has ended *satisfying* its dependents, and
  is skipped as soon as one ends *blocking* them.
- `anySucceeded`: it runs as soon as one upstream task satisfies, and is skipped once all ended and none did.
- `allCompleted`: it runs once every upstream task has ended, whatever their outcome (dependency actions are
  not consulted; only a job that stops early skips it).
A task satisfies by default when it succeeded and blocks otherwise; an exit condition's `dependencyAction`
overrides that for the task it decided. A skipped or cancelled task blocks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property

from acibatch.dependson import MAX_EDGES, ArrayMode, Condition, DependsOn, parse_depends_on

# `dependsOn` itself lives in acibatch.dependson; callers know it by this module too.
__all__ = [
    "BLOCKED_BY_SHOWN",
    "JOB_GROUP",
    "MAX_EDGES",
    "ArrayMode",
    "Condition",
    "DependsOn",
    "Graph",
    "GraphInvalid",
    "Outcome",
    "Readiness",
    "TaskNode",
    "blocked_by_from_states",
    "blocked_tasks",
    "build_graph",
    "find_cycle",
    "outcome_of",
    "parse_depends_on",
]

JOB_GROUP = "job"  # the group of tasks that name none (all tasks of a `taskCount` job)
BLOCKED_BY_SHOWN = 5  # upstream ids a Blocked task lists in `blockedBy`


class Outcome(StrEnum):
    """One letter per task in the readiness state: what the task's end means for its dependents."""

    PENDING = "."  # waiting for upstream tasks
    RELEASED = "r"  # started (or about to be), not ended
    SUCCEEDED = "S"  # succeeded, satisfies
    SUCCEEDED_BLOCKS = "s"  # succeeded, but its exit condition said dependencyAction: block
    FAILED = "f"  # failed, blocks
    FAILED_SATISFIES = "F"  # failed, but its exit condition said dependencyAction: satisfy
    CANCELLED = "c"
    SKIPPED = "k"

    @property
    def ended(self) -> bool:
        return self not in (Outcome.PENDING, Outcome.RELEASED)

    @property
    def satisfies(self) -> bool:
        return self in (Outcome.SUCCEEDED, Outcome.FAILED_SATISFIES)

    @property
    def state_word(self) -> str:
        return _STATE_WORDS[self]


_STATE_WORDS = {
    Outcome.PENDING: "Blocked",
    Outcome.RELEASED: "Running",
    Outcome.SUCCEEDED: "Succeeded",
    Outcome.SUCCEEDED_BLOCKS: "Succeeded",
    Outcome.FAILED: "Failed",
    Outcome.FAILED_SATISFIES: "Failed",
    Outcome.CANCELLED: "Cancelled",
    Outcome.SKIPPED: "Skipped",
}


def outcome_of(state: str, dependency_action: str | None) -> Outcome:
    """A task's ending (its TaskState word and its exit condition's dependencyAction, if any) as an Outcome."""
    if state == "Succeeded":
        return Outcome.SUCCEEDED_BLOCKS if dependency_action == "block" else Outcome.SUCCEEDED
    if state == "Failed":
        return Outcome.FAILED_SATISFIES if dependency_action == "satisfy" else Outcome.FAILED
    if state == "Skipped":
        return Outcome.SKIPPED
    return Outcome.CANCELLED


@dataclass(frozen=True)
class TaskNode:
    """What the graph needs of one task: its id, its group and its `dependsOn` (None: no dependencies)."""

    id: str
    group: str = JOB_GROUP
    depends_on: DependsOn | None = None
    path: str = ""  # where its dependsOn was written, for error messages


@dataclass(frozen=True)
class Graph:
    ids: tuple[str, ...]
    upstream: tuple[tuple[int, ...], ...]
    downstream: tuple[tuple[int, ...], ...]
    conditions: tuple[Condition, ...]

    @property
    def size(self) -> int:
        return len(self.ids)

    @cached_property
    def position(self) -> dict[str, int]:
        """Task index by id."""
        return {task_id: index for index, task_id in enumerate(self.ids)}

    @property
    def edges(self) -> int:
        return sum(len(items) for items in self.upstream)

    def roots(self) -> list[int]:
        return [index for index, items in enumerate(self.upstream) if not items]


class GraphInvalid(ValueError):
    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{path}: {message}" for path, message in errors))
        self.errors = errors


def _range_size(ranges: Sequence[tuple[int, int]]) -> int:
    return sum(end - start + 1 for start, end in ranges)


def build_graph(nodes: Sequence[TaskNode]) -> Graph:
    """Expand every task's dependsOn into upstream indices; raises GraphInvalid with every problem found.

    Checks: unknown ids and groups, ranges over a job whose ids are not integers, self-dependencies, array
    sugar that does not line up, more than MAX_EDGES edges, and cycles (one is named)."""
    errors: list[tuple[str, str]] = []
    position = {node.id: index for index, node in enumerate(nodes)}
    groups: dict[str, list[int]] = {}
    for index, node in enumerate(nodes):
        groups.setdefault(node.group, []).append(index)
    rank = {index: k for members in groups.values() for k, index in enumerate(members)}
    integer_ids = {int(node.id): index for index, node in enumerate(nodes) if node.id.isdigit()}

    # Count edges before expanding anything: a range of 0..10**9 on every task must be refused, not built.
    planned = 0
    for node in nodes:
        dep = node.depends_on
        if dep is None:
            continue
        planned += len(dep.task_ids) + _range_size(dep.ranges) + (1 if dep.array is not None else 0)
    if planned > MAX_EDGES:
        raise GraphInvalid([("tasks", f"dependsOn names {planned} upstream tasks in all; at most {MAX_EDGES} allowed")])

    upstream: list[tuple[int, ...]] = []
    for index, node in enumerate(nodes):
        dep, path = node.depends_on, node.path or f"tasks[{index}].dependsOn"
        if dep is None:
            upstream.append(())
            continue
        found: dict[int, None] = {}
        for item in dep.task_ids:
            if item not in position:
                errors.append((f"{path}.taskIds", f"unknown task id '{item[:63]}'"))
            elif position[item] == index:
                errors.append((f"{path}.taskIds", f"task '{node.id}' depends on itself"))
            else:
                found[position[item]] = None
        for number, (start, end) in enumerate(dep.ranges):
            range_path = f"{path}.taskIdRanges[{number}]"
            if len(integer_ids) != len(nodes):
                errors.append((range_path, "ranges need integer task ids; this job has non-integer ids"))
                continue
            missing = [value for value in (start, end) if value not in integer_ids]
            if missing:
                errors.append((range_path, f"unknown task id '{missing[0]}' (ids run 0..{len(nodes) - 1})"))
                continue
            for value in range(start, end + 1):
                target = integer_ids.get(value)
                if target is None:
                    errors.append((range_path, f"unknown task id '{value}'"))
                    break
                if target == index:
                    errors.append((range_path, f"task '{node.id}' depends on itself"))
                    break
                found[target] = None
        if dep.array is not None:
            members = groups.get(dep.array)
            if members is None:
                errors.append((f"{path}.array", f"unknown task group '{dep.array[:63]}'"))
            elif dep.mode is ArrayMode.SEQUENTIAL:
                if dep.array != node.group:
                    errors.append((f"{path}.array", f"'sequential' chains a task's own group ('{node.group}')"))
                elif rank[index] > 0:
                    found[groups[node.group][rank[index] - 1]] = None
            elif dep.array == node.group:
                errors.append((f"{path}.array", "'nToN' pairs a task with another group's task, not its own"))
            elif len(members) != len(groups[node.group]):
                sizes = f"'{node.group}' has {len(groups[node.group])} tasks, '{dep.array}' has {len(members)}"
                errors.append((f"{path}.array", f"'nToN' needs groups of equal size: {sizes}"))
            else:
                found[members[rank[index]]] = None
        upstream.append(tuple(found))
    if errors:
        raise GraphInvalid(_deduplicate(errors))
    downstream: list[list[int]] = [[] for _ in nodes]
    for index, parents in enumerate(upstream):
        for parent in parents:
            downstream[parent].append(index)
    graph = Graph(
        ids=tuple(node.id for node in nodes),
        upstream=tuple(upstream),
        downstream=tuple(tuple(items) for items in downstream),
        conditions=tuple(node.depends_on.condition if node.depends_on else Condition.ALL_SUCCEEDED for node in nodes),
    )
    cycle = find_cycle(graph)
    if cycle:
        first = cycle[0]
        named = " -> ".join(graph.ids[index] for index in [*cycle, first])
        raise GraphInvalid([(nodes[first].path or f"tasks[{first}].dependsOn", f"dependency cycle: {named}")])
    return graph


def _deduplicate(errors: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return list(dict.fromkeys(errors))


def find_cycle(graph: Graph) -> list[int]:
    """One cycle as task indices (each depends on the next... read in order, the first depends on the last), or
    [] when the graph is acyclic. Iterative: a 10,000-task chain must not hit Python's recursion limit."""
    white, grey, black = 0, 1, 2
    colour = [white] * graph.size
    parent = [-1] * graph.size
    for root in range(graph.size):
        if colour[root] != white:
            continue
        stack: list[tuple[int, int]] = [(root, 0)]
        colour[root] = grey
        while stack:
            node, next_edge = stack[-1]
            edges = graph.upstream[node]
            if next_edge < len(edges):
                stack[-1] = (node, next_edge + 1)
                target = edges[next_edge]
                if colour[target] == grey:
                    cycle = [target]
                    walk = node
                    while walk != target:
                        cycle.append(walk)
                        walk = parent[walk]
                    return cycle
                if colour[target] == white:
                    colour[target] = grey
                    parent[target] = node
                    stack.append((target, 0))
            else:
                colour[node] = black
                stack.pop()
    return []


@dataclass
class Readiness:
    """Which tasks may run: one Outcome per task, and per task the count of ended and satisfying upstream tasks.

    `complete` applies one task's end and returns what it releases and what it skips (cascading). Only the
    letters need storing (`letters` / `from_letters`): the counters are rebuilt from them."""

    graph: Graph
    outcomes: list[Outcome]
    ended: list[int]
    satisfied: list[int]

    @classmethod
    def start(cls, graph: Graph) -> Readiness:
        return cls.from_letters(graph, Outcome.PENDING.value * graph.size)

    @classmethod
    def from_letters(cls, graph: Graph, letters: str) -> Readiness:
        outcomes = [Outcome(letter) for letter in letters]
        ended = [0] * graph.size
        satisfied = [0] * graph.size
        for index, outcome in enumerate(outcomes):
            if outcome.ended:
                for item in graph.downstream[index]:
                    ended[item] += 1
                    satisfied[item] += outcome.satisfies
        return cls(graph, outcomes, ended, satisfied)

    @property
    def letters(self) -> str:
        return "".join(outcome.value for outcome in self.outcomes)

    def ready(self) -> list[int]:
        """Pending tasks whose condition holds now (on a fresh state: the roots)."""
        return [index for index in range(self.graph.size) if self._verdict(index) is True]

    def release(self, index: int) -> None:
        if self.outcomes[index] is Outcome.PENDING:
            self.outcomes[index] = Outcome.RELEASED

    def finished(self) -> bool:
        return all(outcome.ended for outcome in self.outcomes)

    def _verdict(self, index: int) -> bool | None:
        """True: may run; False: can never run; None: keep waiting (or not pending)."""
        if self.outcomes[index] is not Outcome.PENDING:
            return None
        total = len(self.graph.upstream[index])
        ended, satisfied = self.ended[index], self.satisfied[index]
        condition = self.graph.conditions[index]
        if total == 0:
            return True
        if condition is Condition.ALL_COMPLETED:
            return True if ended == total else None
        if condition is Condition.ANY_SUCCEEDED:
            if satisfied > 0:
                return True
            return False if ended == total else None
        if ended - satisfied > 0:
            return False
        return True if satisfied == total else None

    def _blocker(self, index: int) -> int:
        """The upstream task that made `index` unrunnable (for its Skipped reason)."""
        for item in self.graph.upstream[index]:
            if self.outcomes[item].ended and not self.outcomes[item].satisfies:
                return item
        return self.graph.upstream[index][0]

    def complete(self, index: int, outcome: Outcome) -> tuple[list[int], list[tuple[int, str]]]:
        """Record that task `index` ended with `outcome`; returns (newly ready, newly skipped with reasons).

        A repeated or late report of a task that already ended changes nothing and releases nothing."""
        if self.outcomes[index].ended or not outcome.ended:
            return [], []
        ready: list[int] = []
        skipped: list[tuple[int, str]] = []
        work = [(index, outcome)]
        while work:
            current, result = work.pop()
            self.outcomes[current] = result
            for item in self.graph.downstream[current]:
                self.ended[item] += 1
                self.satisfied[item] += result.satisfies
                verdict = self._verdict(item)
                if verdict is True:
                    ready.append(item)
                    self.outcomes[item] = Outcome.RELEASED
                elif verdict is False:
                    blocker = self._blocker(item)
                    reason = f"upstream {self.graph.ids[blocker]} {self.outcomes[blocker].state_word}"
                    skipped.append((item, reason))
                    # Marked at once so a sibling path cannot skip it twice; its dependents follow from the stack.
                    self.outcomes[item] = Outcome.SKIPPED
                    work.append((item, Outcome.SKIPPED))
        return ready, skipped

    def skip_all_pending(self, outcome: Outcome = Outcome.SKIPPED) -> list[int]:
        """The job stops early: every task not yet released ends with `outcome` (Skipped, or Cancelled for a
        cancel request). Returns them."""
        stopped = [index for index, current in enumerate(self.outcomes) if current is Outcome.PENDING]
        for index in stopped:
            self.outcomes[index] = outcome
        rebuilt = Readiness.from_letters(self.graph, self.letters)
        self.ended, self.satisfied = rebuilt.ended, rebuilt.satisfied
        return stopped

    def blocked_by(self, index: int, limit: int = BLOCKED_BY_SHOWN) -> list[str]:
        """The ids of a pending task's upstream tasks that have not ended, first `limit` of them."""
        if self.outcomes[index] is not Outcome.PENDING:
            return []
        waiting = (self.graph.ids[item] for item in self.graph.upstream[index] if not self.outcomes[item].ended)
        return [item for _, item in zip(range(limit), waiting, strict=False)]


def blocked_by_from_states(
    graph: Graph, index: int, ended: Mapping[str, bool], limit: int = BLOCKED_BY_SHOWN
) -> list[str]:
    """`blockedBy` for the API, from which task ids have ended (the progress entity's view)."""
    waiting = (graph.ids[item] for item in graph.upstream[index] if not ended.get(graph.ids[item], False))
    return [item for _, item in zip(range(limit), waiting, strict=False)]


def blocked_tasks(graph: Graph, ended: Mapping[str, bool], begun: Mapping[str, bool]) -> dict[int, list[str]]:
    """For the API: tasks that have not begun and still wait for upstream tasks, each with its `blockedBy` (the
    first BLOCKED_BY_SHOWN upstream ids not ended), from the progress entity's view (`ended`, `begun` by id)."""
    blocked: dict[int, list[str]] = {}
    for index, parents in enumerate(graph.upstream):
        if not parents or begun.get(graph.ids[index], False):
            continue
        waiting = blocked_by_from_states(graph, index, ended)
        if waiting:
            blocked[index] = waiting
    return blocked
