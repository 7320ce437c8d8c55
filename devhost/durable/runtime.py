"""What the engine keeps in memory about each instance beside its record, in one object per instance.

None of it is stored: it is rebuilt (or starts empty) after a restart. `end_execution` is the one place that
forgets what belonged to an execution once it has finished or continued as new.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from devhost import fanin


@dataclass
class Persisted:
    """What of an instance is already in the store, so a save writes only the difference."""

    execution: str = ""
    history: int = 0
    pending_upto: int = 0
    pending_from: int = 0  # pending rows below this are deleted
    activities: set[str] = field(default_factory=set)
    changed_activities: set[str] = field(default_factory=set)  # added or removed since the last save
    input_of: str = ""  # the execution whose input row is stored


@dataclass
class InstanceRuntime:
    persisted: Persisted = field(default_factory=Persisted)
    # The stored encoding of the execution's past events, as replay sees them (`records.played_text`): each is
    # encoded once, when stored, and reused by every later episode's context.
    played_execution: str = ""
    played: list[str] = field(default_factory=list)
    gather: fanin.Gather | None = None  # the task_all the orchestrator is blocked on (`devhost.fanin`)
    worker_losses: int = 0  # episodes in a row whose worker died
    # Orchestration sessions (`devhost.sessions`): how far into which execution's history the worker has
    # replayed, as of the last episode applied; the next episode sends only what follows.
    session: tuple[str, int] | None = None
    # Armed timers by (execution id, timer id): ids restart in each execution (`timers.Timers.arm`).
    timer_handles: dict[tuple[str, int], asyncio.TimerHandle] = field(default_factory=dict)
    completion_waiters: list[asyncio.Future[None]] = field(default_factory=list)
    settling: list[asyncio.Future[None]] = field(default_factory=list)  # client operations waiting for an episode

    def played_for(self, execution: str, history_length: int) -> list[str]:
        """The cached encoding of `execution`'s past events (emptied when it belongs to another one)."""
        if self.played_execution != execution or len(self.played) > history_length:
            self.played_execution, self.played = execution, []
        return self.played

    def end_execution(self) -> None:
        """Forget what belonged to the execution that ended (finished, or continued as new)."""
        self.played_execution, self.played = "", []
        self.gather = None
        self.worker_losses = 0
        self.session = None  # a worker may keep it (a terminated one) until it is evicted
        for handle in self.timer_handles.values():
            handle.cancel()
        self.timer_handles = {}
