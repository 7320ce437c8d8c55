"""HelloCities5 in Azure mode (`bench.hello.on_devhost`): the judged run has one language worker process, Azure's
default, and the extra run two (a setting a user can choose in Azure, which devhost honours as the Functions host
does). Each run counts the worker processes its devhost really runs, and the orchestrations complete with the
same Durable work on two workers as on one."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.durable_api import DurableApi, close_connections
from bench.durablework import settled_counts, summary, without_own_calls
from bench.hello import WORKER_PROCESSES, hello_cities, on_devhost
from bench.machine import children
from bench.run import AZURE_MODE, BENCH, HELLO_AZURE_MODE, HELLO_AZURE_MODE_2_WORKERS
from devhost.launcher import DevhostProcess

pytestmark = pytest.mark.e2e
ORCHESTRATIONS = 8


@pytest.mark.parametrize(("env", "workers"), [(HELLO_AZURE_MODE, 1), (HELLO_AZURE_MODE_2_WORKERS, 2)])
def test_each_azure_mode_run_counts_the_workers_its_devhost_runs(
    tmp_path: Path, env: dict[str, str], workers: int
) -> None:
    result = on_devhost(tmp_path / "stock", ORCHESTRATIONS, env)
    close_connections()
    assert result["orchestrations"] == ORCHESTRATIONS
    assert result["worker_processes"] == workers == int(result["settings"][WORKER_PROCESSES])
    assert AZURE_MODE.items() <= result["settings"].items()  # still Azure mode: stock SDK, no sessions


def test_hello_cities_on_two_workers_does_the_same_work(tmp_path: Path) -> None:
    env = HELLO_AZURE_MODE_2_WORKERS
    with DevhostProcess(BENCH / "app", tmp_path / "data", env=env, log_path=tmp_path / "devhost.log") as host:
        assert host.process is not None and len(children(host.process.pid)) == 2
        api = DurableApi.of(host.url, host.system_key)
        result = hello_cities(api, ORCHESTRATIONS)  # raises unless every one completed
        counts = without_own_calls(settled_counts(api, quiet=0.3)["counts"], {})
    close_connections()
    assert result["orchestrations"] == ORCHESTRATIONS
    assert counts["episodes"] == {"hello_cities": 6 * ORCHESTRATIONS}
    assert counts["activities"] == {"say_hello": 5 * ORCHESTRATIONS}
    assert summary(counts, ORCHESTRATIONS)["per_task_total"] >= 6 + 5 + 1
