"""`make demo`: start the local stack, run two tenants' real jobs, check every answer, shut down.

Tenant `alpha` (bigger quota, weight 2) sums the squares of 1..N in slices; tenant `beta` (smaller quota,
weight 1) counts the primes below M in slices. Each task reports its partial result in its callback and
the demo checks the totals against closed-form / reference answers. One `alpha` task fails its first
attempt and succeeds on the retry; one `beta` task never calls back (it prints its result and exits, so
polling finishes it and the demo reads its partial result from the task's kept log). With blob storage (Azurite),
tenant `gamma` uploads an input file set, runs examples/files-job.json over it and checks the outputs' contents
(localdev/demo_files.py); without storage the demo says it skips gamma.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acibatch.aci import AciGateway, make_client
from localdev.cli import TERMINAL_JOB_STATES, progress_bar
from localdev.client import BatchClient
from localdev.demo_files import (
    GAMMA_QUOTA,
    LOOPBACK_HTTP_SETTINGS,
    check_gamma,
    make_corpus,
    stop_words_server,
    submit_gamma,
)
from localdev.localstack import EXAMPLE_WORKER_IMAGE, LOCAL_RESOURCE_GROUP, LOCAL_SUBSCRIPTION, local_stack
from localtools.azurite import INSTALL_HINT, find_azurite

SQUARES_N = 2_000_000
SQUARES_TASKS = 8
PRIMES_BELOW = 400_000
PRIMES_TASKS = 4

SQUARES_CODE = """
import os, sys, acibatch_report as report
i, n, k = int(os.environ["BATCH_TASK_INDEX"]), int(os.environ["N"]), int(os.environ["SLICES"])
if i == 3 and os.environ["BATCH_ATTEMPT"] == "1":
    print("simulated crash on the first attempt", flush=True)
    sys.exit(3)
lo, hi = i * n // k + 1, (i + 1) * n // k
report.succeeded({"partial": sum(x * x for x in range(lo, hi + 1)), "range": [lo, hi]})
"""

PRIMES_CODE = """
import os, acibatch_report as report
i, m, k = int(os.environ["BATCH_TASK_INDEX"]), int(os.environ["M"]), int(os.environ["SLICES"])
lo, hi = i * m // k, (i + 1) * m // k
def prime(x):
    if x < 2: return False
    d = 2
    while d * d <= x:
        if x % d == 0: return False
        d += 1
    return True
count = sum(1 for x in range(lo, hi) if prime(x))
print(f"partial={count}", flush=True)
if i != 1:  # task 1 never calls back: polling sees its exit code, the demo reads its log
    report.succeeded({"partial": count, "range": [lo, hi]})
