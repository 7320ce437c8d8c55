"""Shared plumbing for the HTTP API: JSON responses, error envelopes, body limits and authentication.

Every error is `{"error": {"code", "message", "details"?}}` with a message that says what to fix.
Authentication is `Authorization: Bearer <key>` with the admin key or a tenant key; tenant keys are
found by their tenant prefix and checked against the stored hash in constant time.
"""

from __future__ import annotations

import functools
import hmac
import json
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import azure.durable_functions as df
import azure.functions as func

from acibatch import durable_names as names
from acibatch.accounts import TenantState
from acibatch.apikeys import tenant_of_key, verify_api_key
from acibatch.entitystate import read_stored
from acibatch.settings import SettingsError
from acibatch.settings import current as settings

JSON = "application/json"
Found = TypeVar("Found")


class ApiError(Exception):
    """Raised inside a handler to answer with an error envelope."""

    def __init__(self, status: int, code: str, message: str, details: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        mimetype=JSON,
        headers=dict(headers or {}),
    )


def error_response(error: ApiError) -> func.HttpResponse:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.details:
        body["details"] = error.details
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return json_response({"error": body}, error.status, headers)


# The runtime states of an orchestration that has ended (the extension's raise-event handler answers 410 for them).
TERMINAL = frozenset({"Completed", "Failed", "Terminated", "Canceled"})


def runtime_of(status: Any) -> str | None:
    """An orchestration status's runtime state as a word ('Running', ...); None when the instance does not exist."""
    runtime = getattr(status, "runtime_status", None)
    return None if runtime is None else str(getattr(runtime, "value", runtime))


async def found_or_404(lookup: Awaitable[Found], exists: Callable[[Found], bool], code: str, message: str) -> Found:
    """The looked-up resource (a job's status, a schedule's state), or a 404 with `code` and `message`."""
    value = await lookup
    if not exists(value):
        raise ApiError(404, code, message)
    return value


Handler = Callable[..., Awaitable[func.HttpResponse]]


def handle_errors(handler: Handler) -> Handler:
    """Turn `ApiError` into its response; any other exception into a 500 that leaks no internals."""

    # functools.wraps keeps the signature: the Functions worker binds parameters by name.
    @functools.wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> func.HttpResponse:
        try:
            return await handler(*args, **kwargs)
        except ApiError as error:
            return error_response(error)
        except SettingsError as error:  # an operator's mistake: say exactly which settings to fix
            return error_response(ApiError(500, "InvalidSettings", str(error)))

    return wrapper


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not valid JSON")


def read_body(req: func.HttpRequest, limit: int) -> bytes:
    """The request body, at most `limit` bytes; 413 with the sizes otherwise."""
    declared = str(req.headers.get("Content-Length") or "")
    # Refused on its declared size before the body is touched (decoded, copied, parsed).
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "PayloadTooLarge", f"the request body is {declared} bytes; the limit is {limit} bytes")
    body = req.get_body() or b""
    if len(body) > limit:
        raise ApiError(413, "PayloadTooLarge", f"the request body is {len(body)} bytes; the limit is {limit} bytes")
    return body


def read_json(req: func.HttpRequest) -> Any:
    """The request body as JSON, enforcing the size limit; 413/400 with a clear message otherwise."""
    body = read_body(req, settings().max_body_bytes)
    if not body.strip():
        raise ApiError(400, "InvalidJson", "the request body is empty; send a JSON object")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "InvalidJson", f"the request body is not valid UTF-8 (byte {exc.start})") from exc
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise ApiError(400, "InvalidJson", "the request body is nested too deeply") from exc
    except ValueError as exc:
        raise ApiError(400, "InvalidJson", f"the request body is not valid JSON: {exc}") from exc


def finite(value: object) -> bool:
    # Only floats can be NaN/Infinity; math.isfinite on an integer too large for a float would overflow.
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


@dataclass(frozen=True)
class Principal:
    tenant: str | None  # None for the admin

    @property
    def is_admin(self) -> bool:
        return self.tenant is None


def bearer_token(req: func.HttpRequest) -> str:
    header = str(req.headers.get("Authorization", ""))
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "Unauthorized", "send 'Authorization: Bearer <key>' with the admin key or a tenant key")
    return token.strip()


async def read_tenant(client: df.DurableOrchestrationClient, tenant: str) -> TenantState | None:
    stored = await read_stored(client, df.EntityId(names.TENANT_ENTITY, tenant))
    return TenantState.from_dict(stored) if stored else None


async def authenticate(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> Principal:
    return (await authenticate_reading(req, client))[0]


async def authenticate_reading(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> tuple[Principal, TenantState | None]:
    """`authenticate`, with the tenant's state it read to check the key (None for the admin), so a handler that
    shows that state does not read the entity a second time."""
    key = bearer_token(req)
    if hmac.compare_digest(key.encode(), settings().admin_key.encode()):
        return Principal(tenant=None), None
    tenant = tenant_of_key(key)
    state = await read_tenant(client, tenant) if tenant else None
    if tenant is None or state is None or not state.api_key_hash or not verify_api_key(key, state.api_key_hash):
        raise ApiError(401, "Unauthorized", "the key is not valid; use the admin key or a current tenant key")
    return Principal(tenant=tenant), state


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise ApiError(403, "Forbidden", "this operation needs the admin key")


def require_tenant(principal: Principal) -> str:
    if principal.tenant is None:
        raise ApiError(403, "Forbidden", "jobs belong to tenants: use the tenant's key, not the admin key")
    return principal.tenant


def query_int(req: func.HttpRequest, name: str, default: int, low: int, high: int) -> int:
    raw = req.params.get(name)
    if raw is None:
        return default
    # An empty value ("?limit=") is refused like any other non-number, as the OpenAPI document says.
    # ASCII digits only: str.isdigit also accepts '²' (int() refuses it) and other scripts' digits; the length
    # check keeps int() within its digit limit.
    digits = raw.lstrip("0") or "0"
    if not (raw.isascii() and raw.isdigit() and len(digits) <= len(str(high))) or not low <= int(digits) <= high:
        raise ApiError(
            400,
            "InvalidQuery",
            f"query parameter '{name}' must be an integer from {low} to {high}, not '{raw[:40]}'",
        )
    return int(digits)


def base_url(req: func.HttpRequest) -> str:
    """The public origin + route prefix the client used, so returned URLs work behind any host name."""
    url = str(req.url)
    marker = url.find("/api/")
    return url[:marker] + "/api" if marker >= 0 else url.rstrip("/")
