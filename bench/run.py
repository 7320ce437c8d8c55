"""`make bench`: devhost and the whole stack measured side by side with peers on this machine.

1. HelloCities5 (`bench/hello.py`): N orchestrations x 5 sequential activities, started and awaited through the
   Durable HTTP API; history events per second (10 per orchestration), on devhost as shipped and with the Durable
   SDK left stock and replaying every episode (DEVHOST_SDK_FAST_PATHS=0, DEVHOST_ORCHESTRATION_SESSIONS=0) on one
   language worker process, Azure's default (the judged figure), and on two (an extra figure), and the same
   workload on DBOS (SQLite) in the same run.
2. Fan-out/fan-in: one orchestration with 1k and with 4k parallel activities (median of 5 runs each); the 4k/1k
   time ratio.
3. End-to-end batch: a job of `sleep 1` + callback tasks with capacity for 50 groups, against the floor (the
   same `sleep 1` run directly 50 at a time), three rounds with the lightest callback client here (bash; the
   median round is reported, with every round's ratio) and one with curl; dispatch latency (a lease freed in the
   capacity entity -> the container of the task it went to running, as that container reports it); the
   machine's CPU while the job ran (all of /proc/stat: every process and the kernel) and its share of all cores,
   which bounds the job's time.
4. Peak RSS of devhost (with its language workers) and aciemu during 3 (the round that peaked highest).
5. The Durable SDK's own cost to run one HelloCities5 orchestration (all six episodes, in this process: no
   storage, no HTTP): stock and with devhost's fast paths replaying every episode (the floor under any host that
   replays with the real SDK), and in a devhost worker session (`devhost.sessions`).
6. The file path's per-task overhead (bench/files.py): the same task without storage, with the agent, and
   staging files in and out, alternated on two stacks (skipped without Azurite).
7. In 3, the Durable work per task (devhost's counts before the submit and once they settle after the job, less
   the bench's own calls, by kind and name: `bench/durablework.py`), the Azure Storage transactions it would cost
   (a model: `bench/workmodel.py`) and devhost's CPU per task (host + language workers, from /proc); the job
   also runs in Azure mode (`AZURE_MODE`), its rounds alternating with the shipped ones, and both are reported.
8. The scale job (`bench/scale.py`: 10,000 tasks, 50 groups; `--no-scale` skips it): its time over 3's median
   round, devhost's peak RSS and the API's read latency during it.
9. Issue 29's targets (`bench/targets.py`): each target, the measured figure and whether it holds.

Prints a table and writes JSON to bench/results/. `--smoke` runs tiny sizes (CI checks the harness works).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from acibatch.naming import job_instance_id, task_instance_id
from bench.appsettings import emulator_args, job_settings
from bench.durable_api import DurableApi, get_json, wait_for_instance
from bench.durablework import difference, modes_compared, settled_counts, summary, without_own_calls, work_rows
from bench.floor import EMULATED_PROVISIONING_SECONDS, floor_seconds, floor_with_provisioning
from bench.hello import EVENTS_PER_ORCHESTRATION, WORKER_PROCESSES, dbos_hello_cities, hello_cities_on, on_devhost
from bench.machine import MachineCpu, find_pids, machine_cpu_row, peak_rss_of_stack
from bench.processcpu import cpu_used, devhost_cpu
from bench.targets import target_rows, targets
from devhost import fastpaths
from devhost.app import load_app
from devhost.durable import (
    EVENT_SENT,
    EXECUTION_COMPLETED,
    ORCHESTRATOR_COMPLETED,
    ORCHESTRATOR_STARTED,
    SUB_CREATED,
    TASK_SCHEDULED,
    TIMER_CREATED,
)
from devhost.fastpaths import SETTING as SDK_FAST_PATHS
from devhost.launcher import DevhostProcess
from devhost.sessions import SETTING as SESSIONS
from devhost.sessions import Sessions
from localdev.client import BatchClient
from localdev.localstack import EXAMPLE_WORKER_IMAGE, local_stack

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
# The end-to-end job's time moves by a tenth between runs on this shared machine: the bench runs it this many
# times with the headline callback client and reports the median round (and every round's ratio).
E2E_ROUNDS = 3
# devhost run as Azure runs a Python app: the Durable SDK untouched (no fast paths) and no orchestration sessions
# (every episode replays the whole history). The end-to-end job runs this many rounds in it as well.
AZURE_MODE = {SDK_FAST_PATHS: "0", SESSIONS: "0"}
AZURE_MODE_ROUNDS = 2
# HelloCities5 in Azure mode: the figure the targets judge runs on Azure's default, one language worker process. The
# same run on two (FUNCTIONS_WORKER_PROCESS_COUNT, a setting a user can choose in Azure) is an extra figure, labelled
# and never judged: replaying every episode with the stock SDK keeps one worker's core busy while the host's waits.
HELLO_AZURE_MODE = {**AZURE_MODE, WORKER_PROCESSES: "1"}
HELLO_AZURE_MODE_2_WORKERS = {**AZURE_MODE, WORKER_PROCESSES: "2"}
# The scale job (issue 29): tasks and concurrent groups, full and smoke.
SCALE_SIZES = {False: (10_000, 50), True: (60, 10)}
# What an episode answered with (recorded after it ran), so not part of what it was handed.
EPISODE_OUTPUTS = {TASK_SCHEDULED, SUB_CREATED, TIMER_CREATED, EVENT_SENT, ORCHESTRATOR_COMPLETED, EXECUTION_COMPLETED}


def fan_out(api: DurableApi, width: int, runs: int = 5) -> float:
    """The median of `runs` runs, each awaited by polling its status every 10 ms: a run is short enough that
    coarser polling or a single run would be mostly noise."""
    times = []
    for run in range(runs):
        started = time.perf_counter()
        status_url = api.post(f"orchestrators/fan_out/fan-{width}-{run}", width)["statusQueryGetUri"]
        deadline = started + 900
        while (status := get_json(status_url, api.key))["runtimeStatus"] in {"Pending", "Running"}:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"fan-out {width} unfinished")
            time.sleep(0.01)
        if status["runtimeStatus"] != "Completed":
            raise RuntimeError(f"fan-out {width}: {status['runtimeStatus']}: {status['output']}")
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def episode_contexts(api: DurableApi, instance: str) -> list[str]:
    """The trigger JSON of each episode a finished orchestration had, rebuilt from its history."""
    status = api.get(f"instances/{instance}?showHistory=true&showHistoryOutput=true")
    history: list[dict[str, Any]] = status["historyEvents"]
    starts = [i for i, item in enumerate(history) if item["EventType"] == ORCHESTRATOR_STARTED]
    fields = {"input": status["input"], "instanceId": instance, "isReplaying": False, "parentInstanceId": None,
              "upperSchemaVersion": 1, "upperSchemaVersionNew": 2}  # fmt: skip
    contexts = []
    for number, start in enumerate(starts):
        end = starts[number + 1] if number + 1 < len(starts) else len(history)
        # What the episode was handed: the past, played, then its new events (not what it answered with).
        new = [item for item in history[start:end] if item["EventType"] not in EPISODE_OUTPUTS]
        played = [{**item, "IsPlayed": True} for item in history[:start]]
        contexts.append(json.dumps({"history": played + new, **fields}))
    return contexts


def session_tails(contexts: list[str]) -> list[tuple[int, str]]:
    """Each episode as a worker session is sent it: how many events it has seen, and the context after them."""
    tails, past = [], 0
    for context in contexts:
        fields = json.loads(context)
        tails.append((past, json.dumps({**fields, "history": fields["history"][past:]})))
        past = len(fields["history"])
    return tails


def sdk_replay_ms(api: DurableApi, instance: str, rounds: int = 9, repeats: int = 100) -> dict[str, float]:
    """Milliseconds of this process's CPU to run all of `instance`'s episodes with the SDK: stock and with
    devhost's fast paths (each episode replays the whole history), and in a session (`devhost.sessions`: each
    episode goes on from the last with only its new events), alternating (median of `rounds`)."""
    contexts = episode_contexts(api, instance)
    tails = session_tails(contexts)
    logging.disable(logging.WARNING)  # the Functions library warns about the app's auth level on indexing
    try:
        handle = load_app(BENCH / "app").callables["hello_cities"]
    finally:
        logging.disable(logging.NOTSET)
    times: dict[str, list[float]] = {"stock": [], "fast_paths": [], "session": []}
    try:
        for _ in range(rounds):
            for name, values in times.items():
                fastpaths.install({SDK_FAST_PATHS: "0" if name == "stock" else "1"})
                started = time.process_time()
                for _ in range(repeats):
                    if name == "session":
                        sessions = Sessions()
                        for past, context in tails:
                            sessions.run(handle, instance, "bench", past, context)
                    else:
                        for context in contexts:
                            handle(context)
                values.append((time.process_time() - started) / repeats * 1000)
    finally:
        fastpaths.install({SDK_FAST_PATHS: "0"})
    return {name: round(statistics.median(values), 3) for name, values in times.items()}


def cpu_row(run: dict[str, Any]) -> str:
    cpu = run.get("cpu_ms_per_orchestration") or {}
    return f"{cpu.get('host')} / {cpu.get('workers')}"


def parse(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


# The bench's callback over bash's /dev/tcp: the same POST as curl's (bearer token, JSON body, a 2xx answer
# required, up to 5 tries a second apart), without curl's start-up. Plain http only, which is what the local
# stack serves; `$EPOCHREALTIME` gives the start time without forking `date`.
BASH_REPORTER = r"""started=$EPOCHREALTIME; sleep 1 || exit 1
body="{\"status\":\"succeeded\",\"exitCode\":0,\"result\":{\"containerStartedAt\":$started}}"
address=${BATCH_CALLBACK_URL#http://}; host_port=${address%%/*}
report() {
  exec 3<>"/dev/tcp/${host_port%:*}/${host_port##*:}" || return 1
  { printf 'POST /%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n' "${address#*/}" "$host_port"
    printf 'Authorization: Bearer %s\r\nContent-Type: application/json\r\n' "$BATCH_CALLBACK_TOKEN"
    printf 'Content-Length: %s\r\n\r\n%s' "${#body}" "$body"; } >&3
  read -r _ code _ <&3; exec 3<&-
  [[ $code == 2* ]]
}
for _ in 1 2 3 4 5; do report && exit 0; sleep 1; done
echo "callback failed: ${code:-no answer}" >&2; exit 1"""


def reporters() -> list[str]:
    """The e2e task's callback clients present here: the lightest first (it is the headline run), then curl.

    The containers' own CPU shares this machine's two cores with the stack (in Azure it runs on ACI's), so the
    headline run uses the lightest client, to measure acibatch rather than the client's start-up (what each
    client costs a container run is in bench/README.md). curl, which the README shows users, is measured too.
    """
    present = [name for name in ("bash", "curl") if shutil.which(name)]
    return present or ["python"]


def sleep_then_call_back(reporter: str) -> list[str]:
    """The task: `sleep 1`, then report success with the moment the container started (for dispatch latency)."""
    if reporter == "bash":
        return ["bash", "-c", BASH_REPORTER]
    if reporter == "curl":
        body = '{\\"status\\":\\"succeeded\\",\\"exitCode\\":0,\\"result\\":{\\"containerStartedAt\\":$started}}'
        report = (
            'curl -fsS -o /dev/null --retry 5 --retry-connrefused -X POST -H "Content-Type: application/json" '
            f'-H "Authorization: Bearer $BATCH_CALLBACK_TOKEN" --data "{body}" "$BATCH_CALLBACK_URL"'
        )
        return ["sh", "-c", f"started=$(date +%s.%N); sleep 1 && {report}"]
    code = (
        "import time, acibatch_report as r; started = time.time(); time.sleep(1); "
        "r.succeeded({'containerStartedAt': started})"
    )
    return ["python3", "-c", code]  # the container's python3: the sandbox does not show this venv


def end_to_end(
    tasks: int, slots: int, data: Path, reporter: str, settings: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """One job of `tasks` tasks on a fresh local stack (`settings` added to devhost's, e.g. `AZURE_MODE`)."""
    base = job_settings(slots)
    with local_stack(data, settings={**base, **(settings or {})}, emulator_args=emulator_args(slots)) as stack:
        admin = BatchClient(stack.api_url, stack.admin_key)
        key = admin.put_tenant("bench", {"maxGroups": slots, "maxCores": slots, "maxMemoryGb": slots})["apiKey"]
        client = BatchClient(stack.api_url, key)
        spec = {"jobId": "e2e", "image": EXAMPLE_WORKER_IMAGE, "command": sleep_then_call_back(reporter), "cpu": 1,
                "memoryGb": 1, "env": {}, "taskCount": tasks,
                "taskTimeoutSeconds": 600}  # fmt: skip
        durable = DurableApi.of(stack.host_url, stack.durable_key)
        stack_pids = find_pids(stack.host_url, stack.aci_url)
        # The Durable work and devhost's CPU from before the submit until the job's last signals are applied
        # (the tenant's set-up settled first), less the bench's own calls (`bench/durablework.py`).
        work_before = settled_counts(durable)["counts"]
        own_before, devhost_before = Counter(durable.calls), devhost_cpu(stack_pids["devhost"])
        cpu_before = MachineCpu.now()
        started = time.perf_counter()
        client.submit(spec)
        wait_for_instance(durable, job_instance_id("bench", "e2e"))
        seconds = time.perf_counter() - started
        cpu_after = MachineCpu.now()
        settled = settled_counts(durable)
        devhost_used = cpu_used(devhost_cpu(stack_pids["devhost"]), devhost_before)
        own = Counter(durable.calls)
        own.subtract(own_before)
        work = summary(without_own_calls(difference(settled["counts"], work_before), own), tasks)
        job = client.job("e2e", limit=0)
        records = client.all_tasks("e2e")
        pids = peak_rss_of_stack(stack_pids)
        container_started = {
            task_instance_id("bench", "e2e", r["id"]): float(r["result"]["containerStartedAt"])
            for r in records
            if isinstance(r.get("result"), dict) and "containerStartedAt" in r["result"]
        }
        latencies = dispatch_latencies(durable, list(container_started), container_started)
    ordered = sorted(latencies) or [0.0]
    median_ms = statistics.median(ordered) * 1000
    p99_ms = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    provisioning_ms = EMULATED_PROVISIONING_SECONDS * 1000
    return {
        "tasks": tasks, "slots": slots, "reporter": reporter, "state": job["state"], "seconds": round(seconds, 2),
        "settings": dict(settings or {}),
        "dispatches_measured": len(latencies),
        "dispatch_ms_median": round(median_ms, 1),
        "dispatch_ms_p99": round(p99_ms, 1),
        # The same figures less aciemu's emulated provisioning, which every hand-over waits (Azure's takes its place).
        "provisioning_seconds": EMULATED_PROVISIONING_SECONDS,
        "dispatch_ms_median_less_provisioning": round(median_ms - provisioning_ms, 1),
        "dispatch_ms_p99_less_provisioning": round(p99_ms - provisioning_ms, 1),
        "peak_rss_mb": pids,
        # All of the machine's CPU while the job ran (this bench's own polling included, and what no process is
        # billed for: what runs inside the sandboxes, and their namespaces' kernel time): with two cores it
        # bounds how short the job can be.
        "machine_cpu": cpu_after.since(cpu_before) if cpu_before and cpu_after else None,
        # devhost's host and workers only, submit to settled: what the stack's own code costs a task.
        "devhost_cpu_ms_per_task": {part: round(value * 1000 / tasks, 2) for part, value in devhost_used.items()},
        "work": {**work, "settled": settled["settled"], "settle_seconds": settled["waited"],
                 "bench_calls_subtracted": dict(own)},
    }  # fmt: skip


def dispatch_latencies(api: DurableApi, instances: list[str], container_started: dict[str, float]) -> list[float]:
    """Seconds from a lease freed to the container of the task it went to running, for every hand-over.

    A finished task's last generation carries its hand-overs in its input (`acibatch.checkpoint.TaskStart`): when
    the capacity entity's answer freed its lease (the episode that read it) and the leases that answer granted;
    each lease names the task that got it, whose container reported when it started. Leases granted straight
    away (nothing was freed) don't count.
    """

    def handovers(instance: str) -> list[dict[str, Any]]:
        given = api.get(f"instances/{instance}?showInput=true").get("input")
        given = json.loads(given) if isinstance(given, str) else given
        return list(given.get("handovers", [])) if isinstance(given, dict) else []

    latencies = []
    with ThreadPoolExecutor(16) as pool:
        for handed in pool.map(handovers, instances):
            for handover in handed:
                freed_at = parse(handover["freedAt"])
                for lease in handover["to"]:
                    owner = str(lease).rpartition("#")[0]
                    if owner in container_started:
                        latencies.append(max(0.0, container_started[owner] - freed_at))
    return latencies


def other_reporter_row(run: dict[str, Any]) -> tuple[str, str]:
    return (
        f"  with {run['reporter']} callbacks: s, / floor, CPU",
        f"{run['seconds']}, {run['over_floor']}x, {machine_cpu_row(run.get('machine_cpu'))}",
    )


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median time (the upper middle of an even count): its figures are reported whole."""
    return sorted(rounds, key=lambda run: run["seconds"])[len(rounds) // 2]


def highest_rss(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The peak RSS figures of the round whose devhost peaked highest (RSS is a limit: the worst round counts)."""
    peak: dict[str, Any] = max(rounds, key=lambda run: run["peak_rss_mb"].get("devhost") or 0)["peak_rss_mb"]
    return peak


def rounds_row(e2e: dict[str, Any]) -> str:
    return ", ".join(f"{ratio}x" for ratio in e2e["rounds_over_floor"])


def azure_mode_rows(azure: dict[str, Any]) -> list[tuple[str, str]]:
    cpu = azure["devhost_cpu_ms_per_task_median"]
    return [
        ("Azure mode: end-to-end / floor (median round)", f"{azure['over_floor']} ({azure['seconds']} s)"),
        ("devhost CPU per task, shipped / Azure mode (ms)", f"{cpu['shipped']} / {cpu['azure_mode']}"),
        *work_rows("Azure mode (median round)", azure["work"]),
        ("  Azure mode less shipped, per kind", str(azure["work_per_task_difference"])),
    ]


def scale(smoke: bool, data: Path, reporter: str, e2e_seconds: float) -> dict[str, Any]:
    """The scale job (`bench/scale.py`), with its time over the end-to-end job's median round."""
    try:
        from bench.scale import scale_run  # noqa: PLC0415  (imported here: the run goes on without it)
    except ImportError as error:
        return {"skipped": f"bench/scale.py cannot be imported: {error}"}
    tasks, slots = SCALE_SIZES[smoke]
    try:
        result = scale_run(tasks, slots, data, reporter)
    except Exception as error:  # a failed scale job is reported; it must not lose the run's other figures
        return {"error": f"{type(error).__name__}: {error}"}
    return {**result, "over_end_to_end": round(result["seconds"] / e2e_seconds, 2)}


def scale_table(result: dict[str, Any] | None, e2e_seconds: float) -> list[tuple[str, str]]:
    if result is None:
        return [("scale job", "skipped (--no-scale)")]
    if "skipped" in result or "error" in result:
        return [("scale job", str(result.get("skipped") or result.get("error")))]
    from bench.scale import scale_rows  # noqa: PLC0415

    rows: list[tuple[str, str]] = scale_rows(result, e2e_seconds)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: check the harness, not the machine")
    parser.add_argument("--no-scale", action="store_true", help="skip the 10,000-task job")
    args = parser.parse_args(argv)
    hello_count, widths, e2e_tasks, slots = (20, (50, 200), 20, 5) if args.smoke else (1000, (1000, 4000), 1000, 50)
    cores = os.cpu_count() or 1
    results: dict[str, Any] = {"machine_cores": cores, "smoke": args.smoke, "when": datetime.now(UTC).isoformat()}
    with tempfile.TemporaryDirectory(prefix="acibatch-bench-") as scratch:
        data = Path(scratch)
        # devhost with the Durable SDK untouched and run as Azure runs it (no fast paths, no sessions: every episode
        # replays the whole history) on one worker, then on two (not judged), then as shipped: all are reported.
        hc = results["hello_cities5"] = {
            "devhost_stock_sdk": on_devhost(data / "stock", hello_count, HELLO_AZURE_MODE),
            "devhost_stock_sdk_2_workers": on_devhost(data / "stock-2", hello_count, HELLO_AZURE_MODE_2_WORKERS),
        }
        with DevhostProcess(BENCH / "app", data / "devhost", log_path=data / "devhost.log") as host:
            api = DurableApi.of(host.url, host.system_key)
            hc["devhost"] = hello_cities_on(host, hello_count)
            replay = results["sdk_replay_ms"] = sdk_replay_ms(api, "hc-0", rounds=3 if args.smoke else 9)
            # One worker process runs every orchestrator episode on one core: with the stock SDK's replay alone, and
            # nothing else (no activities, no host, no protocol), it could not go faster than this.
            hc["stock_sdk_ceiling_one_worker"] = round(EVENTS_PER_ORCHESTRATION * 1000 / replay["stock"])
            times = {width: fan_out(api, width) for width in widths}
        hc["dbos"] = dbos_hello_cities(hello_count)
        dbos_rate = hc["dbos"].get("events_per_second")
        for name in ("devhost", "devhost_stock_sdk", "devhost_stock_sdk_2_workers"):
            hc[f"{name}_over_dbos"] = round(hc[name]["events_per_second"] / dbos_rate, 2) if dbos_rate else None
        small, large = widths
        results["fan_out"] = {f"{w}_seconds": round(t, 2) for w, t in times.items()}
        results["fan_out"]["ratio"] = round(times[large] / times[small], 2)
        headline, *other_reporters = reporters()
        # The rounds as shipped, with rounds in Azure mode between them (shipped, Azure, shipped, ...), so the two
        # modes see the same hour of this shared machine.
        rounds, azure_rounds = [], []
        for number in range(1 if args.smoke else E2E_ROUNDS):
            rounds.append(end_to_end(e2e_tasks, slots, data / f"e2e-{headline}-{number}", headline))
            if number < (1 if args.smoke else AZURE_MODE_ROUNDS):
                azure_rounds.append(end_to_end(e2e_tasks, slots, data / f"e2e-azure-{number}", headline, AZURE_MODE))
        others = [end_to_end(e2e_tasks, slots, data / f"e2e-{name}", name) for name in other_reporters]
        floor = floor_seconds(e2e_tasks, slots)
        for run in [*rounds, *azure_rounds, *others]:
            run["floor_seconds"] = round(floor, 2)
            run["over_floor"] = round(run["seconds"] / floor, 2)
            run["over_floor_with_provisioning"] = round(run["seconds"] / floor_with_provisioning(floor, run), 3)
        results["end_to_end"] = e2e = {
            **median_round(rounds),
            "rounds_over_floor": [run["over_floor"] for run in rounds],
            "peak_rss_mb_highest_round": highest_rss(rounds),
        }
        results["end_to_end_rounds"] = rounds
        results["end_to_end_other_reporters"] = others
        results["end_to_end_azure_mode"] = {**median_round(azure_rounds), **modes_compared(rounds, azure_rounds)}
        results["end_to_end_azure_mode_rounds"] = azure_rounds
        results["scale"] = None if args.no_scale else scale(args.smoke, data / "scale", headline, e2e["seconds"])
        # The file path's per-task overhead (issue 24); skipped, saying why, without Azurite.
        from bench import files  # noqa: PLC0415  (bench.files imports this module's BASH_REPORTER)

        results["files"] = files.files_overhead(*files.sizes(args.smoke), data / "files")

    results["targets"] = targets(results)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bench-{'smoke-' if args.smoke else ''}{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(results, indent=2))
    hc, fo, e2e = results["hello_cities5"], results["fan_out"], results["end_to_end"]
    stock, stock_2 = hc["devhost_stock_sdk"], hc["devhost_stock_sdk_2_workers"]
    stock_dbos, stock_2_dbos = hc["devhost_stock_sdk_over_dbos"], hc["devhost_stock_sdk_2_workers_over_dbos"]
    rss = e2e["peak_rss_mb_highest_round"]
    replay = results["sdk_replay_ms"]
    rows = [
        ("HelloCities5 devhost (events/s)", hc["devhost"]["events_per_second"]),
        ("HelloCities5 devhost, stock SDK replaying all, 1 worker (events/s)", stock["events_per_second"]),
        ("  extra, not judged: on 2 workers (events/s)", f"{stock_2['events_per_second']} ({stock_2_dbos}x DBOS)"),
        ("HelloCities5 DBOS (events/s)", hc["dbos"].get("events_per_second", hc["dbos"].get("error"))),
        ("devhost / DBOS (stock SDK, 1 worker / DBOS)", f"{hc['devhost_over_dbos']} ({stock_dbos})"),
        ("SDK per HelloCities5, stock/fast/session (ms)", "{stock} / {fast_paths} / {session}".format(**replay)),
        ("  stock SDK's ceiling on 1 worker (events/s)", hc["stock_sdk_ceiling_one_worker"]),
        ("  CPU per orchestration, Azure mode 1 worker: host / workers (ms)", cpu_row(stock)),
        ("  CPU per orchestration, as shipped: host / workers (ms)", cpu_row(hc["devhost"])),
        (f"fan-out {small} / {large} (s)", f"{fo[f'{small}_seconds']} / {fo[f'{large}_seconds']}"),
        (f"fan-out ratio {large}/{small}", fo["ratio"]),
        (f"end-to-end {e2e_tasks} tasks, {slots} slots (s)", f"{e2e['seconds']} ({e2e['reporter']} callbacks)"),
        ("floor (s)", e2e["floor_seconds"]),
        ("end-to-end / floor (median; every round)", f"{e2e['over_floor']} ({rounds_row(e2e)})"),
        ("dispatch latency median / p99 (ms)", f"{e2e['dispatch_ms_median']} / {e2e['dispatch_ms_p99']}"),
        (
            "  less the emulated provisioning (ms)",
            f"{e2e['dispatch_ms_median_less_provisioning']} / {e2e['dispatch_ms_p99_less_provisioning']}",
        ),
        ("  end-to-end / (floor + emulated provisioning)", e2e["over_floor_with_provisioning"]),
        ("  hand-overs measured", e2e["dispatches_measured"]),
        ("  machine CPU in the job (s, % of all cores)", machine_cpu_row(e2e.get("machine_cpu"))),
        *[other_reporter_row(run) for run in others],
        ("peak RSS devhost incl. workers / aciemu, highest round (MB)", f"{rss.get('devhost')} / {rss.get('aciemu')}"),
        ("  devhost host / workers (MB)", f"{rss.get('devhost_host')} / {rss.get('devhost_workers')}"),
        *work_rows("as shipped (median round)", e2e["work"]),
        *azure_mode_rows(results["end_to_end_azure_mode"]),
        *scale_table(results["scale"], e2e["seconds"]),
        *files.rows(results["files"]),
        (f"issue 29 targets{' (smoke sizes: not a verdict)' if args.smoke else ''}", ""),
        *target_rows(results["targets"]),
    ]
    print(f"\nacibatch bench on {cores} cores{' (smoke)' if args.smoke else ''}")
    for name, value in rows:
        print(f"  {name:<44} {value}")
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
