"""Pure helpers behind the dashboard's JSON reads: the task-state string, state filters, time filters and ETags.

Nothing here talks to Durable; `api.views` reads the entities and orchestration statuses and hands them in.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from acibatch.records import JobProgress, TaskState


def _letter_of(state: TaskState) -> str:
    # The progress entity's own encoding, asked of JobProgress rather than restated here, so the grid's letters
    # cannot drift from what the entity stores.
    probe = JobProgress()
    probe.set_task("probe", state)
    return probe.states["probe"]


LETTERS: dict[TaskState, str] = {state: _letter_of(state) for state in TaskState}
STATE_OF_LETTER: dict[str, TaskState] = {letter: state for state, letter in LETTERS.items()}
NOT_REPORTED = LETTERS[TaskState.QUEUED]  # a task that has not begun yet is queued


def state_string(task_ids: Sequence[str], progress: JobProgress) -> str:
    """One ASCII letter (one byte) per task in the job's task order: what the grid draws."""
    states = progress.states
    return "".join(states.get(task_id, NOT_REPORTED) for task_id in task_ids)


def ids_in_state(task_ids: Sequence[str], states: str, state: TaskState | None) -> list[str]:
    """The task ids (in job order) whose letter in `states` is `state`'s; every id when `state` is None."""
    if state is None:
        return list(task_ids)
    letter = LETTERS[state]
    return [task_id for task_id, current in zip(task_ids, states, strict=True) if current == letter]


def parse_time(value: str) -> datetime | None:
    """An ISO 8601 time as sent by the API or a browser (`Z` or an offset); None when it is not one."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    # A time without an offset is read as UTC: the API writes UTC everywhere.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def submitted_since(jobs: Iterable[Mapping[str, Any]], since: datetime | None) -> list[dict[str, Any]]:
    """Jobs submitted at or after `since` (all of them when None), in the order given."""
    kept = []
    for job in jobs:
        created = parse_time(str(job.get("createdAt") or ""))
        if since is None or (created is not None and created >= since):
            kept.append(dict(job))
    return kept


def etag_of(body: Any) -> str:
    """A strong validator for a JSON answer: the same body always gives the same tag."""
    encoded = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    return '"' + hashlib.sha256(encoded).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 13.1.2: If-None-Match compares weakly (a `W/` prefix is ignored); `*` matches any current body."""
    if not if_none_match:
        return False
    wanted = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == wanted:
            return True
    return False
