"""The bench's reading of devhost's work counts against a real devhost running the bench's app: the counts match
what HelloCities5 does, and the bench's own client calls are exactly the ones it subtracts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.durable_api import DurableApi, close_connections
from bench.durablework import difference, settled_counts, summary, without_own_calls
from bench.hello import hello_cities
from bench.run import AZURE_MODE, BENCH
from devhost.launcher import DevhostProcess

pytestmark = pytest.mark.e2e
ORCHESTRATIONS = 3


@pytest.fixture(params=["shipped", "azure_mode"])
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DurableApi]:
    env = AZURE_MODE if request.param == "azure_mode" else {}
    with DevhostProcess(BENCH / "app", tmp_path / "data", env=env, log_path=tmp_path / "devhost.log") as host:
        yield DurableApi.of(host.url, host.system_key)
    close_connections()


def test_hello_cities_counts_and_the_bench_calls_it_subtracts(api: DurableApi) -> None:
    before = settled_counts(api, quiet=0.3)
    assert before["settled"]
    own_before = Counter(api.calls)
    hello_cities(api, ORCHESTRATIONS)
    after = settled_counts(api, quiet=0.3)
    own = Counter(api.calls)
    own.subtract(own_before)
    moved = difference(after["counts"], before["counts"])
    # The bench started the orchestrations and polled for their end: devhost counted exactly those calls.
    assert moved["clientCalls"] == {name: count for name, count in own.items() if count}
    assert own["start"] == ORCHESTRATIONS and own["instances_query"] >= 2
    counts = without_own_calls(moved, {name: count for name, count in own.items() if name != "start"})
    assert counts["clientCalls"] == {"start": ORCHESTRATIONS}
    # HelloCities5: five activities in sequence, so six episodes each, in either mode.
    assert counts["episodes"] == {"hello_cities": 6 * ORCHESTRATIONS}
    assert counts["activities"] == {"say_hello": 5 * ORCHESTRATIONS}
    assert counts["messages"] == {
        "ExecutionStarted": ORCHESTRATIONS, "TaskScheduled": 5 * ORCHESTRATIONS, "TaskCompleted": 5 * ORCHESTRATIONS,
    }  # fmt: skip
    figures = summary(counts, ORCHESTRATIONS)
    assert figures["per_task_total"] == 6 + 5 + 1
    # 11 messages x 3, 6 work items x 3, the start's read and insert
    assert figures["storage_transactions_per_task"]["total"] == 11 * 3 + 6 * 3 + 2
