"""The ARM vocabulary the emulator answers in: resource ids, the error envelope, and ACI's refusals.

Every refusal is built here once, so validation, admission and the routes give one code and one wording for one
situation (the texts follow real ACI answers; sources in aciemu/README.md and the ACI reference).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PROVIDER = "Microsoft.ContainerInstance"
GROUP_TYPE = f"{PROVIDER}/containerGroups"


@dataclass(frozen=True)
class ArmError:
    """One ARM refusal: HTTP status, error code (None for ACI's message-only bodies), message, extra headers."""

    status: int
    code: str | None
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)

    def envelope(self) -> dict[str, Any]:
        """`{"error": {"code", "message"}}`; without a code only the message, as ACI's async failures are."""
        error: dict[str, Any] = {"message": self.message}
        if self.code:
            error = {"code": self.code, **error}
        return {"error": error}


class ArmFailure(Exception):
    """Raised by the emulator's logic to refuse a request; the routes answer with the error's envelope."""

    def __init__(self, error: ArmError) -> None:
        super().__init__(error.message)
        self.error = error


def resource_id(subscription: str, resource_group: str, name: str) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/{GROUP_TYPE}/{name}"


def not_found(name: str, resource_group: str) -> ArmError:
    return ArmError(
        404, "ResourceNotFound",
        f"The Resource '{GROUP_TYPE}/{name}' under resource group '{resource_group}' was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )  # fmt: skip


def transitioning(name: str) -> ArmError:
    return ArmError(
        409, "ContainerGroupTransitioning", f"The container group '{name}' is still transitioning, please retry later."
    )


def log_not_available(container: str, name: str) -> ArmError:
    return ArmError(
        404, "ContainerLogNotAvailable",
        f"Log of container '{container}' in container group '{name}' is not available yet. Please check "
        "container 'InstanceView' for more information or retry later.",
    )  # fmt: skip


def quota_reached(quota: str, region: str, limit: float, usage: float, requested: float) -> ArmError:
    return ArmError(
        400, "ContainerGroupQuotaReached",
        f"Resource type '{GROUP_TYPE}' container group quota '{quota}' exceeded in region '{region}'. "
        f"Limit: '{limit:g}', Usage: '{usage:g}' Requested: '{requested:g}'.",
    )  # fmt: skip


def inaccessible_image(image: str, name: str) -> ArmError:
    return ArmError(
        400, "InaccessibleImage",
        f"The image '{image}' in container group '{name}' is not accessible. "
        "Please check the image and registry credential.",
    )  # fmt: skip


def unavailable(location: str, cores: float, memory_gb: float, os_type: str) -> ArmError:
    """ACI's capacity refusal (409 ServiceUnavailable), also its answer for a feature the region lacks."""
    return ArmError(
        409, "ServiceUnavailable",
        f"The requested resource is not available in the location '{location}' at this moment. Please retry "
        f"with a different resource request or in another location. Resource requested: '{cores:g}' CPU "
        f"'{memory_gb:g}' GB memory '{os_type}' OS",
    )  # fmt: skip


def throttled(code: str, message: str, retry_after: int | str) -> ArmError:
    return ArmError(429, code, message, {"Retry-After": str(retry_after)})


def invalid_content(message: str) -> ArmError:
    return ArmError(400, "InvalidRequestContent", message)
