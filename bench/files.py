"""The per-task overhead of the file path (issue 24), three kinds of task side by side in one run:

  plain   today's path: a stack without blob storage, so the task runs alone in its group (no agent);
  agent   the same task on a stack with Azurite: the agent stages nothing but streams the whole logs to blob
          storage and reports the end (an init container and a sidecar in the group);
  files   the same again, staging in an input set of INPUT_FILES files and uploading OUTPUT_FILES outputs
          (copies of staged inputs, so a matching sha256 proves both directions moved the bytes).

Every task runs the same command (`sleep 1`, then the callback over bash's /dev/tcp, as the end-to-end bench's
tasks do); the files task copies three staged files to `out/` first. Both stacks are up for the whole run and the
kinds alternate round by round (plain, agent, files, plain, ...), so a slow minute of the shared machine falls on
all three. Per kind: the task's own duration (the API's startedAt -> finishedAt), submit -> the task done, and the
job's makespan (submit -> its orchestration ended), with medians and p95 over all rounds and the ratios to plain.

`python -m bench.files [--smoke]` runs this section alone; `make bench` runs it as part of bench/run.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from acibatch.naming import job_instance_id
from bench import appsettings
from bench.appsettings import job_settings
from bench.durable_api import DurableApi, wait_for_instance
from bench.machine import MachineCpu
from bench.run import BASH_REPORTER
from localdev.client import BatchClient
from localdev.localstack import EXAMPLE_WORKER_IMAGE, LocalStack, local_stack
from localtools.azurite import INSTALL_HINT, find_azurite

RESULTS = Path(__file__).resolve().parent / "results"
TENANT = "bench"
INPUT_SET = "bench-in"
INPUT_FILES = 10
INPUT_FILE_BYTES = 16 * 1024
OUTPUT_FILES = 3
# Seconds per job at most: a stuck run fails the bench instead of hanging it.
JOB_TIMEOUT = 600


class Kind(StrEnum):
    PLAIN = "plain"
    AGENT = "agent"
    FILES = "files"


def input_files() -> dict[str, bytes]:
    """The input set: distinct pseudo-random bytes per file (so a copied output can only match its own input)."""
    return {
        f"f{i}.bin": hashlib.shake_256(f"bench input {i}".encode()).digest(INPUT_FILE_BYTES) for i in range(INPUT_FILES)
    }


def command(kind: Kind) -> list[str]:
    copy = ""
    if kind is Kind.FILES:
        copies = " && ".join(f"cp in/f{i}.bin out/r{i}.bin" for i in range(OUTPUT_FILES))
        copy = f'cd "$AZ_BATCH_TASK_WORKING_DIR" && mkdir -p out && {copies} || exit 1\n'
    return ["bash", "-c", copy + BASH_REPORTER]


def job_spec(kind: Kind, job_id: str, tasks: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"jobId": job_id, "image": EXAMPLE_WORKER_IMAGE, "command": command(kind), "cpu": 0.5,
                            "memoryGb": 0.5, "taskCount": tasks, "taskTimeoutSeconds": 300}  # fmt: skip
    if kind is Kind.FILES:
        spec["resourceFiles"] = [{"autoStorageContainerName": INPUT_SET, "filePath": "in"}]
        spec["outputFiles"] = [{"filePattern": "out/*.bin"}]
    return spec


def parse(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (p95 of 20 values is the 19th smallest)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(share * len(ordered)) - 1))]


def run_job(stack: LocalStack, client: BatchClient, kind: Kind, job_id: str, tasks: int) -> dict[str, Any]:
    durable = DurableApi.of(stack.host_url, stack.durable_key)
    cpu_before = MachineCpu.now()
    submitted = time.time()
    client.submit(job_spec(kind, job_id, tasks))
    deadline = time.monotonic() + JOB_TIMEOUT
    wait_for_instance(durable, job_instance_id(TENANT, job_id), poll_seconds=0.1)
    makespan = time.time() - submitted
    cpu_after = MachineCpu.now()
    if time.monotonic() > deadline:
        raise TimeoutError(f"{job_id} took over {JOB_TIMEOUT} s")
    job = client.job(job_id, limit=0)
    records = client.all_tasks(job_id)
    run: dict[str, Any] = {
        "kind": kind.value, "job": job_id, "state": job["state"], "makespan_s": round(makespan, 3),
        "task_s": [round(parse(r["finishedAt"]) - parse(r["startedAt"]), 3) for r in records if r.get("startedAt")],
        "submit_to_done_s": [round(parse(r["finishedAt"]) - submitted, 3) for r in records if r.get("finishedAt")],
        # All of the machine's CPU while the job ran (the stack, the containers, Azurite): what each kind costs.
        "machine_cpu_s": cpu_after.since(cpu_before)["cpu_seconds"] if cpu_before and cpu_after else None,
        "failed": [{"id": r["id"], "state": r["state"], "error": r.get("error")} for r in records
                   if r["state"] != "Succeeded"],
    }  # fmt: skip
    if kind is Kind.FILES:
        run["outputs"] = {r["id"]: client.task_files(job_id, r["id"])["files"] for r in records}
    return run


def outputs_are_the_inputs(runs: list[dict[str, Any]], tasks: int) -> bool:
    """Every files task listed its OUTPUT_FILES outputs, each with the sha256 of the input it copied."""
    inputs = input_files()
    for run in runs:
        if len(run["outputs"]) != tasks:
            return False
        for files in run["outputs"].values():
            got = {item["file"]: item["sha256"] for item in files}
            want = {f"out/r{i}.bin": hashlib.sha256(inputs[f"f{i}.bin"]).hexdigest() for i in range(OUTPUT_FILES)}
            if got != want:
                return False
    return True


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    task_s = [value for run in runs for value in run["task_s"]]
    done_s = [value for run in runs for value in run["submit_to_done_s"]]
    makespans = [run["makespan_s"] for run in runs]
    return {
        "tasks_measured": len(task_s),
        "task_s_median": round(statistics.median(task_s), 3) if task_s else None,
        "task_s_p95": round(percentile(task_s, 0.95), 3) if task_s else None,
        "submit_to_done_s_median": round(statistics.median(done_s), 3) if done_s else None,
        "submit_to_done_s_p95": round(percentile(done_s, 0.95), 3) if done_s else None,
        "makespan_s_median": round(statistics.median(makespans), 3),
        "makespans_s": makespans,
        "machine_cpu_s_per_task": machine_cpu_per_task(runs),
        "all_succeeded": all(run["state"] == "Succeeded" and not run["failed"] for run in runs),
    }


def machine_cpu_per_task(runs: list[dict[str, Any]]) -> float | None:
    spent = [run["machine_cpu_s"] for run in runs]
    tasks = sum(len(run["task_s"]) for run in runs)
    return round(sum(spent) / tasks, 3) if tasks and None not in spent else None


def ratio(over: float | None, base: float | None) -> float | None:
    return round(over / base, 2) if over and base else None


def tenant(stack: LocalStack, slots: int) -> BatchClient:
    admin = BatchClient(stack.api_url, stack.admin_key)
    key = admin.put_tenant(TENANT, {"maxGroups": slots, "maxCores": slots, "maxMemoryGb": slots})["apiKey"]
    return BatchClient(stack.api_url, key)


def files_overhead(tasks: int, slots: int, rounds: int, data: Path) -> dict[str, Any]:
    """Run the three kinds alternately, `rounds` jobs of `tasks` tasks each with `slots` groups at a time."""
    if find_azurite() is None:
        return {"skipped": f"azurite-blob is not installed: run `{INSTALL_HINT}`"}
    settings = job_settings(slots)
    emulator_args = appsettings.emulator_args(slots)
    runs: dict[Kind, list[dict[str, Any]]] = {kind: [] for kind in Kind}
    with ExitStack() as stacks:
        plain = stacks.enter_context(local_stack(data / "plain", settings=settings, emulator_args=emulator_args))
        stored = stacks.enter_context(
            local_stack(data / "storage", settings=settings, emulator_args=emulator_args, storage=True)
        )
        clients = {Kind.PLAIN: tenant(plain, slots), Kind.AGENT: tenant(stored, slots)}
        clients[Kind.FILES] = clients[Kind.AGENT]
        for name, content in input_files().items():
            clients[Kind.FILES].upload_input(INPUT_SET, name, content)
        for number in range(rounds):
            for kind in Kind:
                stack = plain if kind is Kind.PLAIN else stored
                runs[kind].append(run_job(stack, clients[kind], kind, f"{kind.value}-{number}", tasks))
    summary = {kind.value: summarise(runs[kind]) for kind in Kind}
    base = summary[Kind.PLAIN.value]
    for kind in (Kind.AGENT, Kind.FILES):
        mine = summary[kind.value]
        mine["over_plain"] = {
            figure: ratio(mine[figure], base[figure])
            for figure in (
                "task_s_median",
                "task_s_p95",
                "submit_to_done_s_median",
                "makespan_s_median",
                "machine_cpu_s_per_task",
            )
        }
    return {
        "tasks_per_job": tasks, "slots": slots, "rounds": rounds, "input_files": INPUT_FILES,
        "input_file_bytes": INPUT_FILE_BYTES, "output_files": OUTPUT_FILES,
        "outputs_match_inputs": outputs_are_the_inputs(runs[Kind.FILES], tasks),
        **summary, "runs": {kind.value: runs[kind] for kind in Kind},
    }  # fmt: skip


def sizes(smoke: bool) -> tuple[int, int, int]:
    """(tasks per job, groups at a time, rounds of the three kinds)."""
    return (2, 2, 1) if smoke else (20, 10, 2)


def rows(report: dict[str, Any]) -> list[tuple[str, Any]]:
    """The bench table's lines for this section."""
    if "skipped" in report:
        return [("file path overhead", f"skipped: {report['skipped']}")]
    head = f"file path, {report['tasks_per_job']} tasks x {report['rounds']} rounds, {report['slots']} slots"
    lines: list[tuple[str, Any]] = [(head, "task median / p95, submit->done median, makespan median (s); CPU s/task")]
    for kind in Kind:
        figures = report[kind.value]
        value = (f"{figures['task_s_median']} / {figures['task_s_p95']}, {figures['submit_to_done_s_median']}, "
                 f"{figures['makespan_s_median']}; {figures['machine_cpu_s_per_task']}")  # fmt: skip
        if "over_plain" in figures:
            over = figures["over_plain"]
            value += f" (x{over['task_s_median']} task, x{over['makespan_s_median']} makespan)"
        lines.append((f"  {kind.value}{'' if figures['all_succeeded'] else ' (FAILED TASKS)'}", value))
    lines.append(("  outputs are the staged inputs (sha256)", report["outputs_match_inputs"]))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: check the harness, not the machine")
    parser.add_argument("--tasks", type=int, help="tasks per job (default 20; smoke 2)")
    parser.add_argument("--slots", type=int, help="container groups at a time (default 10; smoke 2)")
    parser.add_argument("--rounds", type=int, help="rounds of the three kinds (default 2; smoke 1)")
    args = parser.parse_args(argv)
    default_tasks, default_slots, default_rounds = sizes(args.smoke)
    tasks, slots = args.tasks or default_tasks, args.slots or default_slots
    rounds = args.rounds or default_rounds
    with tempfile.TemporaryDirectory(prefix="acibatch-bench-files-") as scratch:
        report = files_overhead(tasks, slots, rounds, Path(scratch))
    report = {"machine_cores": os.cpu_count(), "smoke": args.smoke, "when": datetime.now(UTC).isoformat(), **report}
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"bench-files-{'smoke-' if args.smoke else ''}{stamp}.json"
    out.write_text(json.dumps(report, indent=2))
    for name, value in rows(report):
        print(f"  {name:<44} {value}")
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
