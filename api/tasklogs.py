"""`GET /api/jobs/{job}/tasks/{task}/logs` for a task run with the agent: its whole log, from the append blob
the agent streams it to, in pages of at most 4 MiB.

`X-Acibatch-Log-Offset` is where the next page starts and `X-Acibatch-Log-Complete: true` says the attempt
(`X-Acibatch-Log-Attempt`) has ended, so a client follows a running log by asking again for that attempt from the
offset until the log is complete and a page comes back empty. It then follows the task's later attempts
(`X-Acibatch-Log-Latest-Attempt`) from offset 0, until `X-Acibatch-Task-Ended: true`. The body is the raw bytes
with `Accept: text/plain`; otherwise the same JSON as the log of a task without the agent (the dashboard reads
that), its `content` cut at a whole character.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import azure.functions as func

from acibatch.blobstore.layout import LogStream
from acibatch.blobstore.store import BlobStore
from acibatch.filelimits import LOG_ATTEMPT_MAX, LOG_OFFSET_MAX, LOG_PAGE_MAX_BYTES, MAX_TAIL_LINES
from acibatch.records import TaskRecord
from api.blobcalls import call, storage_or_404
from api.common import ApiError, json_response, query_int
from api.filerules import last_lines, log_stream, whole_characters

TEXT = "text/plain"
JSON = "application/json"


def _quality(accept: str, media: str) -> float:
    """The q-value `accept` gives `media` (RFC 9110 12.5.1), counting `type/*` and `*/*`; 0 when not accepted."""
    best, best_rank = 0.0, -1
    kind = media.split("/", maxsplit=1)[0]
    for part in accept.split(","):
        fields = [field.strip() for field in part.split(";")]
        name = fields[0].lower()
        rank = 2 if name == media else 1 if name == f"{kind}/*" else 0 if name == "*/*" else -1
        if rank <= best_rank:
            continue
        quality = 1.0
        for param in fields[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        best, best_rank = quality, rank
    return best


def wants_text(req: func.HttpRequest) -> bool:
    accept = str(req.headers.get("Accept") or "")
    return bool(accept) and _quality(accept, TEXT) > _quality(accept, JSON)


@dataclass(frozen=True)
class LogQuery:
    """The logs route's query, checked before anything is looked up (every task's log takes the same query;
    `stream`, `attempt` and `offset` mean something only for a stored log)."""

    stream: LogStream
    attempt: int | None
    offset: int
    offset_given: bool
    tail: int | None

    @classmethod
    def parse(cls, req: func.HttpRequest) -> LogQuery:
        return cls(
            stream=log_stream(req.params.get("stream")),
            attempt=query_int(req, "attempt", 0, 1, LOG_ATTEMPT_MAX) if "attempt" in req.params else None,
            offset=query_int(req, "offset", 0, 0, LOG_OFFSET_MAX),
            offset_given="offset" in req.params,
            tail=query_int(req, "tail", 0, 0, MAX_TAIL_LINES) or None,
        )


async def attempt_ended(store: BlobStore, tenant: str, job_id: str, record: TaskRecord, attempt: int) -> bool:
    """Whether the attempt's log is final. Decided before its log is read, so a page read after `True` holds
    its last bytes. An earlier attempt has ended, and so has the latest once the task has. The latest one of a
    running task has too once its result.json exists: the agent writes it after its last append, and the task
    may wait a while (the group's delete, the retry's queue) before it starts the next attempt."""
    if attempt < record.attempt or record.state.terminal:
        return True
    return await call(lambda: store.read_result(tenant, job_id, record.id, attempt)) is not None


async def stored_log(
    req: func.HttpRequest, query: LogQuery, tenant: str, job_id: str, record: TaskRecord
) -> func.HttpResponse:
    task_id = record.id
    stream, offset, tail = query.stream, query.offset, query.tail
    latest = record.attempt  # at least 1: the route answers for a task without an attempt (`api.jobs.not_started`)
    attempt = latest if query.attempt is None else query.attempt
    if attempt > latest:
        raise ApiError(
            400, "InvalidQuery", f"query parameter 'attempt' must be from 1 to {latest}: task '{task_id}' has run "
            f"{latest} attempt(s)",
        )  # fmt: skip
    store = storage_or_404("the task's stored log")
    complete = await attempt_ended(store, tenant, job_id, record, attempt)
    if tail and not query.offset_given:
        # The last lines: start one page before the end, so the tail comes from a single read.
        sizes = await call(lambda: store.log_sizes(tenant, job_id, task_id))
        offset = max(0, sizes.get(attempt, {}).get(stream, 0) - LOG_PAGE_MAX_BYTES)
    read = await call(lambda: store.read_log(tenant, job_id, task_id, attempt, stream, offset, LOG_PAGE_MAX_BYTES))
    if not read.exists and complete:
        raise ApiError(
            404,
            "LogNotAvailable",
            f"attempt {attempt} of task '{task_id}' stored no {stream} log (its agent never started)",
        )
    data = read.data
    text = wants_text(req)
    if not text:
        # JSON carries text: end the page at a whole character (the next page starts with the rest); a page that
        # is only a cut character (a log that ends in one) is sent as it is, so paging never stalls.
        data = whole_characters(data) or data
    next_offset = offset + len(data)
    if tail:
        data = last_lines(data, tail)
    headers = {
        "X-Acibatch-Log-Offset": str(next_offset),
        "X-Acibatch-Log-Complete": "true" if complete else "false",
        "X-Acibatch-Log-Attempt": str(attempt),
        # A follower moves on to a later attempt when there is one, and stops once the task has ended.
        "X-Acibatch-Log-Latest-Attempt": str(latest),
        "X-Acibatch-Task-Ended": "true" if record.state.terminal else "false",
        "Cache-Control": "no-store",
    }
    if text:
        return func.HttpResponse(data, status_code=200, mimetype=TEXT, charset="utf-8", headers=headers)
    body: dict[str, Any] = {
        "jobId": job_id,
        "taskId": task_id,
        "groupName": record.group_name,
        "source": "blob",
        "stream": str(stream),
        "attempt": attempt,
        "offset": offset,
        "nextOffset": next_offset,
        "complete": complete,
        "content": data.decode("utf-8", errors="replace"),
    }
    return json_response(body, headers=headers)
