"""Files on blob storage: a task's output files (list, download) and a tenant's input sets (upload, list).

Every read and write goes to the container of the tenant whose key authenticated the request (the container name
is derived from that tenant and nothing in the request), so no request reaches another tenant's data: another
tenant's jobs are 404 as everywhere else in the API. Outputs are listed from the attempt's `result.json`, which the
agent writes only after every upload finished, so a half-uploaded blob is never listed or served.

The Functions host matches routes in the order it registered them, not by specificity, and `{*name}` is optional,
so `.../files/{*name}` also matches a bare `.../files`: both functions answer that with the list, whichever the host
picks. The input routes differ by method, which the host checks before it takes a route.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from acibatch.filelimits import DOWNLOAD_MAX_BYTES, INPUT_LIST_DEFAULT, INPUT_LIST_MAX, INPUT_MAX_BYTES
from acibatch.records import TaskRecord
from api import bp
from api.blobcalls import call, storage_or_404
from api.common import ApiError, authenticate, handle_errors, json_response, query_int, read_body, require_tenant
from api.filerules import input_path, input_set_name, output_name
from api.jobs import find_task, job_id_from_route, not_started

CUSTOM_DESTINATION = "custom"
LISTED_FIELDS = ("name", "file", "size", "sha256", "destination")


async def _task(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> tuple[str, str, TaskRecord]:
    """(tenant, job id, record) of a task of the caller's own job that ran with the agent; 404 otherwise."""
    tenant = require_tenant(await authenticate(req, client))
    job_id = job_id_from_route(req)
    task_id = str(req.route_params.get("taskId", ""))
    record, agent = await find_task(client, tenant, job_id, task_id)
    storage_or_404("task files")
    if not agent:
        raise ApiError(
            404,
            "FilesNotAvailable",
            f"task '{task_id}' ran without the acibatch agent (its job was submitted before blob storage was on, "
            "or the task has no command), so it has no stored files",
        )
    if record.attempt < 1:
        raise await not_started(client, tenant, job_id, record, "FilesNotAvailable", "it has no files")
    return tenant, job_id, record


async def _outputs(tenant: str, job_id: str, record: TaskRecord) -> list[dict[str, Any]]:
    """The outputs the task's latest attempt recorded in its result.json (404 while it has none)."""
    store = storage_or_404("task files")
    result = await call(lambda: store.read_result(tenant, job_id, record.id, record.attempt))
    if result is None:
        running = "is still running: its outputs are listed once it ends" if not record.state.terminal else (
            "recorded no result (its agent did not finish)"
        )  # fmt: skip
        raise ApiError(404, "FilesNotAvailable", f"attempt {record.attempt} of task '{record.id}' {running}")
    outputs = result.get("outputs")
    return [item for item in outputs if isinstance(item, dict)] if isinstance(outputs, list) else []


