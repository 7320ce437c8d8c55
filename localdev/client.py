"""A small, dependency-free client for the acibatch HTTP API (used by the CLI, the demo and the tests).

It works the same against devhost and a real Azure deployment: give it the API root
(`http://127.0.0.1:7071/api` or `https://<app>.azurewebsites.net/api`) and a key.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, BinaryIO

DEFAULT_TIMEOUT = 60.0


@dataclass
class ApiCallError(Exception):
    """The API answered with an error envelope (or something that is not JSON)."""

    status: int
    code: str
    message: str
    details: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.message} (HTTP {self.status} {self.code})"]
        lines += [f"  - {item.get('path', '')}: {item.get('message', '')}" for item in self.details]
        return "\n".join(lines)


@dataclass
class BatchClient:
    api_url: str
    key: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        with self.open(method, path, query, data, headers) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def open(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None = None,
        data: bytes | BinaryIO | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """The open HTTP response (read it, then close it: use `with`); an API error raises ApiCallError."""
        url = self.api_url.rstrip("/") + "/" + path.lstrip("/")
        params = {name: value for name, value in (query or {}).items() if value is not None}
        if params:
            url += "?" + urllib.parse.urlencode(params)
        sent = dict(headers or {})
        if self.key:
            sent["Authorization"] = f"Bearer {self.key}"
        request = urllib.request.Request(url, data=data, method=method, headers=sent)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as error:
            raise _api_error(error.code, error.read()) from None

    # tenants (admin key)
    def put_tenant(self, tenant: str, quota: dict[str, Any]) -> Any:
        return self.request("PUT", f"tenants/{_quote(tenant)}", quota)

    def rotate_key(self, tenant: str) -> Any:
        return self.request("POST", f"tenants/{_quote(tenant)}/keys", {})

    def get_tenant(self, tenant: str) -> Any:
        return self.request("GET", f"tenants/{_quote(tenant)}")

    # jobs (tenant key)
    def submit(self, spec: dict[str, Any]) -> Any:
        return self.request("POST", "jobs", spec)

    def jobs(self, state: str | None = None, offset: int = 0, limit: int = 50) -> Any:
        return self.request("GET", "jobs", query={"state": state, "offset": offset, "limit": limit})

    def job(self, job_id: str, offset: int = 0, limit: int = 100) -> Any:
        return self.request("GET", f"jobs/{_quote(job_id)}", query={"offset": offset, "limit": limit})

    def all_tasks(self, job_id: str, page: int = 500) -> list[dict[str, Any]]:
        tasks: list[dict[str, Any]] = []
        offset: int | None = 0
        while offset is not None:
            body = self.job(job_id, offset=offset, limit=page)
            tasks.extend(body["tasks"])
            # An empty page ends the walk even if a server answers a non-null nextOffset with it.
            offset = body["nextOffset"] if body["tasks"] else None
        return tasks

    def task(self, job_id: str, task_id: str) -> Any:
        return self.request("GET", f"jobs/{_quote(job_id)}/tasks/{_quote(task_id)}")

    def cancel(self, job_id: str) -> Any:
        return self.request("POST", f"jobs/{_quote(job_id)}/cancel", {})

    def logs(self, job_id: str, task_id: str, tail: int | None = None) -> Any:
        return self.request("GET", f"jobs/{_quote(job_id)}/tasks/{_quote(task_id)}/logs", query={"tail": tail})

    def log_page(
        self,
        job_id: str,
        task_id: str,
        stream: str = "stdout",
        attempt: int | None = None,
        offset: int = 0,
        tail: int | None = None,
    ) -> LogPage:
        """One page of a task's log as raw bytes. A task run with the agent answers from its stored log (paged by
        `offset`); any other task answers with ACI's log (or the kept tail) in one page, marked `paged=False`."""
        query = {"stream": stream, "attempt": attempt, "offset": offset or None, "tail": tail}
        path = f"jobs/{_quote(job_id)}/tasks/{_quote(task_id)}/logs"
        with self.open("GET", path, query, headers={"Accept": "text/plain, application/json;q=0.5"}) as response:
            raw, headers = response.read(), response.headers
        if str(headers.get("Content-Type", "")).startswith("application/json"):
            body = json.loads(raw)
            return LogPage(str(body.get("content") or "").encode(), offset, complete=True, paged=False)
        next_offset = int(headers.get("X-Acibatch-Log-Offset", offset + len(raw)))
        complete = str(headers.get("X-Acibatch-Log-Complete", "false")).lower() == "true"
        served = _int_header(headers, "X-Acibatch-Log-Attempt") or attempt
        latest = _int_header(headers, "X-Acibatch-Log-Latest-Attempt") or served
        ended = str(headers.get("X-Acibatch-Task-Ended", "false")).lower() == "true"
        return LogPage(raw, next_offset, complete, attempt=served, latest_attempt=latest, task_ended=ended)

    # task outputs (tenant key)
    def task_files(self, job_id: str, task_id: str) -> Any:
        return self.request("GET", f"jobs/{_quote(job_id)}/tasks/{_quote(task_id)}/files")

    def open_file(self, job_id: str, task_id: str, name: str) -> Any:
        """An output's bytes as an open response (`with client.open_file(...) as response: response.read(n)`)."""
        path = f"jobs/{_quote(job_id)}/tasks/{_quote(task_id)}/files/{_quote_path(name)}"
        return self.open("GET", path, headers={"Accept": "application/octet-stream"})

    # input files (tenant key): what autoStorageContainerName names
    def upload_input(self, name: str, path: str, data: bytes | BinaryIO, size: int | None = None) -> Any:
        """Store one input file. `data` is its bytes, or an open file of `size` bytes, sent as it is read."""
        headers = {"Accept": "application/json", "Content-Type": "application/octet-stream"}
        if size is not None:
            headers["Content-Length"] = str(size)  # urllib needs it to send a file object as the body
        with self.open("PUT", f"storage/{_quote(name)}/{_quote_path(path)}", data=data, headers=headers) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def inputs(self, name: str) -> Any:
        return self.request("GET", f"storage/{_quote(name)}")

    # schedules (tenant key)
    def put_schedule(self, schedule_id: str, body: dict[str, Any]) -> Any:
        return self.request("PUT", f"schedules/{_quote(schedule_id)}", body)

    def schedules(self) -> Any:
        return self.request("GET", "schedules")

    def schedule(self, schedule_id: str) -> Any:
        return self.request("GET", f"schedules/{_quote(schedule_id)}")

    def schedule_action(self, schedule_id: str, action: str) -> Any:
        """`suspend`, `resume` or `trigger`."""
        return self.request("POST", f"schedules/{_quote(schedule_id)}/{action}", {})

    def delete_schedule(self, schedule_id: str) -> Any:
        return self.request("DELETE", f"schedules/{_quote(schedule_id)}")


