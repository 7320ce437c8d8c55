"""Lease reconciliation: each reason to reclaim, what is kept, the grace, odd lease ids; and how the sweep reads
an owner's status (unknown only on a 404)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import azure.durable_functions as df
import pytest
from azure.durable_functions.models.DurableOrchestrationStatus import DurableOrchestrationStatus
from azure.durable_functions.models.utils import http_utils

from acibatch import tenancy
from acibatch.aci import GroupSummary
from acibatch.reconcile import (
    LeaseOwner,
    OwnerStatus,
    ReclaimReason,
    owners_to_check,
    parse_lease_id,
    stale_leases,
)
from activities import sweep
from devhost.binding import durable_client_binding
from tests.httpserve import send_json, serving_on_a_thread

NOW = 1_800_000_000.0
GRACE = 600.0
OLD = NOW - 3600  # well past the grace
OWNER_A, OWNER_B, OWNER_C = "task:team-a:j1:1", "task:team-a:j1:2", "task:team-a:j2:1"
QUOTA = tenancy.Quota(max_groups=1, max_cores=1, max_memory_gb=4)


def request(lease_id: str, at: float = OLD) -> tenancy.LeaseRequest:
    return tenancy.LeaseRequest(lease_id, "team-a", cores=1, memory_gb=1, requested_at=at)


def state_with(
    running: Sequence[tuple[str, float]] = (), queued: Sequence[tuple[str, float]] = ()
) -> tenancy.CapacityState:
    """A capacity state built through the real `acquire`: `running` leases granted, then `queued` waiting."""
    state = tenancy.CapacityState.empty(max_groups=100, max_cores=100)
    state, _ = tenancy.set_tenant_quota(state, "team-a", tenancy.Quota(100, 100, 400))
    for lease_id, at in running:
        state, answer = tenancy.acquire(state, request(lease_id, at=at))
        assert answer.status is tenancy.AcquireStatus.GRANTED
    state, _ = tenancy.set_tenant_quota(state, "team-a", QUOTA)  # one group at most: later requests wait
    for lease_id, at in queued:
        state, answer = tenancy.acquire(state, request(lease_id, at=at))
        assert answer.status is tenancy.AcquireStatus.QUEUED
    # As the sweep reads it: the stored form, decoded.
    return tenancy.CapacityState.from_dict(state.to_dict())


def reclaimed(state: tenancy.CapacityState, statuses: dict[str, OwnerStatus]) -> dict[str, ReclaimReason]:
    return {found.lease_id: found.reason for found in stale_leases(state, statuses, NOW, GRACE)}


@pytest.mark.parametrize(
    ("runtime", "reason"),
    [
        ("Completed", ReclaimReason.OWNER_FINISHED),
        ("Failed", ReclaimReason.OWNER_FAILED),
        ("Terminated", ReclaimReason.OWNER_TERMINATED),
        ("Canceled", ReclaimReason.OWNER_TERMINATED),
        (None, ReclaimReason.OWNER_UNKNOWN),
    ],
)
def test_a_lease_whose_owner_is_over_or_unknown_is_reclaimed(runtime: str | None, reason: ReclaimReason) -> None:
    state = state_with(running=[(f"{OWNER_A}#1", OLD)])
    found = stale_leases(state, {OWNER_A: OwnerStatus(runtime, attempt=1)}, NOW, GRACE)
    assert [(f.lease_id, f.owner, f.reason, f.queued) for f in found] == [(f"{OWNER_A}#1", OWNER_A, reason, False)]
    assert OWNER_A in found[0].detail
    assert found[0].to_dict()["reason"] == str(reason)


@pytest.mark.parametrize("runtime", ["Running", "Pending", "Suspended", "ContinuedAsNew"])
def test_a_live_owner_keeps_its_current_lease(runtime: str) -> None:
    state = state_with(running=[(f"{OWNER_A}#2", OLD)], queued=[(f"{OWNER_B}#1", OLD)])
    statuses = {OWNER_A: OwnerStatus(runtime, attempt=2), OWNER_B: OwnerStatus(runtime, attempt=1)}
    assert reclaimed(state, statuses) == {}


def test_a_live_owner_on_a_later_attempt_loses_the_earlier_attempts_lease_and_request() -> None:
    state = state_with(running=[(f"{OWNER_A}#1", OLD)], queued=[(f"{OWNER_B}#1", OLD), (f"{OWNER_B}#2", OLD)])
    statuses = {OWNER_A: OwnerStatus("Running", attempt=2), OWNER_B: OwnerStatus("Running", attempt=2)}
    found = stale_leases(state, statuses, NOW, GRACE)
    assert {f.lease_id: f.reason for f in found} == {
        f"{OWNER_A}#1": ReclaimReason.OWNER_ON_LATER_ATTEMPT,
        f"{OWNER_B}#1": ReclaimReason.OWNER_ON_LATER_ATTEMPT,
    }
    assert "attempt 2, past attempt 1" in found[0].detail


def test_a_live_owner_that_says_no_attempt_keeps_everything() -> None:
    state = state_with(running=[(f"{OWNER_A}#1", OLD)])
    assert reclaimed(state, {OWNER_A: OwnerStatus("Running", attempt=None)}) == {}


def test_queued_requests_of_a_dead_owner_are_withdrawn_first() -> None:
    state = state_with(running=[(f"{OWNER_A}#1", OLD)], queued=[(f"{OWNER_C}#1", OLD)])
    statuses = {OWNER_A: OwnerStatus("Terminated"), OWNER_C: OwnerStatus("Failed")}
    found = stale_leases(state, statuses, NOW, GRACE)
    # A release first would grant the dead owner's request, only for it to be released again.
    assert [(f.lease_id, f.queued) for f in found] == [(f"{OWNER_C}#1", True), (f"{OWNER_A}#1", False)]


def test_an_owner_whose_status_was_not_read_keeps_its_leases() -> None:
    state = state_with(running=[(f"{OWNER_A}#1", OLD)], queued=[(f"{OWNER_B}#1", OLD)])
    assert reclaimed(state, {OWNER_B: OwnerStatus("Completed")}) == {f"{OWNER_B}#1": ReclaimReason.OWNER_FINISHED}


def test_an_unknown_runtime_status_name_is_never_a_reason() -> None:
    state = state_with(running=[(f"{OWNER_A}#1", OLD)])
    assert reclaimed(state, {OWNER_A: OwnerStatus("Rewinding", attempt=9)}) == {}


def test_leases_and_requests_younger_than_the_grace_are_never_touched() -> None:
    young = NOW - GRACE + 1
    state = state_with(
        running=[(f"{OWNER_A}#1", young), (f"{OWNER_B}#1", NOW - GRACE)], queued=[(f"{OWNER_C}#1", young)]
    )
    dead = {owner: OwnerStatus(None) for owner in (OWNER_A, OWNER_B, OWNER_C)}
    assert reclaimed(state, dead) == {f"{OWNER_B}#1": ReclaimReason.OWNER_UNKNOWN}
    # Only the owners past the grace are worth a status read.
    assert owners_to_check(state, NOW, GRACE) == [OWNER_B]
    # The same state a grace later: everything is old enough.
    assert {f.lease_id for f in stale_leases(state, dead, NOW + GRACE, GRACE)} == {
        f"{OWNER_A}#1",
        f"{OWNER_B}#1",
        f"{OWNER_C}#1",
    }


def test_a_lease_granted_recently_after_a_long_wait_is_young() -> None:
    # Asked for an hour ago, granted a moment ago: the grant time is what counts.
    state = tenancy.CapacityState.from_dict({
        "maxGroups": 5,
        "maxCores": 5,
        "quotas": {"team-a": QUOTA.to_dict()},
        "running": [{**request(f"{OWNER_A}#1").to_dict(), "startedAt": NOW - 5}],
    })  # fmt: skip
    assert reclaimed(state, {OWNER_A: OwnerStatus("Terminated")}) == {}


def test_grace_zero_takes_everything_stale_at_once() -> None:
    state = state_with(running=[(f"{OWNER_A}#1", NOW)])
    assert {f.lease_id for f in stale_leases(state, {OWNER_A: OwnerStatus("Completed")}, NOW, 0)} == {f"{OWNER_A}#1"}


def test_owners_to_check_lists_each_owner_once() -> None:
    state = state_with(running=[(f"{OWNER_A}#1", OLD)], queued=[(f"{OWNER_A}#2", OLD), (f"{OWNER_C}#1", OLD)])
    assert owners_to_check(state, NOW, GRACE) == [OWNER_A, OWNER_C]


@pytest.mark.parametrize(
    ("lease_id", "parsed"),
    [
        ("task:t:j:1#2", LeaseOwner("task:t:j:1", 2)),
        ("task:t:j:1#0", LeaseOwner("task:t:j:1", 0)),
        ("a#b#3", LeaseOwner("a#b", 3)),  # the attempt is after the last '#'
        ("task:t:j:1", LeaseOwner("task:t:j:1", None)),  # no attempt at all
        ("task:t:j:1#", LeaseOwner("task:t:j:1", None)),
        ("task:t:j:1#x", LeaseOwner("task:t:j:1", None)),
        ("task:t:j:1#-1", LeaseOwner("task:t:j:1", None)),
        ("task:t:j:1#²", LeaseOwner("task:t:j:1", None)),  # isdigit() says yes, int() says no
        ("task:t:j:1#" + "9" * 5000, LeaseOwner("task:t:j:1", None)),  # past int()'s digit limit
        ("#3", None),
        ("   #3", None),
        ("", None),
        (None, None),
        (42, None),
    ],
)
def test_parse_lease_id_reads_owner_and_attempt_and_never_raises(lease_id: object, parsed: LeaseOwner | None) -> None:
    assert parse_lease_id(lease_id) == parsed


def test_odd_ids_in_the_state_are_handled_without_raising() -> None:
    state = state_with(running=[("#1", OLD), ("task:t:j:9#x", OLD)], queued=[("loose-lease", OLD)])
    assert owners_to_check(state, NOW, GRACE) == ["task:t:j:9", "loose-lease"]
    statuses = {"task:t:j:9": OwnerStatus("Running", attempt=5), "loose-lease": OwnerStatus(None)}
    # No attempt to compare: a live owner keeps it; a missing owner loses it. "#1" names no owner: kept.
    assert reclaimed(state, statuses) == {"loose-lease": ReclaimReason.OWNER_UNKNOWN}


# -- the sweep's edge: an owner counts as unknown only when the status API says 404 -------------------------------

SYSTEM_KEY = "system-key-never-logged"


class StatusApi(BaseHTTPRequestHandler):
    """The Durable status API as the extension answers it, on both the RPC and the public webhook path: 404 with no
    body for a missing instance; 202 with the status for a running one; and for a broken read (storage down),
    the bodiless 500 of the local RPC listener's catch-all (the public path then answers 500 or, a moment later,
    the real status)."""

    answers: dict[str, dict[str, tuple[int, Any]]] = {
        "gone": {"rpc": (404, None), "public": (404, None)},
        "alive": {"rpc": (202, {"runtimeStatus": "Running", "customStatus": {"attempt": 2}}), "public": (500, None)},
        "broken": {"rpc": (500, None), "public": (500, None)},
        "flaky": {"rpc": (500, None), "public": (202, {"runtimeStatus": "Running"})},
    }
    public_keys: list[str | None] = []

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        instance = unquote(url.path.rsplit("/", 1)[-1])
        public = url.path.startswith("/runtime/webhooks/durabletask/")
        if public:
            StatusApi.public_keys.append(parse_qs(url.query).get("code", [None])[0])
        status, body = self.answers[instance]["public" if public else "rpc"]
        if body is None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            send_json(self, status, body)

    def log_message(self, *args: Any) -> None:
        pass


def test_only_a_404_makes_an_owner_unknown_and_an_unclear_owner_keeps_its_leases() -> None:
    with serving_on_a_thread(HTTPServer(("127.0.0.1", 0), StatusApi)) as server:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        client = df.DurableOrchestrationClient(durable_client_binding(base, "hub", f"{base}/rpc/", SYSTEM_KEY))

        async def read() -> dict[str, OwnerStatus]:
            try:
                return await sweep.owner_statuses(client, ["gone", "alive", "broken", "flaky"])
            finally:
                await http_utils._close_session()  # the SDK's shared session belongs to this event loop

        statuses = asyncio.run(read())
    assert statuses == {"gone": OwnerStatus(None), "alive": OwnerStatus("Running", attempt=2)}
    # The confirming reads went to the binding's public status URL, with the system key it carries.
    assert StatusApi.public_keys == [SYSTEM_KEY] * 3

    state = state_with(running=[("gone#1", OLD), ("broken#1", OLD)], queued=[("flaky#1", OLD), ("alive#1", OLD)])
    assert reclaimed(state, statuses) == {
        "gone#1": ReclaimReason.OWNER_UNKNOWN,
        "alive#1": ReclaimReason.OWNER_ON_LATER_ATTEMPT,
    }


def test_an_unclear_status_names_the_http_status_and_never_the_key() -> None:
    with serving_on_a_thread(HTTPServer(("127.0.0.1", 0), StatusApi)) as server:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        client = df.DurableOrchestrationClient(durable_client_binding(base, "hub", f"{base}/rpc/", SYSTEM_KEY))

        async def read() -> str:
            try:
                await sweep.owner_status(client, "broken")
            except sweep.OwnerStatusUnclear as error:
                return str(error)
            finally:
                await http_utils._close_session()
            raise AssertionError("a 500 must not read as a status")

        message = asyncio.run(read())
    assert "500" in message and SYSTEM_KEY not in message


# -- the sweep's orphan-group rule, unchanged by reconciliation -----------------------------------------------------


def sdk_status(runtime: str, custom: Any = None) -> DurableOrchestrationStatus:
    return DurableOrchestrationStatus.from_json({"runtimeStatus": runtime, "customStatus": custom})


GROUP = GroupSummary("team-a-j1-1-a1-abc", {"owner": OWNER_A, "created": str(int(OLD))})


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (None, "its owner orchestration does not exist"),
        (sdk_status("Completed"), "its owner orchestration is Completed"),
        (sdk_status("Terminated"), "its owner orchestration is Terminated"),
        (
            sdk_status("Running", {"groupName": "team-a-j1-1-a2-def"}),
            "its owner has moved on to group team-a-j1-1-a2-def",
        ),
        (sdk_status("Running", {"groupName": GROUP.name}), None),
        (sdk_status("Suspended"), None),
        (sdk_status("ContinuedAsNew", "not a dict"), None),
    ],
)
def test_orphan_reason(status: Any, reason: str | None) -> None:
    assert sweep.orphan_reason(GROUP, status, NOW, GRACE) == reason


def test_a_young_group_is_never_an_orphan() -> None:
    young = GroupSummary("g", {"owner": OWNER_A, "created": str(int(NOW - 5))})
    assert sweep.orphan_reason(young, None, NOW, GRACE) is None
