"""Admission: what ARM and ACI refuse before a group is created, applied to the stored groups.

`limits.py` holds the rules (rate windows, core quotas, Spot regions) as pure arithmetic; this module feeds them
the groups of one subscription and region and turns their answers into ARM refusals and usage rows. ACI's quotas
are per subscription and region, and a stopped group holds no cores.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aciemu.arm import ArmError, quota_reached, throttled, unavailable
from aciemu.groupstate import Group
from aciemu.limits import Limits, Priority, Throttled, WriteKind, WriteLimiter, normalize_location
from aciemu.rendering import UsageRow, remaining_headers
from aciemu.validation import ValidatedGroup

GROUP_QUOTA = "ContainerGroups"


def priority_of(body: dict[str, Any]) -> Priority:
    """A stored group's priority; ARM treats an absent one as Regular."""
    return Priority.SPOT if (body.get("properties") or {}).get("priority") == Priority.SPOT.value else Priority.REGULAR


def group_location(group: Group, default: str) -> str:
    """A group's region, normalized (`West Europe` and `westeurope` are one region to ARM)."""
    return normalize_location(str(group.body.get("location") or default))


def in_region(groups: Iterable[Group], subscription: str, location: str, default_location: str) -> list[Group]:
    """The groups that count against one subscription's quotas in one region."""
    scope = (subscription.lower(), normalize_location(location))
    return [g for g in groups if (g.subscription.lower(), group_location(g, default_location)) == scope]


def cores_in_use(groups: Iterable[Group]) -> tuple[float, float]:
    """(Standard, Spot) cores held by `groups`; a stopped group holds none."""
    running = [g for g in groups if g.state != "Stopped"]
    spot = sum(g.cores for g in running if priority_of(g.body) is Priority.SPOT)
    return sum(g.cores for g in running) - spot, spot


def admit_write(limiter: WriteLimiter, kind: WriteKind, subscription: str, location: str) -> dict[str, str] | ArmError:
    """ARM's front door: count the write in its rate windows (returning the `x-ms-ratelimit-remaining-...`
    headers ARM adds to an admitted write), or refuse it with 429, uncounted."""
    verdict = limiter.admit(kind, subscription, location)
    if isinstance(verdict, Throttled):
        return throttled("ResourceRequestsThrottled", verdict.message, verdict.retry_after)
    return remaining_headers(verdict)


def spot_refusal(request: ValidatedGroup, limits: Limits) -> ArmError | None:
    """A Spot create where ACI offers no Spot: refused as the support article on this 409 describes a feature the
    region lacks (the same text as a capacity shortage, so clients cannot tell them apart)."""
    if request.priority is Priority.SPOT and not limits.offers_spot(request.location):
        return unavailable(request.location, request.cores, request.memory_gb, request.os_type.value)
    return None


def quota_refusal(
    request: ValidatedGroup, others: list[Group], limits: Limits, max_groups: int, max_cores: float, region: str
) -> ArmError | None:
    """The group or core quota that `request` would exceed beside `others` (the groups of its subscription and
    region that it does not replace). `region` is the name the message gives."""
    if len(others) + 1 > max_groups:
        return quota_reached(GROUP_QUOTA, region, max_groups, len(others), 1)
    standard, spot = cores_in_use(others)
    exceeded = limits.check_cores(request.priority, request.cores, standard, spot, max_cores)
    if exceeded is not None:
        return quota_reached(exceeded.quota.value, region, exceeded.limit, exceeded.usage, exceeded.requested)
    return None


def usage_rows(groups: list[Group], limits: Limits, max_groups: int, max_cores: float) -> list[UsageRow]:
    """The location usages of one subscription and region (`groups`: the groups counted there)."""
    standard, spot = cores_in_use(groups)
    standard_limit = max_cores if limits.standard_cores is None else limits.standard_cores
    spot_limit = standard_limit if limits.spot_cores is None else limits.spot_cores
    return [
        UsageRow(GROUP_QUOTA, "Container Groups", len(groups), max_groups),
        UsageRow("StandardCores", "Standard Cores", standard, standard_limit),
        UsageRow("StandardSpotCores", "Standard Spot Cores", spot, spot_limit),
    ]
