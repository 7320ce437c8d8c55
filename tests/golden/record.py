"""Record golden histories: run real jobs on the local stack (devhost + aciemu) and keep every orchestration
generation's history exactly as devhost holds it when the generation ends. Tasks run with the acibatch agent (the
`agent` and `agentfail` scenarios) run on a second stack with Azurite, for releases that have it.

Record from a pristine copy of the release the goldens stand for, never from a tree others are editing:

    REPO=$(git rev-parse --show-toplevel)
    mkdir /tmp/golden_src && git -C "$REPO" archive <release> | tar -x -C /tmp/golden_src
    cd /tmp/golden_src && "$REPO/.venv/bin/python" "$REPO/tests/golden/record.py" \\
        --source /tmp/golden_src --release <release> --out "$REPO/tests/golden/histories"

The working directory and `--source` come first on the import path, so the release's packages run, both here
and in devhost's language workers (devhost loads the app from that folder).

Why a hook and not a read of devhost's SQLite store: a continue-as-new replaces the instance's rows in the same
transaction as its last episode, so the store never holds a finished generation. The hook (this file run as
devhost's main module, see `RecordingDevhost`) wraps `Engine.continue_as_new` and `Engine.finish`, the two
places a generation ends, and writes the instance's history as it stands there: what devhost would have stored,
its last episode included. Nothing of devhost's behaviour changes.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CAPTURE_ENV = "GOLDEN_CAPTURE_FILE"
# Scenario job ids start with this, so each scenario's instances are found by id (`job:<tenant>:<job>`, ...).
TENANT = "golden"
HERE = Path(__file__).resolve().parent


# -- the hook, in devhost's process -------------------------------------------------------------------------


def run_hooked_devhost(capture: Path) -> int:
    """devhost's own main with the two generation ends wrapped; each writes one JSON line to `capture`."""
    from devhost import durable
    from devhost.__main__ import main

    def write(instance: Any, end: str) -> None:
        line = {
            "instance": instance.id,
            "name": instance.name,
            "execution": instance.execution_id,
            "end": end,
            "parent": (instance.parent or {}).get("id"),
            "history": instance.history,
        }
        with capture.open("a") as out:
            out.write(json.dumps(line) + "\n")

    continue_as_new: Callable[..., None] = durable.Engine.continue_as_new
    finish: Callable[..., None] = durable.Engine.finish

    def recording_continue_as_new(self: Any, instance: Any, input_text: Any, carried: list[Any]) -> None:
        write(instance, "ContinuedAsNew")
        continue_as_new(self, instance, input_text, carried)

    def recording_finish(self: Any, instance: Any, status: str, output: Any, error: str | None) -> None:
        write(instance, status)
        finish(self, instance, status, output, error)

    durable.Engine.continue_as_new = recording_continue_as_new  # type: ignore[method-assign]
    durable.Engine.finish = recording_finish  # type: ignore[method-assign]
    return main(sys.argv[1:])


# -- the scenarios, in the recorder's process ----------------------------------------------------------------

QUICK = "import acibatch_report as r; r.succeeded({'answer': 42})"
# Exits 3 without calling back on its first attempt (BATCH_ATTEMPT is set by the create activity), then succeeds.
FAILS_ONCE = (
    "import os, sys, acibatch_report as r\n"
    "if os.environ['BATCH_ATTEMPT'] == '1': sys.exit(3)\n"
    "r.succeeded({'attempt': 2})"
)
SLEEPS = "import time; time.sleep(120)"
# Runs long enough for more than WAITS_PER_GENERATION (40) polls at 0.2 s: one continue-as-new mid-run.
RUNS_TEN_SECONDS = "import time, acibatch_report as r; time.sleep(10); r.succeeded({'slept': 10})"
EVICTED_SPOT = "import time, acibatch_report as r; time.sleep(2); r.succeeded({'done': True})"
# Run with the acibatch agent (the storage stack): reads its staged input, writes an output, reports its result; the
# agent's report then ends the attempt.
COUNTS_WORDS = (
    "import os, pathlib, acibatch_report as r\n"
    "wd = pathlib.Path(os.environ['AZ_BATCH_TASK_WORKING_DIR'])\n"
    "words = (wd / 'in' / 'words.txt').read_text().split()\n"
    "(wd / 'out').mkdir(); (wd / 'out' / 'count.txt').write_text(str(len(words)))\n"
    "r.succeeded({'words': len(words)})"
)


