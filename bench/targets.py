"""Issue 29's targets against one bench run's results: each target, what was measured, and whether it holds.

A target that compares with another run (Azure-mode CPU per task against the code before) holds None: the run
records the value and whoever compares the runs judges it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

WORK_PER_TASK = 8.0
E2E_OVER_FLOOR = {"bash": 1.05, "curl": 1.10}
DISPATCH_MEDIAN_MS, DISPATCH_P99_MS = 25.0, 100.0
SCALE_OVER_E2E, SCALE_RSS_MB, SCALE_API_P99_MS = 10.5, 500.0, 300.0
AZURE_MODE_EVENTS, AZURE_MODE_OVER_DBOS, SESSIONS_EVENTS = 3500.0, 6.0, 12000.0


def _dig(results: dict[str, Any], *path: str) -> Any:
    value: Any = results
    for step in path:
        if not isinstance(value, dict) or step not in value:
            return None
        value = value[step]
    return value


def _target(
    name: str, limit: str, measured: Any, test: Callable[[float], bool] | None, bound: str | None = None
) -> dict[str, Any]:
    """`bound`: what the run measured that no code of ours can pass, when there is such a limit."""
    # A figure the run lacks (skipped, failed) does not hold.
    holds = None if test is None else isinstance(measured, int | float) and bool(test(measured))
    return {"target": name, "limit": limit, "measured": measured, "holds": holds, **({"bound": bound} if bound else {})}


def stock_sdk_bounds(hc: dict[str, Any]) -> tuple[str | None, str | None]:
    """The most the stock SDK's replay alone lets one worker process do in this run (`stock_sdk_ceiling_one_worker`,
    events/s), and that over DBOS's rate: the Azure-mode targets' upper bounds on this machine."""
    ceiling, dbos = hc.get("stock_sdk_ceiling_one_worker"), _dig(hc, "dbos", "events_per_second")
    if not isinstance(ceiling, int | float):
        return None, None
    over = f"{ceiling / dbos:.2f}x" if isinstance(dbos, int | float) and dbos else None
    note = "the stock SDK's replay alone allows one worker at most"
    return f"{note} {ceiling:,.0f} events/s", over and f"{note} {over} DBOS"


def on_one_worker(hc: dict[str, Any], figure: Any) -> Any:
    """An Azure-mode HelloCities5 figure, judged only when its run had one language worker process, Azure's default
    (counted by the bench; in results from before it counted, read off the run's settings): else None."""
    run = hc.get("devhost_stock_sdk") or {}
    workers = run.get("worker_processes", (run.get("settings") or {}).get("FUNCTIONS_WORKER_PROCESS_COUNT", 1))
    return figure if int(workers) == 1 else None


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target; one whose figure the run lacks (skipped, failed) is listed with `measured` None."""
    e2e = results.get("end_to_end", {})
    others = {run["reporter"]: run for run in results.get("end_to_end_other_reporters", [])}
    hc = results.get("hello_cities5", {})
    scale = results.get("scale") or {}
    events_bound, dbos_bound = stock_sdk_bounds(hc)
    return [
        _target("Durable work per task (shipped)", f"<= {WORK_PER_TASK:g}",
                _dig(e2e, "work", "per_task_total"), lambda v: v <= WORK_PER_TASK),
        _target("Durable work per task (Azure mode)", f"<= {WORK_PER_TASK:g}",
                _dig(results, "end_to_end_azure_mode", "work", "per_task_total"), lambda v: v <= WORK_PER_TASK),
        _target("devhost CPU per task, Azure mode (ms)", "half the code before's (compare runs)",
                _dig(results, "end_to_end_azure_mode", "devhost_cpu_ms_per_task", "total"), None),
        _target("end-to-end / floor, bash callbacks (median round)", f"<= {E2E_OVER_FLOOR['bash']}",
                e2e.get("over_floor"), lambda v: v <= E2E_OVER_FLOOR["bash"]),
        _target("end-to-end / floor, curl callbacks", f"<= {E2E_OVER_FLOOR['curl']}",
                _dig(others, "curl", "over_floor"), lambda v: v <= E2E_OVER_FLOOR["curl"]),
        _target("dispatch latency median (ms)", f"< {DISPATCH_MEDIAN_MS:g}",
                e2e.get("dispatch_ms_median"), lambda v: v < DISPATCH_MEDIAN_MS),
        _target("dispatch latency p99 (ms)", f"< {DISPATCH_P99_MS:g}",
                e2e.get("dispatch_ms_p99"), lambda v: v < DISPATCH_P99_MS),
        _target("scale job / end-to-end job (time)", f"<= {SCALE_OVER_E2E}",
                scale.get("over_end_to_end"), lambda v: v <= SCALE_OVER_E2E),
        _target("scale job: devhost peak RSS incl. workers (MB)", f"< {SCALE_RSS_MB:g}",
                _dig(scale, "peak_rss_mb", "devhost"), lambda v: v < SCALE_RSS_MB),
        _target("scale job: GET /api/jobs/{id} p99 (ms)", f"< {SCALE_API_P99_MS:g}",
                _dig(scale, "api_ms", "job", "p99"), lambda v: v < SCALE_API_P99_MS),
        _target("scale job: GET /api/jobs p99 (ms)", f"< {SCALE_API_P99_MS:g}",
                _dig(scale, "api_ms", "jobs", "p99"), lambda v: v < SCALE_API_P99_MS),
        _target("HelloCities5 Azure mode, 1 worker (events/s)", f">= {AZURE_MODE_EVENTS:,.0f}",
                on_one_worker(hc, _dig(hc, "devhost_stock_sdk", "events_per_second")),
                lambda v: v >= AZURE_MODE_EVENTS, events_bound),
        _target("HelloCities5 Azure mode, 1 worker / DBOS", f">= {AZURE_MODE_OVER_DBOS:g}x",
                on_one_worker(hc, hc.get("devhost_stock_sdk_over_dbos")), lambda v: v >= AZURE_MODE_OVER_DBOS,
                dbos_bound),
        _target("HelloCities5 with sessions (events/s)", f">= {SESSIONS_EVENTS:,.0f}",
                _dig(hc, "devhost", "events_per_second"), lambda v: v >= SESSIONS_EVENTS),
    ]  # fmt: skip


def target_rows(listed: list[dict[str, Any]]) -> list[tuple[str, str]]:
    verdict = {True: "holds", False: "MISSED", None: "recorded (compare runs)"}
    return [
        (
            f"  {row['target']}",
            f"{row['measured']} (target {row['limit']}): {verdict[row['holds']]}"
            + (f"; {row['bound']}" if row.get("bound") else ""),
        )
        for row in listed
    ]
