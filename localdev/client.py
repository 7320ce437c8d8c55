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
from typing import Any

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
        url = self.api_url.rstrip("/") + "/" + path.lstrip("/")
        params = {name: value for name, value in (query or {}).items() if value is not None}
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            raise _api_error(error.code, error.read()) from None
        return json.loads(raw) if raw else None

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

    def cancel(self, job_id: str) -> Any:
        return self.request("POST", f"jobs/{_quote(job_id)}/cancel", {})

    def logs(self, job_id: str, task_id: str, tail: int | None = None) -> Any:
        return self.request("GET", f"jobs/{_quote(job_id)}/tasks/{_quote(task_id)}/logs", query={"tail": tail})

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


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


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