def job(code: str, job_id: str, **overrides: Any) -> dict[str, Any]:
    from localdev.localstack import EXAMPLE_WORKER_IMAGE

    spec: dict[str, Any] = {
        "jobId": job_id,
        "image": EXAMPLE_WORKER_IMAGE,
        "command": ["python3", "-c", code],
        "cpu": 1,
        "memoryGb": 1,
        "taskCount": 1,
        "maxAttempts": 2,
        "taskTimeoutSeconds": 60,
    }
    spec.update(overrides)
    if "tasks" in spec:  # a workflow lists its tasks instead of counting them
        spec.pop("taskCount")
    return spec


def run_scenarios(stack: Any) -> dict[str, str]:
    """Run each scenario to its end; returns what each job ended as, by scenario (job id)."""
    from localdev.client import BatchClient
    from tests.e2e.conftest import wait_job
    from tests.e2e.test_engine import add_fault
    from tests.e2e.test_schedules import wait_for as wait_until

    admin = BatchClient(stack.api_url, stack.admin_key)
    quota = {"maxGroups": 10, "maxCores": 10, "maxMemoryGb": 20, "weight": 1}
    client = BatchClient(stack.api_url, admin.put_tenant(TENANT, quota)["apiKey"])
    ended: dict[str, str] = {}

    def submit_and_wait(spec: dict[str, Any]) -> None:
        client.submit(spec)
        ended[spec["jobId"]] = wait_job(client, spec["jobId"])["state"]

    submit_and_wait(job(QUICK, "success", taskCount=2))
    # The first attempt's group cannot be deleted once (a 400 azure-core does not retry): the cleanup activity
    # fails and DTFx's retry interceptor runs it again, so the history holds the interceptor's own events.
    add_fault(stack, {"op": "delete", "fault": "error", "status": 400, "code": "BadRequest", "message": "injected",
                      "count": 1, "match": {"name": "golden-retry*"}})  # fmt: skip
    submit_and_wait(job(FAILS_ONCE, "retry"))
    submit_and_wait(job(SLEEPS, "timeout", taskTimeoutSeconds=3, maxAttempts=1))
    submit_and_wait(job(RUNS_TEN_SECONDS, "generations"))
    # A 429 on the first create: the same attempt is created again after ARM's Retry-After.
    add_fault(stack, {"op": "create", "fault": "throttle", "retryAfter": 1, "count": 1, "match": {"name": "golden-*"}})
    submit_and_wait(job(QUICK, "throttled"))
    # Spot evicted while running: ACI restarts it by itself, and the task moves to Regular (spotFallback).
    add_fault(stack, {"op": "create", "fault": "evict", "afterSeconds": 0.5, "count": 1, "match": {"name": "golden-*"}})
    submit_and_wait(job(EVICTED_SPOT, "spot", priority="Spot", maxAttempts=1))
    client.submit(job(SLEEPS, "cancel"))
    wait_until(lambda: client.job("cancel")["tasks"][0]["state"] == "Running", 60, "the cancel job's task running")
    client.cancel("cancel")
    ended["cancel"] = wait_job(client, "cancel")["state"]
    tasks = [{"id": "A"}, {"id": "B", "dependsOn": {"taskIds": ["A"]}}, {"id": "C", "dependsOn": {"taskIds": ["A"]}}]
    submit_and_wait(job(QUICK, "workflow", tasks=tasks))
    # A schedule that ticks every 2 s: let it start two jobs, then delete it (its orchestration ends).
    every_two_seconds = {"cron": "*/2 * * * * *"}
    scheduled_job = {key: value for key, value in job(QUICK, "").items() if key != "jobId"}
    client.put_schedule("tick", {"schedule": every_two_seconds, "jobSpecification": scheduled_job})
    wait_until(lambda: len(client.schedule("tick").get("recentJobs") or []) >= 2, 60, "two scheduled jobs")
    client.delete_schedule("tick")
    return ended


def run_agent_scenarios(stack: Any, missing_url: str) -> dict[str, str]:
    """Tasks run with the acibatch agent (a stack with storage): one stages an input set in and uploads an output,
    one cannot download its input (preProcessingError). Their specs hold no SAS: a golden must hold none."""
    from localdev.client import BatchClient
    from tests.e2e.conftest import wait_job

    admin = BatchClient(stack.api_url, stack.admin_key)
    quota = {"maxGroups": 10, "maxCores": 10, "maxMemoryGb": 20, "weight": 1}
    client = BatchClient(stack.api_url, admin.put_tenant(TENANT, quota)["apiKey"])
    client.upload_input("words", "words.txt", b"one two three\n")
    outputs = [{"filePattern": "out/*.txt", "destination": {"container": {"path": "results"}}}]
    inputs = [{"autoStorageContainerName": "words", "filePath": "in"}]
    ended: dict[str, str] = {}
    for spec in (
        job(COUNTS_WORDS, "agent", resourceFiles=inputs, outputFiles=outputs),
        job(COUNTS_WORDS, "agentfail", resourceFiles=[{"httpUrl": missing_url, "filePath": "in/words.txt"}]),
    ):
        client.submit(spec)
        ended[spec["jobId"]] = wait_job(client, spec["jobId"])["state"]
    return ended


def run_wave_scenarios(stack: Any) -> dict[str, str]:
    """A chunk that starts its tasks in waves (`BATCH_TASK_WAVES`, issue 29) on a region of one group, so its window
    is two tasks: one job runs to its end, one is cancelled while most of its tasks were never started (the chunk
    ends those Cancelled without starting them)."""
    from localdev.client import BatchClient
    from tests.e2e.conftest import wait_job
    from tests.e2e.test_schedules import wait_for as wait_until

    admin = BatchClient(stack.api_url, stack.admin_key)
    quota = {"maxGroups": 10, "maxCores": 10, "maxMemoryGb": 20, "weight": 1}
    client = BatchClient(stack.api_url, admin.put_tenant(TENANT, quota)["apiKey"])
    ended: dict[str, str] = {}
    client.submit(job(QUICK, "waves", taskCount=5))
    ended["waves"] = wait_job(client, "waves")["state"]
    client.submit(job(SLEEPS, "wavecancel", taskCount=5))
    running = lambda: any(task["state"] == "Running" for task in client.job("wavecancel")["tasks"])  # noqa: E731
    wait_until(running, 60, "a task of the wavecancel job running")
    client.cancel("wavecancel")
    ended["wavecancel"] = wait_job(client, "wavecancel")["state"]
    return ended


def has_task_waves() -> bool:
    """Whether the release being recorded has task waves (`chunk_window`, issue 29's third stop)."""
    from acibatch import plan

    return hasattr(plan, "chunk_window")


def record_wave_scenarios(localstack: Any, data: Path, settings: dict[str, str], secrets: list[str]) -> dict[str, str]:
    """Task waves are a setting of the whole app, and one region group would slow every other scenario: they run on a
    stack of their own (its own data, the same capture file), whose keys join `secrets`."""
    waves = {"BATCH_TASK_WAVES": "true", "ACI_MAX_GROUPS": "1"}
    with localstack.local_stack(data, settings={**settings, **waves}) as stack:
        ended = run_wave_scenarios(stack)
        secrets += [stack.admin_key, stack.aci_token, stack.durable_key, stack.settings["BATCH_CALLBACK_SIGNING_KEY"]]
        time.sleep(2)  # the last generations end
    return ended


@contextmanager
def missing_files_server() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that has no files: the URL of one it answers 404 for."""
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/words.txt"
    finally:
        server.shutdown()
        server.server_close()


def record_agent_scenarios(localstack: Any, data: Path, settings: dict[str, str], secrets: list[str]) -> dict[str, str]:
    """The agent's scenarios need blob storage, which would put every other scenario's task under the agent too:
    they run on a stack of their own (its own data, the same capture file), whose keys join `secrets`. Plain http
    to this machine is allowed so the missing input can be a local URL."""
    local_http = {"BATCH_OUTBOUND_ALLOW_HTTP": "true", "BATCH_OUTBOUND_ALLOW": "127.0.0.1"}
    with (
        missing_files_server() as missing_url,
        localstack.local_stack(data, settings={**settings, **local_http}, storage=True) as stack,
    ):
        ended = run_agent_scenarios(stack, missing_url)
        connection = stack.settings["BATCH_STORAGE_CONNECTION_STRING"]
        account_key = dict(part.split("=", 1) for part in connection.split(";") if "=" in part)["AccountKey"]
        secrets += [stack.admin_key, stack.aci_token, stack.durable_key, account_key,
                    stack.settings["BATCH_CALLBACK_SIGNING_KEY"]]  # fmt: skip
        time.sleep(2)  # the last generations end
    return ended


# -- what is saved -----------------------------------------------------------------------------------------

# What replay reads of each event (`tests/golden/replay.py`); the rest (e.g. EventSent's parent execution) is
# dropped to keep the files small and free of run-specific noise.
KEPT_FIELDS = (
    "EventType", "EventId", "IsPlayed", "Timestamp", "Name", "Input", "Result", "Reason", "Details",
    "TaskScheduledId", "TimerId", "FireAt", "InstanceId", "OrchestrationInstance", "ParentInstance", "Version",
    "OrchestrationStatus",
)  # fmt: skip
# What a golden history must never hold: secrets have no business in a history (the callback token is minted
# inside the create activity and the admin and tenant keys go only into HTTP headers). Checked before writing.
FORBIDDEN = ("BATCH_CALLBACK_TOKEN", "Bearer ", "apiKey", "sig=", "SharedAccessSignature", "AccountKey=")


def without_machine_paths(text: str) -> str:
    """Activity failures carry Python tracebacks: keep their file names relative to the source tree and to
    site-packages, so a golden file names no directory of the machine that recorded it."""
    text = text.replace(f"{Path.cwd()}/", "")
    text = re.sub(r'/[^"\\\s]*/site-packages/', "site-packages/", text)
    return re.sub(r'/[^"\\\s]*/lib/python3\.\d+/', "python/", text)


def trimmed(event: dict[str, Any]) -> dict[str, Any]:
    return {name: event[name] for name in KEPT_FIELDS if name in event}


def as_text(document: dict[str, Any]) -> str:
    """JSON with one history event per line: small, and a re-recording diffs event by event."""
    generations = []
    for generation in document["generations"]:
        head = json.dumps({key: value for key, value in generation.items() if key != "history"})
        events = ",\n   ".join(json.dumps(event, sort_keys=True) for event in generation["history"])
        generations.append(f'{head[:-1]}, "history": [\n   {events}\n  ]}}')
    head = json.dumps({key: value for key, value in document.items() if key != "generations"})
    return f'{head[:-1]}, "generations": [\n  ' + ",\n  ".join(generations) + "\n]}\n"


def captures(path: Path) -> Iterator[dict[str, Any]]:
    with path.open() as lines:
        for line in lines:
            yield json.loads(line)


def belongs_to(instance: str, scenario: str) -> bool:
    """Job, chunk and task instances carry `<tenant>:<job>`; a schedule's carries `<tenant>:<schedule>`."""
    return f":{TENANT}:{scenario}:" in f"{instance}:"


