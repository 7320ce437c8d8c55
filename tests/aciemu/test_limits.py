"""ACI's subscription limits in aciemu: the pure rules with a fake clock, then a real emulator process driven by
the unmodified azure-mgmt-containerinstance client (and by the app's own ARM gateway) over loopback HTTP."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.core.pipeline import PipelineResponse
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance.models import (
    Container,
    ContainerGroup,
    ResourceRequests,
    ResourceRequirements,
)

from acibatch.aci import AciGateway, ArmError, GroupRequest, make_client
from aciemu.client import SUBSCRIPTION, emulator_client
from aciemu.launcher import AciEmulatorProcess
from aciemu.limits import (
    PUBLISHED_SPOT_LOCATIONS,
    Admitted,
    CoreQuota,
    Limits,
    LimitsInvalid,
    Priority,
    Throttled,
    Window,
    WriteKind,
    WriteLimiter,
    merge_flags,
    parse_window,
)

RG = "rg-limits"
SUB = "sub-a"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: FakeClock, *windows: tuple[int, float], kind: WriteKind = WriteKind.CREATE) -> WriteLimiter:
    return WriteLimiter({kind: [Window(limit, seconds) for limit, seconds in windows]}, clock)


# -- rate windows ----------------------------------------------------------------------------------------------


def test_a_window_admits_its_limit_then_refuses_until_the_oldest_write_leaves_it() -> None:
    clock = FakeClock()
    rules = limiter(clock, (3, 10))
    for _ in range(3):
        assert isinstance(rules.admit(WriteKind.CREATE, SUB, "westeurope"), Admitted)
        clock.now += 1  # writes at 1000, 1001, 1002
    refused = rules.admit(WriteKind.CREATE, SUB, "westeurope")  # at 1003: room again at 1010
    assert isinstance(refused, Throttled) and refused.retry_after == 7
    clock.now = 1009.5
    again = rules.admit(WriteKind.CREATE, SUB, "westeurope")
    assert isinstance(again, Throttled) and again.retry_after == 1  # rounded up, never 0
    clock.now = 1010.0
    admitted = rules.admit(WriteKind.CREATE, SUB, "westeurope")
    assert isinstance(admitted, Admitted) and admitted.remaining == ((Window(3, 10), 0),)


def test_refused_writes_are_not_counted() -> None:
    clock = FakeClock()
    rules = limiter(clock, (1, 5))
    assert isinstance(rules.admit(WriteKind.CREATE, SUB, "westeurope"), Admitted)
    for _ in range(50):  # a client hammering through the refusal
        clock.now += 0.05
        assert isinstance(rules.admit(WriteKind.CREATE, SUB, "westeurope"), Throttled)
    clock.now = 1005.0  # had the refusals counted, the window would still be full
    assert isinstance(rules.admit(WriteKind.CREATE, SUB, "westeurope"), Admitted)


def test_with_two_windows_the_longest_wait_is_reported_and_named_in_arm_words() -> None:
    clock = FakeClock()
    rules = limiter(clock, (2, 3), (3, 60))
    for _ in range(2):
        rules.admit(WriteKind.CREATE, SUB, "westeurope")
    short = rules.admit(WriteKind.CREATE, SUB, "westeurope")
    assert isinstance(short, Throttled) and short.window == Window(2, 3) and short.retry_after == 3
    clock.now += 3
    third = rules.admit(WriteKind.CREATE, SUB, "westeurope")
    assert isinstance(third, Admitted) and third.remaining == ((Window(2, 3), 1), (Window(3, 60), 0))
    long = rules.admit(WriteKind.CREATE, SUB, "westeurope")
    assert isinstance(long, Throttled) and long.window == Window(3, 60) and long.retry_after == 57
    assert long.message == (
        "Number of requests for action 'ContainerGroupCreation' exceeded the limit of '3' for time interval "
        "'00:01:00'. Please try again after '57' seconds."
    )


def test_windows_are_per_subscription_region_and_kind() -> None:
    clock = FakeClock()
    rules = WriteLimiter({WriteKind.CREATE: [Window(1, 60)], WriteKind.DELETE: [Window(1, 60)]}, clock)
    assert isinstance(rules.admit(WriteKind.CREATE, SUB, "West Europe"), Admitted)
    assert isinstance(rules.admit(WriteKind.CREATE, SUB.upper(), "westeurope"), Throttled)  # same scope, ARM spelling
    assert isinstance(rules.admit(WriteKind.CREATE, "sub-b", "westeurope"), Admitted)
    assert isinstance(rules.admit(WriteKind.CREATE, SUB, "eastus2"), Admitted)
    assert isinstance(rules.admit(WriteKind.DELETE, SUB, "westeurope"), Admitted)
    assert WriteLimiter({}, clock).admit(WriteKind.CREATE, SUB, "westeurope") == Admitted()  # off: no headers
    usage = {(row["kind"], row["subscription"], row["location"]): row["windows"] for row in rules.usage()}
    assert usage[("create", SUB, "westeurope")] == [{"limit": 1, "seconds": 60.0, "remaining": 0}]


def test_window_names_match_arms_headers_and_messages() -> None:
    assert [Window(1, s).iso_duration() for s in (300, 3600, 3, 90, 0.5)] == ["pt5m", "pt1h", "pt3s", "pt1m30s",
                                                                              "pt0.5s"]  # fmt: skip
    assert [Window(1, s).interval_text() for s in (300, 3600, 3, 86400)] == ["00:05:00", "01:00:00", "00:00:03",
                                                                           "1.00:00:00"]  # fmt: skip


# -- the limits document ---------------------------------------------------------------------------------------


def test_the_aci_preset_is_the_published_defaults_and_explicit_fields_override_it() -> None:
    published = Limits.published()
    assert published.create_windows == published.delete_windows == (Window(100, 300), Window(300, 3600))
    assert published.spot_locations == frozenset(PUBLISHED_SPOT_LOCATIONS)
    mine = Limits.from_dict({"preset": "aci", "deletes": [], "spotCores": 0, "spotLocations": ["East US 2"]})
    assert mine.create_windows == published.create_windows and mine.delete_windows == ()
    assert mine.spot_cores == 0 and mine.spot_locations == frozenset({"eastus2"})
    assert Limits.from_dict(mine.to_dict()) == mine
    assert Limits() == Limits.from_dict({})


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ([], "must be a JSON object"),
        ({"createz": []}, "unknown limits field(s) ['createz']"),
        ({"preset": "azure"}, "preset must be 'aci'"),
        ({"creates": {"limit": 1}}, "creates must be a list"),
        ({"creates": [{"limit": 1}]}, "exactly 'limit' and 'seconds'"),
        ({"deletes": [{"limit": 0, "seconds": 3}]}, "limit must be a whole number of at least 1"),
        ({"creates": [{"limit": 1, "seconds": 0}]}, "seconds must be a number above 0"),
        ({"spotCores": -1}, "spotCores must be a number of cores, 0 or more"),
        ({"spotCores": True}, "spotCores must be a number of cores"),
        ({"spotLocations": "westeurope"}, "spotLocations must be a list"),
    ],
)
def test_a_bad_limits_document_says_what_to_fix(document: Any, says: str) -> None:
    with pytest.raises(LimitsInvalid, match=None) as refused:
        Limits.from_dict(document)
    assert says in str(refused.value)


def test_command_line_windows_and_spot_flags_override_the_document() -> None:
    assert parse_window("10/3") == Window(10, 3)
    with pytest.raises(LimitsInvalid, match="LIMIT/SECONDS"):
        parse_window("ten")
    base = Limits.from_dict({"creates": [{"limit": 5, "seconds": 60}], "spotCores": 4})
    merged = merge_flags(base, deletes=[Window(2, 3)], spot_locations=["westus"])
    assert merged.create_windows == (Window(5, 60),) and merged.delete_windows == (Window(2, 3),)
    assert merged.spot_cores == 4 and merged.spot_locations == frozenset({"westus"})


# -- core quotas and Spot regions ------------------------------------------------------------------------------


def test_by_default_spot_and_standard_cores_share_one_quota_as_before() -> None:
    rules = Limits()
    exceeded = rules.check_cores(Priority.SPOT, 2, standard_used=3, spot_used=0, default_standard=4)
    assert exceeded is not None and exceeded.quota is CoreQuota.SPOT and (exceeded.limit, exceeded.usage) == (4, 3)
    assert rules.check_cores(Priority.REGULAR, 1, standard_used=2, spot_used=1, default_standard=4) is None


def test_separate_spot_quota_counts_each_priority_against_its_own_pool() -> None:
    rules = Limits.from_dict({"spotCores": 2, "standardCores": 3})
    spot = rules.check_cores(Priority.SPOT, 1, standard_used=0, spot_used=1.5, default_standard=100)
    assert spot is not None and (spot.quota, spot.limit, spot.usage, spot.requested) == (CoreQuota.SPOT, 2, 1.5, 1)
    assert rules.check_cores(Priority.SPOT, 0.5, standard_used=3, spot_used=1.5, default_standard=100) is None
    standard = rules.check_cores(Priority.REGULAR, 1, standard_used=2.5, spot_used=2, default_standard=100)
    assert standard is not None and standard.quota is CoreQuota.STANDARD and standard.limit == 3
    none_for_spot = Limits.from_dict({"spotCores": 0})
    assert none_for_spot.check_cores(Priority.SPOT, 0.1, 0, 0, 100) is not None
    assert none_for_spot.check_cores(Priority.REGULAR, 4, 0, 0, 100) is None


def test_spot_is_offered_only_where_configured() -> None:
    assert Limits().offers_spot("anywhere")
    rules = Limits.from_dict({"spotLocations": ["eastus2", "West Europe"]})
    assert rules.offers_spot("East US 2") and rules.offers_spot("westeurope") and not rules.offers_spot("northeurope")


# -- a real emulator and the unmodified SDK --------------------------------------------------------------------


def group(priority: str | None = None, cpu: float = 0.5, location: str = "westeurope") -> ContainerGroup:
    container = Container(
        name="main", image="python:3", command=["sleep", "60"],
        resources=ResourceRequirements(requests=ResourceRequests(cpu=cpu, memory_in_gb=0.5)),
    )  # fmt: skip
    return ContainerGroup(location=location, containers=[container], os_type="Linux", restart_policy="Never",
                          priority=priority)  # fmt: skip


def create(client: ContainerInstanceManagementClient, name: str, body: ContainerGroup | None = None,
           **kwargs: Any) -> dict[str, str]:  # fmt: skip
    """PUT without polling; the headers of the answer the SDK accepted."""
    seen: dict[str, str] = {}

    def keep(response: PipelineResponse) -> None:  # type: ignore[type-arg]
        seen.update(response.http_response.headers)

    client.container_groups.begin_create_or_update(
        RG, name, body or group(), polling=False, raw_response_hook=keep, **kwargs
    )
    return seen


def admin(emulator: AciEmulatorProcess, method: str, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{emulator.url}/_emulator/limits", method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {emulator.token}", "Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        with error:  # it holds the connection open until closed
            return error.code, json.loads(error.read())


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[AciEmulatorProcess]:
    args = ["--max-cores", "50"]
    with AciEmulatorProcess(tmp_path / "state", log_path=tmp_path / "aciemu.log", args=args) as process:
        yield process


@pytest.mark.e2e
def test_a_create_over_the_window_is_refused_as_arm_does_and_succeeds_after_retry_after(tmp_path: Path) -> None:
    limits = {"creates": [{"limit": 3, "seconds": 3}]}
    with AciEmulatorProcess(tmp_path / "state", log_path=tmp_path / "aciemu.log", limits=limits) as emulator:
        client = emulator_client(emulator.url, emulator.token, retry_total=0)
        headers = [create(client, f"c{index}") for index in range(3)]
        assert [h["x-ms-ratelimit-remaining-subscription-resource-requests-pt3s"] for h in headers] == ["2", "1", "0"]
        with pytest.raises(HttpResponseError) as refused:
            create(client, "c3")
        refused_at = time.monotonic()  # after the emulator decided: Retry-After counts from no later than this
        error = refused.value
        assert error.status_code == 429 and error.error is not None and error.error.code == "ResourceRequestsThrottled"
        retry_after = int(error.response.headers["Retry-After"])
        assert 1 <= retry_after <= 3
        assert error.error.message == (
            "Number of requests for action 'ContainerGroupCreation' exceeded the limit of '3' for time interval "
            f"'00:00:03'. Please try again after '{retry_after}' seconds."
        )
        for _ in range(5):  # refused again and again: none of these counts
            with pytest.raises(HttpResponseError):
                create(client, "c3")
        time.sleep(max(0.0, refused_at + retry_after - time.monotonic()) + 0.05)
        create(client, "c3")  # the window had room when Retry-After said so
        assert {g.name for g in client.container_groups.list_by_resource_group(RG)} == {"c0", "c1", "c2", "c3"}

        # The SDK's own retry policy honours Retry-After: with retries left, a throttled create just takes longer.
        retrying = emulator_client(emulator.url, emulator.token, retry_total=3)
        time.sleep(3.05)
        for index in range(3):
            create(retrying, f"r{index}")
        waited = time.monotonic()
        create(retrying, "r3")
        assert time.monotonic() - waited >= 2.5  # slept the whole Retry-After (3 s) before the PUT that succeeded


@pytest.mark.e2e
def test_a_delete_over_the_window_is_refused_and_succeeds_after_retry_after(tmp_path: Path) -> None:
    limits = {"deletes": [{"limit": 2, "seconds": 2}]}
    with AciEmulatorProcess(tmp_path / "state", log_path=tmp_path / "aciemu.log", limits=limits) as emulator:
        client = emulator_client(emulator.url, emulator.token, retry_total=0)
        for index in range(3):
            create(client, f"d{index}")  # creates are not limited here
        client.container_groups.begin_delete(RG, "d0").result()
        client.container_groups.begin_delete(RG, "missing").result()  # a delete ARM lets through counts, found or not
        with pytest.raises(HttpResponseError) as refused:
            client.container_groups.begin_delete(RG, "d1")
        refused_at = time.monotonic()
        assert refused.value.status_code == 429 and refused.value.error.code == "ResourceRequestsThrottled"
        assert "'ContainerGroupDeletion' exceeded the limit of '2' for time interval '00:00:02'" in str(refused.value)
        retry_after = int(refused.value.response.headers["Retry-After"])
        assert 1 <= retry_after <= 2
        assert "d1" in {g.name for g in client.container_groups.list_by_resource_group(RG)}  # nothing was deleted
        time.sleep(max(0.0, refused_at + retry_after - time.monotonic()) + 0.05)
        client.container_groups.begin_delete(RG, "d1").result()
        assert {g.name for g in client.container_groups.list_by_resource_group(RG)} == {"d2"}


@pytest.mark.e2e
def test_spot_quota_zero_refuses_spot_and_leaves_regular_alone(emulator: AciEmulatorProcess) -> None:
    client = emulator_client(emulator.url, emulator.token, retry_total=0)
    assert admin(emulator, "PUT", {"spotCores": 0})[0] == 200
    with pytest.raises(HttpResponseError) as refused:
        create(client, "spot", group("Spot"))
    assert refused.value.status_code == 400 and refused.value.error.code == "ContainerGroupQuotaReached"
    assert refused.value.error.message == (
        "Resource type 'Microsoft.ContainerInstance/containerGroups' container group quota 'StandardSpotCores' "
        "exceeded in region 'westeurope'. Limit: '0', Usage: '0' Requested: '0.5'."
    )
    create(client, "regular", group("Regular"))
    create(client, "default")  # no priority: Regular
    usages = {u.name.value: (u.current_value, u.limit) for u in client.location.list_usage("westeurope")}
    assert usages["StandardCores"] == (1, 50) and usages["StandardSpotCores"] == (0, 0)

    # With a Spot quota of its own, Spot cores no longer come out of the Standard pool, and the other way round.
    assert admin(emulator, "PUT", {"spotCores": 1, "standardCores": 1})[0] == 200
    create(client, "spot-1", group("Spot", cpu=1))
    with pytest.raises(HttpResponseError) as standard:
        create(client, "regular-2", group("Regular"))
    assert "quota 'StandardCores' exceeded in region 'westeurope'. Limit: '1', Usage: '1'" in standard.value.message


@pytest.mark.e2e
def test_core_quotas_are_per_subscription_and_region(emulator: AciEmulatorProcess) -> None:
    client = emulator_client(emulator.url, emulator.token, retry_total=0)
    other = emulator_client(emulator.url, emulator.token, subscription_id="00000000-0000-0000-0000-000000000002",
                            retry_total=0)  # fmt: skip
    assert admin(emulator, "PUT", {"spotCores": 1})[0] == 200
    create(client, "spot-we", group("Spot", cpu=1))
    with pytest.raises(HttpResponseError) as full:
        create(client, "spot-we-2", group("Spot", cpu=1))
    assert "'StandardSpotCores' exceeded in region 'westeurope'. Limit: '1', Usage: '1'" in full.value.message
    create(client, "spot-east", group("Spot", cpu=1, location="East US 2"))  # another region: its own quota
    create(other, "spot-we", group("Spot", cpu=1))  # another subscription: its own quota
    east = {u.name.value: (u.current_value, u.limit) for u in client.location.list_usage("eastus2")}
    assert east["StandardSpotCores"] == (1, 1) and east["ContainerGroups"][0] == 1


@pytest.mark.e2e
def test_spot_in_a_region_without_spot_is_refused_and_regular_is_not(emulator: AciEmulatorProcess) -> None:
    client = emulator_client(emulator.url, emulator.token, retry_total=0)
    assert admin(emulator, "PUT", {"spotLocations": ["eastus2", "westus"]})[0] == 200
    with pytest.raises(ResourceExistsError) as refused:  # the SDK maps every 409 to ResourceExistsError
        create(client, "spot", group("Spot", cpu=1))
    assert refused.value.status_code == 409 and refused.value.error.code == "ServiceUnavailable"
    assert refused.value.error.message == (
        "The requested resource is not available in the location 'westeurope' at this moment. Please retry with a "
        "different resource request or in another location. Resource requested: '1' CPU '0.5' GB memory 'Linux' OS"
    )
    create(client, "regular", group("Regular", cpu=1))
    create(client, "spot-east", group("Spot", location="East US 2"))


@pytest.mark.e2e
def test_the_admin_endpoint_shows_changes_and_clears_limits(emulator: AciEmulatorProcess) -> None:
    client = emulator_client(emulator.url, emulator.token, retry_total=0)
    status, body = admin(emulator, "PUT", {"creates": [{"limit": 1, "seconds": 60}], "spotCores": "many"})
    assert status == 400 and body["error"]["code"] == "InvalidLimits"
    assert "spotCores must be a number of cores" in body["error"]["message"]
    status, body = admin(emulator, "GET")
    assert status == 200 and body["limits"]["creates"] == [] and body["usage"] == []  # the bad document changed nothing
    assert admin(emulator, "PUT", {"preset": "aci", "creates": [{"limit": 1, "seconds": 60}]})[0] == 200
    create(client, "one")
    with pytest.raises(HttpResponseError) as refused:
        create(client, "two")
    assert refused.value.status_code == 429 and 59 <= int(refused.value.response.headers["Retry-After"]) <= 60
    status, body = admin(emulator, "GET")
    assert body["limits"]["deletes"] == [{"limit": 100, "seconds": 300.0}, {"limit": 300, "seconds": 3600.0}]
    assert {"kind": "create", "subscription": SUBSCRIPTION, "location": "westeurope",
            "windows": [{"limit": 1, "seconds": 60.0, "remaining": 0}]} in body["usage"]  # fmt: skip
    assert admin(emulator, "DELETE") == (204, None)
    create(client, "two")
    request = urllib.request.Request(f"{emulator.url}/_emulator/limits", method="GET")
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(request, timeout=10)
    anonymous.value.close()
    assert anonymous.value.code == 401


@pytest.mark.e2e
def test_command_line_flags_turn_the_limits_on(tmp_path: Path) -> None:
    args = ["--create-window", "1/30", "--spot-cores", "0", "--spot-locations", "westeurope"]
    with AciEmulatorProcess(tmp_path / "state", log_path=tmp_path / "aciemu.log", args=args) as emulator:
        _, body = admin(emulator, "GET")
        assert body["limits"] == {"creates": [{"limit": 1, "seconds": 30.0}], "deletes": [], "standardCores": None,
                                  "spotCores": 0.0, "spotLocations": ["westeurope"]}  # fmt: skip
    bad = AciEmulatorProcess(tmp_path / "bad", log_path=tmp_path / "bad.log", args=["--create-window", "x"])
    with pytest.raises(Exception, match="a window is LIMIT/SECONDS"):
        bad.start()
    with pytest.raises(LimitsInvalid, match="unknown limits field"):
        AciEmulatorProcess(tmp_path / "bad", limits={"spot": 0})


@pytest.mark.e2e
def test_what_the_apps_gateway_raises_when_throttled_creates_outlast_the_sdks_retries(tmp_path: Path) -> None:
    """Many activities creating at once (as 16 concurrent activities do): each PUT is retried by the SDK after
    Retry-After, but the freed slot goes to whichever retry comes first, so some run out of retries."""
    limits = {"creates": [{"limit": 1, "seconds": 1}]}
    with AciEmulatorProcess(tmp_path / "state", log_path=tmp_path / "aciemu.log", limits=limits) as emulator:
        with closing(make_client(SUBSCRIPTION, emulator.url, token=emulator.token)) as app_client:
            outcomes = run_creates_at_once(AciGateway(app_client, RG), 8)
        failures = [error for error in outcomes.values() if error is not None]
        assert len(outcomes) == 8 and failures and len(failures) < 8
        for failure in failures:
            assert isinstance(failure, ArmError)
            assert (failure.status, failure.code) == (429, "ResourceRequestsThrottled")
            # Retry-After survives the SDK's retries: on the last 429's response, which the gateway's ArmError
            # was made from (and copied into `retry_after`).
            cause = failure.__cause__
            assert isinstance(cause, HttpResponseError) and cause.response is not None
            assert cause.response.headers["Retry-After"] == "1"  # the 1-second window, in whole seconds
            assert failure.retry_after == 1.0

        # Per call, `retry_status=0` turns the SDK's status retries off (429 included) but not its connection retries:
        # the 429 comes back at once instead of after up to three Retry-After sleeps.
        with closing(make_client(SUBSCRIPTION, emulator.url, token=emulator.token)) as client:
            time.sleep(1.05)
            create(client, "h0")
            started = time.monotonic()
            with pytest.raises(HttpResponseError) as at_once:
                create(client, "h1", retry_status=0)
        assert at_once.value.status_code == 429 and time.monotonic() - started < 0.5


def run_creates_at_once(gateway: AciGateway, count: int) -> dict[str, ArmError | None]:
    """`count` creates through the app's gateway from as many threads at once; each one's ArmError or None."""
    outcomes: dict[str, ArmError | None] = {}

    def attempt(name: str) -> None:
        request = GroupRequest(
            name=name, tenant="t", job_id="j", task_id=name, attempt=1, owner="o", image="python:3",
            command=("sleep", "60"), env={}, secure_env={}, cpu=0.5, memory_gb=0.5, priority="Regular",
            created_at=0, location="westeurope",
        )  # fmt: skip
        try:
            gateway.create(request, None)
            outcomes[name] = None
        except ArmError as error:
            outcomes[name] = error

    threads = [threading.Thread(target=attempt, args=(f"g{index}",)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcomes
