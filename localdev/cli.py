"""`acibatch`: the command line for the batch API, and `acibatch up` to run the whole local stack.

Endpoint and key come from `--url/--key` or `ACIBATCH_URL` / `ACIBATCH_KEY`. API errors print the API's
message and exit 1; `--json` prints raw API answers for scripts.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import urllib.error
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from localdev import cli_files, cli_schedules
from localdev.client import ApiCallError, BatchClient

DEFAULT_URL = "http://127.0.0.1:7071/api"
# What a shell reports for a program killed by SIGPIPE (128 + 13), as `cat` or `grep` would be in a closed pipe.
EXIT_BROKEN_PIPE = 141
TERMINAL_JOB_STATES = {"Succeeded", "Failed", "Cancelled"}
DONE_TASK_STATES = TERMINAL_JOB_STATES | {"Skipped"}  # a task of a workflow may also end without running


class CliError(Exception):
    """A mistake in what the command was given (not the API's answer): print it and exit 1."""


def progress_bar(counts: dict[str, int], total: int, width: int = 30) -> str:
    done = sum(counts.get(state, 0) for state in DONE_TASK_STATES)
    filled = round(width * done / total) if total else width
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


def describe_job(job: dict[str, Any], bar: bool = True) -> str:
    counts = job.get("counts", {})
    parts = [f"{state.lower()} {counts[state]}" for state in counts if counts[state]]
    total = job.get("taskCount", 0)
    done = sum(counts.get(state, 0) for state in DONE_TASK_STATES)
    progress = progress_bar(counts, total) if bar else f"{done}/{total} done"
    return f"{job['jobId']}  {job['state']:<9}  {progress}  {', '.join(parts)}"


def wait_for_job(client: BatchClient, job_id: str, live: bool, interval: float = 1.0) -> dict[str, Any]:
    """Poll until the job ends. With `live`, a terminal gets one redrawn progress bar; a pipe or a file gets a
    plain line each time the job's state or counts change (no carriage returns to garble a log)."""
    terminal = sys.stdout.isatty()
    shown = ""
    while True:
        job: dict[str, Any] = client.job(job_id, limit=0)
        line = describe_job(job, bar=terminal)
        if live and terminal:
            # Pad over the previous line's tail: a redrawn line can be shorter.
            print("\r" + line.ljust(len(shown)), end="", flush=True)
        elif live and line != shown:
            print(line, flush=True)
        shown = line
        if job["state"] in TERMINAL_JOB_STATES:
            if live and terminal:
                print()
            return job
        time.sleep(interval)


GRAPH_MAX_TASKS = 40  # `acibatch status` draws the dependency graph of jobs up to this size
GRAPH_MARKS = {"Succeeded": "[ok]", "Failed": "[XX]", "Running": "[>>]", "Queued": "[..]", "Blocked": "[  ]",
               "Skipped": "[--]", "Cancelled": "[xx]"}  # fmt: skip


def draw_graph(tasks: list[dict[str, Any]]) -> list[str]:
    """A small workflow's progress: each task, its state mark and the tasks it runs after, in dependency depth
    order (roots first); empty for a job without dependencies or over GRAPH_MAX_TASKS tasks."""
    if len(tasks) > GRAPH_MAX_TASKS or not any(task.get("upstream") for task in tasks):
        return []
    depth: dict[str, int] = {}
    remaining = {task["id"]: task for task in tasks}
    while remaining:  # the graph is acyclic (checked at submit), so every pass places at least one task
        placed = [t for t in remaining.values() if all(up in depth for up in t.get("upstream", []))]
        if not placed:  # an upstream id outside the listed tasks: draw the rest flat rather than loop
            depth.update(dict.fromkeys(remaining, 0))
            break
        for task in placed:
            depth[task["id"]] = 1 + max((depth[up] for up in task.get("upstream", [])), default=-1)
            del remaining[task["id"]]
    lines = []
    for task in sorted(tasks, key=lambda t: depth[t["id"]]):
        after = f"  <- {', '.join(task['upstream'])}" if task.get("upstream") else ""
        lines.append(f"  {'  ' * depth[task['id']]}{GRAPH_MARKS.get(task['state'], '[??]')} {task['id']}{after}")
    return lines


def print_tasks(client: BatchClient, job_id: str) -> None:
    tasks = client.all_tasks(job_id)
    graph = draw_graph(tasks)
    if graph:
        print("graph:")
        print("\n".join(graph))
    for task in tasks:
        exit_code = "" if task["exitCode"] is None else f"exit {task['exitCode']}"
        error = f"  {task['error']}" if task.get("error") else ""
        waiting = f"  waiting: {task['pendingReason']}" if task.get("pendingReason") else ""
        if task.get("blockedBy"):  # a workflow's task waiting for upstream tasks (the first few)
            waiting = f"  after: {', '.join(task['blockedBy'])}"
        if task.get("reason"):  # ended without running: which upstream task stopped it
            waiting = f"  {task['reason']}"
        if task.get("platformRetries"):
            waiting += f"  ({task['platformRetries']} platform retries, not counted)"
        print(f"  {task['id']:<20} {task['state']:<9} attempts {task['attempts']}  {exit_code}{error}{waiting}")


def command_up(args: argparse.Namespace) -> int:
    # Imported here: only `up` needs devhost and aciemu.
    from localdev.localstack import EXAMPLE_IMAGES, LocalStackError, default_data_dir, local_stack  # noqa: PLC0415
    from localtools.azurite import INSTALL_HINT, find_azurite  # noqa: PLC0415
    from localtools.process import ServiceFailed  # noqa: PLC0415

    data_dir = Path(args.data) if args.data else default_data_dir()
    settings = {"BATCH_ADMIN_KEY": args.admin_key} if args.admin_key else {}
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    logs = {"devhost": data_dir / "devhost.log", "aciemu": data_dir / "aciemu.log"}
    # Blob storage (input/output files, whole logs) needs Azurite; without it the stack still runs, storage off.
    storage = not args.no_storage and find_azurite() is not None
    if storage:
        logs["azurite"] = data_dir / "azurite.log"
    elif not args.no_storage:
        print(
            f"note: azurite-blob is not installed, so blob storage is off; `{INSTALL_HINT}` turns it on",
            file=sys.stderr,
        )
    # The logs are appended to across runs: show only what this run writes.
    offsets = {name: path.stat().st_size if path.exists() else 0 for name, path in logs.items()}
    try:
        images = Path(args.images) if args.images else EXAMPLE_IMAGES
        with local_stack(data_dir, settings=settings, host_port=args.port, images=images, storage=storage) as stack:
            print(f"acibatch API   {stack.api_url}")
            print(f"dashboard      {stack.api_url}/ui/")
            print(f"ACI emulator   {stack.aci_url}")
            print(f"blob storage   {f'{stack.blob_endpoint} (Azurite)' if stack.blob_endpoint else 'off'}")
            print(f"admin key      {stack.admin_key}")
            print(f"data           {data_dir} (keys in {data_dir / 'secrets.json'}; reused on the next start)")
            print(f"logs           {', '.join(str(path) for path in logs.values())}")
            try_it = f"ACIBATCH_URL={stack.api_url} ACIBATCH_KEY={stack.admin_key} acibatch tenant create demo"
            print(f"try:           {try_it}")
            print("Ctrl-C stops everything.", flush=True)
            try:
                while not stopping:
                    follow_logs(logs, offsets)
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
    except LocalStackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ServiceFailed as error:
        first = str(error).splitlines()[0]
        print(f"error: {first}; see {', '.join(str(path) for path in logs.values())}", file=sys.stderr)
        return 1
    print("stopped.")
    return 0


def follow_logs(logs: dict[str, Path], offsets: dict[str, int]) -> None:
    """Print what the services appended to their logs since the last call, one prefixed line at a time."""
    for name, path in logs.items():
        try:
            with path.open("rb") as handle:
                handle.seek(offsets[name])
                chunk = handle.read()
        except OSError:
            continue
        complete = chunk[: chunk.rfind(b"\n") + 1]
        offsets[name] += len(complete)
        for line in complete.decode(errors="replace").splitlines():
            print(f"[{name}] {line}", flush=True)


def run_api_command(args: argparse.Namespace, client: BatchClient) -> int:
    out: Any
    if args.command == "schedule":
        try:
            return cli_schedules.run(args, client)
        except cli_schedules.ScheduleFileError as error:
            raise CliError(str(error)) from None
    if args.command == "tenant":
        if args.action == "create":
            quota = {
                name: value
                for name, value in {
                    "maxGroups": args.max_groups,
                    "maxCores": args.max_cores,
                    "maxMemoryGb": args.max_memory_gb,
                    "weight": args.weight,
                }.items()
                if value is not None
            }
            out = client.put_tenant(args.tenant, quota)
        elif args.action == "rotate-key":
            out = client.rotate_key(args.tenant)
        else:
            out = client.get_tenant(args.tenant)
        print(json.dumps(out, indent=None if args.json else 2))
        return 0
    if args.command == "submit":
        try:
            spec = json.loads(Path(args.file).read_text())
        except ValueError as error:
            raise CliError(f"{args.file} is not a JSON job spec: {error}") from None
        out = client.submit(spec)
        if args.json and not args.wait:
            print(json.dumps(out))
            return 0
        print(f"submitted {out['jobId']}: {out['statusUrl']}")
        if not args.wait:
            return 0
        job = wait_for_job(client, out["jobId"], live=not args.json)
        if args.json:
            print(json.dumps(job))
        return 0 if job["state"] == "Succeeded" else 2
    if args.command == "jobs":
        out = client.jobs(state=args.state)
        if args.json:
            print(json.dumps(out))
        for job in [] if args.json else out["jobs"]:
            print(f"{job['jobId']}  {job.get('state', '')}  {job.get('createdAt', '')}")
        return 0
    if args.command in {"status", "watch"}:
        if args.command == "watch":
            job = wait_for_job(client, args.job, live=not args.json)
        else:
            job = client.job(args.job, limit=0)
        if args.json:
            print(json.dumps(client.job(args.job, limit=1000)))
        else:
            print(describe_job(job, bar=sys.stdout.isatty()))
            print_tasks(client, args.job)
        return 0
    if args.command in {"upload", "files", "download", "logs"}:
        try:
            return cli_files.run(args, client)
        except cli_files.FilesError as error:
            raise CliError(str(error)) from None
    if args.command == "cancel":
        out = client.cancel(args.job)
        print(json.dumps(out) if args.json else f"cancelling {out['jobId']}")
        return 0
    raise AssertionError(args.command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="acibatch", description=__doc__)
    parser.add_argument("--url", default=os.environ.get("ACIBATCH_URL", DEFAULT_URL), help="API root (ACIBATCH_URL)")
    parser.add_argument("--key", default=os.environ.get("ACIBATCH_KEY"), help="admin or tenant key (ACIBATCH_KEY)")
    parser.add_argument("--json", action="store_true", help="print raw JSON answers")
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run devhost + aciemu + the app locally until Ctrl-C")
    up.add_argument("--port", type=int, default=7071)
    up.add_argument(
        "--data", help="data folder, reused across runs (default: $XDG_STATE_HOME/acibatch, ~/.local/state/acibatch)"
    )
    up.add_argument("--images", help="aciemu image catalog (default: examples/images.json; see aciemu/README.md)")
    up.add_argument("--admin-key", help="admin key to use (default: generated and printed)")
    up.add_argument("--no-storage", action="store_true", help="run without Azurite (blob storage off)")

    tenant = commands.add_parser("tenant", help="create, show or rotate the key of a tenant (admin key)")
    tenant.add_argument("action", choices=["create", "show", "rotate-key"])
    tenant.add_argument("tenant")
    tenant.add_argument("--max-groups", type=int)
    tenant.add_argument("--max-cores", type=float)
    tenant.add_argument("--max-memory-gb", type=float)
    tenant.add_argument("--weight", type=float)

    submit = commands.add_parser("submit", help="submit a job spec file (tenant key)")
    submit.add_argument("file")
    submit.add_argument("--wait", action="store_true", help="show progress until the job finishes")

    jobs = commands.add_parser("jobs", help="list the tenant's jobs")
    jobs.add_argument("--state", choices=["Queued", "Running", "Succeeded", "Failed", "Cancelled"])
    for name, text in (
        ("status", "show a job and its tasks"),
        ("watch", "live progress until the job ends"),
        ("cancel", "cancel a job"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("job")
    cli_files.add_parsers(commands)
    cli_schedules.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "up":
        return command_up(args)
    client = BatchClient(args.url, args.key)
    try:
        code = run_api_command(args, client)
        sys.stdout.flush()  # inside the try: a reader that went away shows up here when stdout is a pipe
        return code
    except ApiCallError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader closed the pipe (`acibatch status JOB | head -1`): stop quietly, and point stdout at
        # /dev/null so the interpreter's last flush has nowhere to fail.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
        reason = getattr(error, "reason", error)
        print(f"error: cannot reach {args.url}: {reason}", file=sys.stderr)
        return 1
    except (CliError, OSError) as error:  # e.g. the spec file of `submit` is missing or is not JSON
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
