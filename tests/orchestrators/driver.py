"""A fake world for an `Orchestration`: activities and entity calls answered from a table, and a clock that
jumps to the next timer when nothing else can happen.

The harness's clock is the history's timestamps, so "wait an hour" costs only the episodes the orchestrator
plays in that hour (its polls), never wall-clock time. Tests that care about one exact step drive the
`Orchestration` by hand; tests that need to get somewhere far (a timeout, many back-offs) let a `Driver` play
the uneventful part and then assert on what it saw:

    driver = Driver(h, activities={names.GET_GROUP_STATE: RUNNING.to_dict()},
                    entities={(CAPACITY, "reserve_delete"): {"deleteAt": 0}})
    episode = driver.run_until(lambda e: RESERVE_DELETE in e.keys)

An answer is a value, or a callable given the call (a `Scheduled`) that returns one or raises `Failure`
(the activity fails with that message). Every generation a continue-as-new starts is followed, except the
task's last (its input holds the final record): that one is the caller's to look at.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.durable_functions.models.actions.ActionType import ActionType

from tests.orchestrators.actions import ACTIVITIES, Episode, Scheduled
from tests.orchestrators.harness import Orchestration

Answer = Any  # a value, or Callable[[Scheduled], Any]


class Failure(Exception):
    """Raised by an activity's answer: the activity fails with this message."""


class Stuck(AssertionError):
    """Nothing is answerable and no timer is open: the orchestration waits for something the table lacks."""


@dataclass(frozen=True)
class Call:
    """One activity or entity call the driver answered, and when (the history's clock)."""

    at: datetime
    scheduled: Scheduled
    answer: Any


class Driver:
    def __init__(
        self,
        h: Orchestration,
        *,
        activities: Mapping[str, Answer] | None = None,
        entities: Mapping[tuple[str, str], Answer] | None = None,
    ) -> None:
        self.h = h
        self.activities = dict(activities or {})
        self.entities = dict(entities or {})
        self.calls: list[Call] = []
        self.generations = 1
        self.episodes = 0

    def calls_to(self, name: str, operation: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.scheduled.name == name and operation in (None, c.scheduled.operation)]

    def _answer_for(self, scheduled: Scheduled) -> tuple[bool, Answer]:
        if scheduled.type in ACTIVITIES:
            return scheduled.name in self.activities, self.activities.get(scheduled.name)
        if scheduled.type is ActionType.CALL_ENTITY:
            key = (scheduled.name, scheduled.operation or "")
            return key in self.entities, self.entities.get(key)
        return False, None

    def _deliver(self, scheduled: Scheduled, answer: Answer) -> bool:
        """Answer one open call; returns whether it failed."""
        value = answer
        failed: str | None = None
        if callable(answer):
            try:
                value = answer(scheduled)
            except Failure as failure:
                failed = str(failure)
        self.calls.append(Call(self.h.now, scheduled, value if failed is None else Failure(failed)))
        if scheduled.type in ACTIVITIES:
            if failed is not None:
                self.h.activity_failed(scheduled, failed)
            else:
                self.h.activity_completed(scheduled, value)
        else:
            self.h.entity_answered(scheduled, scheduled.operation, value)
        return failed is not None

    def answer_open_calls(self) -> int:
        """Answer every open call the tables know. A failure of a retried activity goes alone, as the harness
        requires (DTFx numbers its retry timer by the order of the episode's events)."""
        answered = 0
        for scheduled in list(self.h.open.values()):
            known, answer = self._answer_for(scheduled)
            if not known:
                continue
            failed = self._deliver(scheduled, answer)
            answered += 1
            if failed and scheduled.type is ActionType.CALL_ACTIVITY_WITH_RETRY:
                break
        return answered

    def step(self) -> Episode:
        """One episode: the open calls answered, or else the clock moved to the next timer, which fires."""
        if not self.answer_open_calls():
            try:
                self.h.timer_fired()
            except AssertionError as exc:
                raise Stuck(f"nothing to answer and no timer: open {self.h.open_keys()}") from exc
        episode = self.h.run()
        self.episodes += 1
        continued = episode.continued_with
        if continued is not None and not (isinstance(continued, dict) and continued.get("final")):
            self.h.next_generation()
            self.generations += 1
            episode = self.h.run()
            self.episodes += 1
        return episode

    def run_until(self, done: Callable[[Episode], bool], limit: int = 20_000) -> Episode:
        """Step until `done` says so for an episode (or the orchestration ends) and return that episode."""
        for _ in range(limit):
            episode = self.step()
            if done(episode) or episode.finished:
                return episode
        raise AssertionError(f"not done after {limit} episodes: open {self.h.open_keys()}")
