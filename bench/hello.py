"""HelloCities5 (`bench.run`, part 1): N orchestrations x 5 sequential activities, started and awaited through the
Durable HTTP API; history events per second (`EVENTS_PER_ORCHESTRATION`), on devhost and on DBOS."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.durable_api import DurableApi, wait_all
from bench.machine import children
from bench.processcpu import cpu_used, devhost_cpu
from devhost.launcher import DevhostProcess

BENCH = Path(__file__).resolve().parent
WORKER_PROCESSES = "FUNCTIONS_WORKER_PROCESS_COUNT"  # as in Azure: 1 to 10, 1 by default
# History events per HelloCities5 orchestration: started, 5 x (scheduled, completed), completed, less the
# OrchestratorStarted/Completed pairs, as DBOS's peer run counts them (`bench/dbos_hello_cities.py`).
EVENTS_PER_ORCHESTRATION = 10


def hello_cities(api: DurableApi, count: int) -> dict[str, Any]:
    started = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(lambda i: api.post(f"orchestrators/hello_cities/hc-{i}")["id"], range(count)))
    wait_all(api, ids, timeout=600)
    seconds = time.perf_counter() - started
    return {
        "orchestrations": count,
        "seconds": round(seconds, 3),
        "events_per_second": round(count * EVENTS_PER_ORCHESTRATION / seconds),
    }


def on_devhost(data: Path, count: int, env: Mapping[str, str]) -> dict[str, Any]:
    """HelloCities5 on a fresh devhost started with `env`. The result names the settings and the language worker
    processes the host was seen to run (counted, not read off the settings)."""
    with DevhostProcess(BENCH / "app", data, env=dict(env), log_path=data.with_name(f"{data.name}.log")) as host:
        assert host.process is not None  # started by the `with`
        workers = len(children(host.process.pid))
        result = hello_cities_on(host, count)
    return {**result, "settings": dict(env), "worker_processes": workers}


def hello_cities_on(host: DevhostProcess, count: int) -> dict[str, Any]:
    """`hello_cities` on a running devhost, with the CPU its host and its language workers spent per orchestration
    (in Azure mode the workers' share holds the stock SDK's replay of every episode)."""
    assert host.process is not None
    before = devhost_cpu(host.process.pid)
    result = hello_cities(DurableApi.of(host.url, host.system_key), count)
    used = cpu_used(devhost_cpu(host.process.pid), before)
    cpu = {side: round(used[side] * 1000 / count, 3) for side in ("host", "workers")}
    return {**result, "cpu_ms_per_orchestration": cpu}


def dbos_hello_cities(count: int) -> dict[str, Any]:
    try:
        output = subprocess.run(
            [sys.executable, str(BENCH / "dbos_hello_cities.py"), str(count)],
            capture_output=True, text=True, timeout=900, check=True,
        ).stdout  # fmt: skip
    except (subprocess.CalledProcessError, FileNotFoundError) as error:
        return {"error": f"DBOS run failed: {error}"}
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}