@bp.route(route="jobs/{jobId}/tasks/{taskId}/files", methods=["GET"])
@bp.durable_client_input(client_name="client")
@handle_errors
async def task_files(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    tenant, job_id, record = await _task(req, client)
    return _listing(record, await _outputs(tenant, job_id, record))


def _listing(record: TaskRecord, outputs: list[dict[str, Any]]) -> func.HttpResponse:
    files = [{field: item.get(field) for field in LISTED_FIELDS} for item in outputs]
    return json_response({"attempt": record.attempt, "files": files})


@bp.route(route="jobs/{jobId}/tasks/{taskId}/files/{*name}", methods=["GET"])
@bp.durable_client_input(client_name="client")
@handle_errors
async def task_file(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    tenant, job_id, record = await _task(req, client)
    outputs = await _outputs(tenant, job_id, record)
    raw_name = str(req.route_params.get("name") or "")
    if not raw_name:  # the bare `.../files` matched this route (see the module's docstring)
        return _listing(record, outputs)
    name = output_name(raw_name)
    item = next((item for item in outputs if item.get("name") == name), None)
    if item is None:
        raise ApiError(404, "FileNotFound", f"task '{record.id}' lists no output '{name[:200]}'; see its files")
    if item.get("destination") == CUSTOM_DESTINATION:
        raise ApiError(
            409,
            "OutputInOwnContainer",
            f"output '{name[:200]}' was uploaded to your own container (destination.container.containerUrl); "
            "read it there",
        )
    size = int(item.get("size") or 0)
    if size > DOWNLOAD_MAX_BYTES:
        raise ApiError(
            413,
            "OutputTooLarge",
            f"output '{name[:200]}' is {size} bytes; the API serves outputs up to {DOWNLOAD_MAX_BYTES} bytes. Send "
            "bigger outputs to your own container with destination.container.containerUrl",
        )
    store = storage_or_404("task files")

    def read_all() -> bytes:
        try:
            stored, chunks = store.output_chunks(tenant, job_id, record.id, name)
        except ValueError:  # not under the task's own output prefix: not something this route serves
            raise ApiError(404, "FileNotFound", f"task '{record.id}' has no output '{name[:200]}'") from None
        if stored != size:  # never allocate for, or serve, something other than what the task recorded
            raise ApiError(
                409,
                "OutputChanged",
                f"output '{name[:200]}' is {stored} bytes in storage but the task recorded {size}; it was "
                "replaced after the task ended",
            )
        return fill(size, chunks, name)

    data = await call(read_all)
    filename = name.rsplit("/", 1)[-1].replace('"', "")
    headers = {
        "Content-Disposition": f'attachment; filename="{filename}"',
        "X-Acibatch-Sha256": str(item.get("sha256") or ""),
        "Cache-Control": "no-store",
    }
    return func.HttpResponse(data, status_code=200, mimetype="application/octet-stream", headers=headers)


def fill(size: int, chunks: Iterator[bytes], name: str) -> bytes:
    """The chunks as one bytes object, holding one copy of the output (plus the chunk being read): joining a
    list of chunks holds two, and a bytearray is copied again by HttpResponse, which keeps only bytes. The
    BytesIO's buffer is grown to the whole size once, filled in place, and handed over by getvalue() without a
    copy (CPython shares the buffer of a BytesIO whose memory nothing else has exported)."""
    buffer, filled = io.BytesIO(), 0
    if size:
        buffer.seek(size - 1)
        buffer.write(b"\0")
        buffer.seek(0)
    for chunk in chunks:
        filled += len(chunk)
        if filled > size:
            raise ApiError(409, "OutputChanged", f"output '{name[:200]}' grew while it was read; try again")
        buffer.write(chunk)
    if filled != size:
        raise ApiError(409, "OutputChanged", f"output '{name[:200]}' shrank while it was read; try again")
    return buffer.getvalue()


async def _input_set(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> tuple[str, str]:
    """The caller's tenant (whose container holds the set) and the set's name from the route, checked."""
    tenant = require_tenant(await authenticate(req, client))
    return tenant, input_set_name(str(req.route_params.get("name", "")))


@bp.route(route="storage/{name}/{*path}", methods=["PUT"])
@bp.durable_client_input(client_name="client")
@handle_errors
async def upload_input(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    tenant, name = await _input_set(req, client)
    raw_path = str(req.route_params.get("path") or "")
    if not raw_path:
        raise ApiError(400, "InvalidPath", f"give the file's path: PUT /api/storage/{name}/<path>, e.g. a/b.csv")
    path = input_path(raw_path)
    data = read_body(req, INPUT_MAX_BYTES)
    store = storage_or_404("uploading input files")
    await call(lambda: store.upload_input(tenant, name, path, data, len(data)))
    body = {"name": name, "path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return json_response(body, 201)


@bp.route(route="storage/{name}", methods=["GET"])
@bp.durable_client_input(client_name="client")
@handle_errors
async def list_inputs(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    tenant, name = await _input_set(req, client)
    offset = query_int(req, "offset", 0, 0, 10**9)
    limit = query_int(req, "limit", INPUT_LIST_DEFAULT, 1, INPUT_LIST_MAX)
    store = storage_or_404("listing input files")
    files = sorted(await call(lambda: store.list_inputs(tenant, name)), key=lambda stored: stored.path)
    page = files[offset : offset + limit]
    body = {
        "name": name,
        "total": len(files),
        "files": [{"path": stored.path, "size": stored.size} for stored in page],
        "offset": offset,
        "nextOffset": offset + len(page) if offset + len(page) < len(files) else None,
    }
    return json_response(body)