@dataclass(frozen=True)
class LogPage:
    content: bytes
    next_offset: int  # where the next page starts (X-Acibatch-Log-Offset)
    complete: bool  # the attempt has ended: no more bytes will come (X-Acibatch-Log-Complete)
    paged: bool = True  # False: not a stored log (a task without the agent): ACI's log, whole, in one answer
    attempt: int | None = None  # the attempt this page is of (X-Acibatch-Log-Attempt)
    latest_attempt: int | None = None  # the task's latest attempt so far (X-Acibatch-Log-Latest-Attempt)
    task_ended: bool = False  # the task has ended: no later attempt will come (X-Acibatch-Task-Ended)


def _int_header(headers: Any, name: str) -> int | None:
    value = str(headers.get(name) or "")
    return int(value) if value.isascii() and value.isdigit() else None


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def _quote_path(path: str) -> str:
    """A catch-all route value: each segment quoted, the '/' between them kept."""
    return "/".join(_quote(segment) for segment in path.split("/"))


def _api_error(status: int, raw: bytes) -> ApiCallError:
    try:
        error = json.loads(raw)["error"]
        return ApiCallError(
            status,
            str(error.get("code", "")),
            str(error.get("message", "")),
            list(error.get("details") or []),
        )
    except (ValueError, KeyError, TypeError):
        return ApiCallError(status, "HttpError", raw[:300].decode("utf-8", "replace") or f"HTTP {status}")