"""


def python_job(job_id: str, code: str, tasks: int, env: dict[str, str]) -> dict[str, Any]:
    return {
        "jobId": job_id,
        "image": EXAMPLE_WORKER_IMAGE,  # its working directory holds the report helper
        "command": ["python3", "-c", code],
        "cpu": 1,
        "memoryGb": 1,
        "env": {"PYTHONUNBUFFERED": "1", **env},
        "taskCount": tasks,
        "maxAttempts": 3,
        "taskTimeoutSeconds": 120,
    }


def count_primes_below(limit: int) -> int:
    sieve = bytearray([1]) * limit
    sieve[0:2] = b"\x00\x00"
    for x in range(2, int(limit**0.5) + 1):
        if sieve[x]:
            sieve[x * x :: x] = bytearray(len(sieve[x * x :: x]))
    return sum(sieve)


@dataclass
class Checks:
    results: list[tuple[str, bool, str]] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.results.append((name, ok, detail))

    @property
    def passed(self) -> bool:
        return all(ok for _, ok, _ in self.results)


def show_progress(clients: dict[str, BatchClient], jobs: dict[str, str], admin: BatchClient, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    interactive = sys.stdout.isatty()
    last_line = ""
    while time.monotonic() < deadline:
        parts, finished = [], 0
        for tenant, job_id in jobs.items():
            job = clients[tenant].job(job_id, limit=0)
            finished += job["state"] in TERMINAL_JOB_STATES
            parts.append(f"{tenant}/{job_id} {job['state']:<9} {progress_bar(job['counts'], job['taskCount'], 16)}")
        for tenant in jobs:
            live = admin.get_tenant(tenant)
            parts.append(f"{tenant}: running {live['running']['groups']} queued {live['queued']}")
        line = " | ".join(parts)
        if interactive:
            print("\r" + line.ljust(len(last_line)), end="", flush=True)
        elif line != last_line:
            print(line, flush=True)
        last_line = line
        if finished == len(jobs):
            break
        time.sleep(0.5)
    if interactive:
        print()


def run_demo(data_dir: Path, timeout: float, hold: bool = False, storage: bool = True) -> Checks:
    checks = Checks()
    started = time.monotonic()
    # With storage on, each group also runs the agent's sidecar (0.1 cores, 0.2 GB), which quotas count: the
    # quotas below leave room for it so alpha still runs four tasks at once and beta two, five groups in all.
    settings = {"BATCH_POLL_SECONDS": "2", "ACI_MAX_GROUPS": "5", "ACI_MAX_CORES": "6"}
    no_storage_reason = "storage is off (--no-storage)"
    if storage and find_azurite() is None:
        print(f"note: azurite-blob is not installed, so the demo runs without blob storage; `{INSTALL_HINT}`")
        storage, no_storage_reason = False, f"azurite-blob is not installed (`{INSTALL_HINT}`)"
    if storage:
        settings.update(LOOPBACK_HTTP_SETTINGS)
    with local_stack(data_dir, settings=settings, storage=storage) as stack, stop_words_server() as stop_words_url:
        print(f"local stack up: API {stack.api_url}, ACI emulator {stack.aci_url}")
        if stack.blob_endpoint:
            print(f"blob storage: {stack.blob_endpoint} (Azurite)")
        print(f"dashboard: {stack.api_url}/ui/ (sign in with a tenant's key, or the admin key for tenants)")
        admin = BatchClient(stack.api_url, stack.admin_key)
        alpha = admin.put_tenant("alpha", {"maxGroups": 4, "maxCores": 4.4, "maxMemoryGb": 8.8, "weight": 2})
        beta = admin.put_tenant("beta", {"maxGroups": 2, "maxCores": 2.2, "maxMemoryGb": 4.4, "weight": 1})
        clients = {
            "alpha": BatchClient(stack.api_url, alpha["apiKey"]),
            "beta": BatchClient(stack.api_url, beta["apiKey"]),
        }
        print("tenants: alpha (4 groups, weight 2), beta (2 groups, weight 1); region limit 5 groups")
        if stack.blob_endpoint:
            gamma = admin.put_tenant("gamma", GAMMA_QUOTA)
            clients["gamma"] = BatchClient(stack.api_url, gamma["apiKey"])
            print("tenant gamma (2 groups, weight 1) counts words in files it uploads, through blob storage")
        else:
            print(f"skipping tenant gamma (input and output files in blob storage): {no_storage_reason}")
        jobs = {
            "alpha": clients["alpha"].submit(
                python_job(
                    "squares",
                    SQUARES_CODE,
                    SQUARES_TASKS,
                    {"N": str(SQUARES_N), "SLICES": str(SQUARES_TASKS)},
                )
            )["jobId"],
            "beta": clients["beta"].submit(
                python_job("primes", PRIMES_CODE, PRIMES_TASKS, {"M": str(PRIMES_BELOW), "SLICES": str(PRIMES_TASKS)})
            )["jobId"],
        }
        corpus = make_corpus()
        if "gamma" in clients:
            jobs["gamma"] = submit_gamma(clients["gamma"], corpus, stop_words_url)
        show_progress(clients, jobs, admin, timeout)

        print("\nsummary")
        squares_tasks = clients["alpha"].all_tasks(jobs["alpha"])
        primes_tasks = clients["beta"].all_tasks(jobs["beta"])
        for tenant, tasks in (("alpha", squares_tasks), ("beta", primes_tasks)):
            job = clients[tenant].job(jobs[tenant], limit=0)
            print(f"  job {tenant}/{jobs[tenant]}: {job['state']}, counts {job['counts']}")
            checks.check(f"{tenant} job succeeded", job["state"] == "Succeeded", job["state"])
            for task in tasks:
                print(
                    f"    task {task['id']:<4} {task['state']:<9} attempts {task['attempts']} exit {task['exitCode']}"
                )

        squares = sum(task["result"]["partial"] for task in squares_tasks if task.get("result"))
        expected_squares = SQUARES_N * (SQUARES_N + 1) * (2 * SQUARES_N + 1) // 6
        checks.check("alpha: sum of squares is right", squares == expected_squares, f"{squares} vs {expected_squares}")
        retried = [task for task in squares_tasks if task["id"] == "3"]
        checks.check(
            "alpha: task 3 failed once and succeeded on retry",
            bool(retried) and retried[0]["attempts"] == 2 and retried[0]["state"] == "Succeeded",
        )

        primes = 0
        for task in primes_tasks:
            if task.get("result"):
                primes += task["result"]["partial"]
            else:
                log = clients["beta"].logs(jobs["beta"], task["id"])["content"]
                partials = [line for line in log.splitlines() if line.startswith("partial=")]
                primes += int(partials[-1].split("=")[1]) if partials else 0
                checks.check(
                    f"beta: task {task['id']} finished by polling (no callback)",
                    task["state"] == "Succeeded" and task["result"] is None,
                )
        expected_primes = count_primes_below(PRIMES_BELOW)
        checks.check("beta: prime count is right", primes == expected_primes, f"{primes} vs {expected_primes}")
        if "gamma" in jobs:
            print(f"  job gamma/{jobs['gamma']}: its tasks, and the outputs downloaded and checked")
            check_gamma(clients["gamma"], jobs["gamma"], corpus, checks.check)

        print("\ntenants")
        for tenant in jobs:
            info = admin.get_tenant(tenant)
            usage = info["usage"]
            print(
                f"  {tenant}: {usage['coreSeconds']:.1f} core-s, {usage['gbSeconds']:.1f} GB-s, tasks {usage['tasks']}"
            )
            checks.check(f"{tenant}: usage recorded", usage["coreSeconds"] > 0)

        client = make_client(LOCAL_SUBSCRIPTION, stack.aci_url, polling_interval=0.2, token=stack.aci_token)
        gateway = AciGateway(client, LOCAL_RESOURCE_GROUP)
        left = gateway.list_app_groups()
        print(f"\ncontainer groups left in the emulator: {len(left)}")
        checks.check("no container groups left", not left, ", ".join(group.name for group in left))
        if hold:
            hold_for_dashboard(stack.api_url, stack.admin_key, {name: c.key or "" for name, c in clients.items()})
    elapsed = time.monotonic() - started
    print(f"\ndemo took {elapsed:.1f} s")
    return checks


def hold_for_dashboard(api_url: str, admin_key: str, tenant_keys: dict[str, str]) -> None:
    """Keep the stack up after the checks so the dashboard can be explored; Ctrl-C ends it. The keys are this
    run's own, made for this throwaway stack, and shown only on the terminal of whoever asked for --keep."""
    print(f"\ndashboard: {api_url}/ui/ stays up until Ctrl-C")
    print(f"  admin key  {admin_key}")
    for tenant, key in tenant_keys.items():
        print(f"  {tenant:<10} {key}")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the acibatch demo on the local stack.")
    parser.add_argument("--timeout", type=float, default=150, help="seconds to wait for the jobs")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the data folder (logs) even on success, and the stack up for the dashboard until Ctrl-C",
    )
    parser.add_argument("--no-storage", action="store_true", help="run without Azurite (blob storage off)")
    args = parser.parse_args(argv)
    data_dir = Path(tempfile.mkdtemp(prefix="acibatch-demo-"))
    try:
        checks = run_demo(data_dir, args.timeout, hold=args.keep, storage=not args.no_storage)
    except Exception as error:
        print(f"\ndemo failed: {error}\nlogs: {data_dir}", file=sys.stderr)
        return 1
    print("\nchecks")
    for name, ok, detail in checks.results:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}{'' if ok or not detail else f' ({detail})'}")
    if not checks.passed:
        print(f"\nsome checks failed; logs: {data_dir}")
        return 1
    if args.keep:
        print(f"data and logs kept in {data_dir}")
    else:
        shutil.rmtree(data_dir, ignore_errors=True)
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
