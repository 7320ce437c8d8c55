"""Orchestration status reads that fetch the input only when asked, and parse only what the API uses.

The Durable client's `get_status` cannot leave the input out: the extension's status API shows it unless the
request says `showInput=false` (HttpApiHandler.HandleGetStatusRequestAsync defaults it to true) and the Python
SDK adds the flag only when it is true. A job's input holds its whole spec (hundreds of KB for 10,000 tasks; in
Azure Storage an input that large lives in a blob, fetched on every read that shows it), so the job's reads ask
for the status without it. The SDK's status object also parses both timestamps with dateutil, which was most
of the CPU of reading a page of task records; `InstanceStatus` keeps the fields as they came.

Requests go to the same endpoint as the SDK's own (the client binding's `rpcBaseUrl`, the host's local one, not
the app's public URL) through the SDK's shared HTTP session, built the way the SDK builds its status URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from typing import Any

import azure.durable_functions as df
from azure.durable_functions.models.RpcManagementOptions import RpcManagementOptions

try:  # an SDK internal (requirements.txt pins the minor version it was checked on); else `get_status` below
    from azure.durable_functions.models.utils.http_utils import get_async_request
except ImportError:  # pragma: no cover - only with an SDK this was not tested on
    get_async_request = None

from acibatch.callbacks import decode_event_payload
from api.common import runtime_of

# The codes the status API answers an existing instance with: Completed, running or pending, Failed or
# Terminated, and Failed when the caller asked failures to be 500s (as the SDK's own get_status accepts them).
ANSWERED = {HTTPStatus.OK, HTTPStatus.ACCEPTED, HTTPStatus.BAD_REQUEST, HTTPStatus.INTERNAL_SERVER_ERROR}


class StatusReadFailed(Exception):
    """The status API answered something other than an instance's status or a 404."""


@dataclass(frozen=True)
class InstanceStatus:
    """What the API reads of an orchestration's status (the attribute names of the SDK's status object)."""

    runtime_status: str | None
    custom_status: Any
    output: Any
    created_text: str  # the status API's createdTime, as sent
    input_: Any = None  # decoded; None when not asked for

    @property
    def created_time(self) -> datetime | None:
        try:
            return datetime.fromisoformat(self.created_text.replace("Z", "+00:00"))
        except ValueError:
            return None


def _rpc_base(client: df.DurableOrchestrationClient) -> str | None:
    # The SDK keeps the binding's rpcBaseUrl on a private attribute; its own status reads use the same value.
    url = getattr(getattr(client, "_orchestration_bindings", None), "rpc_base_url", None)
    return str(url) if url else None


def status_url(client: df.DurableOrchestrationClient, instance_id: str, *, with_input: bool) -> str:
    """The URL the SDK's `get_status` would call, saying explicitly whether to show the input."""
    base = _rpc_base(client)
    if base is None:
        raise StatusReadFailed("the Durable client binding has no rpcBaseUrl")
    url = RpcManagementOptions(instance_id=instance_id).to_url(base)
    return f"{url}{'&' if '?' in url else '?'}showInput={'true' if with_input else 'false'}"


async def read_status(
    client: df.DurableOrchestrationClient, instance_id: str, *, with_input: bool = False
) -> InstanceStatus | None:
    """The instance's status (its input decoded when `with_input`), or None when it does not exist."""
    if get_async_request is None or _rpc_base(client) is None:
        return await sdk_status(client, instance_id)
    code, body = await get_async_request(status_url(client, instance_id, with_input=with_input))
    if code == HTTPStatus.NOT_FOUND:
        return None
    if code not in ANSWERED or not isinstance(body, dict) or "runtimeStatus" not in body:
        raise StatusReadFailed(f"the status API answered HTTP {code} for an instance status read")
    runtime = body.get("runtimeStatus")
    return InstanceStatus(
        runtime_status=None if runtime is None else str(runtime),
        custom_status=body.get("customStatus"),
        output=body.get("output"),
        created_text=str(body.get("createdTime") or ""),
        input_=decode_event_payload(body.get("input")) if with_input else None,
    )


async def sdk_status(client: df.DurableOrchestrationClient, instance_id: str) -> InstanceStatus | None:
    """The same read through the SDK's public `get_status` (with the input, which it always asks for): the path
    when the SDK no longer has the internals the cheaper read uses."""
    status = await client.get_status(instance_id)
    runtime = runtime_of(status)
    if runtime is None:
        return None
    created = getattr(status, "created_time", None)
    return InstanceStatus(
        runtime_status=runtime,
        custom_status=getattr(status, "custom_status", None),
        output=getattr(status, "output", None),
        created_text=created.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(created, datetime) else "",
        input_=decode_event_payload(getattr(status, "input_", None)),
    )