def save(capture: Path, out: Path, scenarios: list[str], release: str, secrets: list[str]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    records = list(captures(capture))
    for scenario in scenarios:
        generations: list[dict[str, Any]] = []
        per_instance: dict[str, int] = {}
        for record in records:
            if not belongs_to(record["instance"], scenario):
                continue
            per_instance[record["instance"]] = per_instance.get(record["instance"], 0) + 1
            generations.append({
                "instance": record["instance"],
                "orchestrator": record["name"],
                "generation": per_instance[record["instance"]],
                "end": record["end"],
                "history": [trimmed(event) for event in record["history"]],
            })  # fmt: skip
        if not generations:
            raise SystemExit(f"record: scenario {scenario} left no orchestration histories")
        document = {"release": release, "scenario": scenario, "generations": generations}
        text = without_machine_paths(as_text(document))
        leaked = [word for word in (*FORBIDDEN, *secrets) if word and word in text]
        if leaked:
            raise SystemExit(f"record: scenario {scenario}'s history holds {len(leaked)} secret-like strings")
        path = out / f"{scenario}.json"
        path.write_text(text)
        written.append(path)
    return written


GROUPS = ("release", "agent", "waves")  # the scenario groups, each on a stack of its own (`--only`)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="pristine copy of the release to record")
    parser.add_argument("--release", required=True, help="the commit the source is (stored in each file)")
    parser.add_argument("--out", type=Path, default=HERE / "histories")
    parser.add_argument("--data", type=Path, default=Path("/tmp/golden_record"), help="the stack's data folder")
    parser.add_argument(
        "--only", nargs="+", choices=GROUPS, default=None,
        help="record only these groups of scenarios: a new feature's, leaving the other files as they are",
    )  # fmt: skip
    args = parser.parse_args()
    source = args.source.resolve()
    if Path.cwd().resolve() != source:
        raise SystemExit(f"record: run from the source copy (cd {source}) so its packages win in every process")
    sys.path.insert(0, str(source))
    from devhost.launcher import DevhostProcess
    from localdev import localstack

    capture = args.data / "capture.jsonl"
    capture.unlink(missing_ok=True)

    class RecordingDevhost(DevhostProcess):
        """devhost started through this file's hook: the module `record` found on PYTHONPATH (this folder)."""

        module = "record"

        def __init__(self, *given: Any, **options: Any) -> None:
            super().__init__(*given, **options)
            self.env[CAPTURE_ENV] = str(capture)
            self.env["PYTHONPATH"] = os.pathsep.join([str(source), str(HERE)])

    setattr(localstack, "DevhostProcess", RecordingDevhost)  # noqa: B010  (local_stack starts what this names)
    settings = {"BATCH_POLL_SECONDS": "0.2", "BATCH_SWEEP_SCHEDULE": "0 0 0 1 1 *"}
    # Releases since issue 24 (the agent) and issue 29 (task waves); an older release records without them.
    has = {"agent": "storage" in inspect.signature(localstack.local_stack).parameters, "waves": has_task_waves()}
    asked = args.only or list(GROUPS)
    missing = [group for group, present in has.items() if group in asked and not present]
    if missing and args.only:  # asked for by name: a release without the feature has nothing to record
        raise SystemExit(f"record: release {args.release} has no {', '.join(missing)} scenarios to record")
    ended: dict[str, str] = {}
    secrets: list[str] = []
    scenarios: list[str] = []
    if "release" in asked:
        with localstack.local_stack(args.data, settings=settings) as stack:
            ended.update(run_scenarios(stack))
            secrets += [stack.admin_key, stack.aci_token, stack.durable_key,
                        stack.settings["BATCH_CALLBACK_SIGNING_KEY"]]  # fmt: skip
            time.sleep(2)  # the last generations (schedule deleted, stale timers) end
        scenarios.append("tick")
    if "agent" in asked and has["agent"]:
        ended.update(record_agent_scenarios(localstack, args.data / "storage", settings, secrets))
    if "waves" in asked and has["waves"]:
        ended.update(record_wave_scenarios(localstack, args.data / "waves", settings, secrets))
    for path in save(capture, args.out, [*ended, *scenarios], args.release, secrets):
        print(f"record: wrote {path} ({path.stat().st_size} bytes)")
    print(f"record: jobs ended {ended}")
    return 0


if __name__ == "__main__":
    hooked = os.environ.get(CAPTURE_ENV)
    sys.exit(run_hooked_devhost(Path(hooked)) if hooked else main())
