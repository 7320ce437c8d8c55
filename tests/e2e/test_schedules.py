"""Job schedules on the local stack, with crons that fire every few seconds (6 fields, seconds first): jobs
appear under their derived ids at the right instants; Forbid skips and says why; Replace cancels and replaces;
suspend, resume, trigger and delete do what they say; a tenant never sees another's schedules; a devhost
kill -9 across a tick neither loses nor duplicates it."""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from acibatch.schedules import schedule_instance_id
from localdev.client import ApiCallError, BatchClient
from localdev.localstack import LocalStack
from tests.e2e.conftest import make_tenant, python_job
from tests.reliability.test_crash_and_faults import stack as crash_stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
QUICK = "import acibatch_report as r; r.succeeded({'ok': True})"
SECRET = secrets.token_hex(16)
# The secure value reaches the container intact (compared by hash, so the spec holds no secret).
CHECKS_SECRET = (
    "import hashlib, os, acibatch_report as r; "
    "ok = hashlib.sha256(os.environ['API_TOKEN'].encode()).hexdigest() == '{digest}'; "
    "r.succeeded({{'ok': True}}) if ok else r.failed('the secure value changed', 3)"
)
SLEEPS = "import time, acibatch_report as r; time.sleep({seconds}); r.succeeded({{'ok': True}})"


def schedule_body(cron: str, code: str = QUICK, **fields: Any) -> dict[str, Any]:
    job = python_job(code, maxAttempts=1)
    return {"schedule": {"cron": cron}, "jobSpecification": job, **fields}


def instant_of(job_id: str) -> datetime:
    return datetime.strptime(job_id.rsplit(".", 1)[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def jobs_of(client: BatchClient, schedule_id: str) -> dict[str, dict[str, Any]]:
    """The tenant's jobs started by the schedule (by id), scheduled and manual."""
    listed = client.jobs(limit=500)["jobs"]
    return {job["jobId"]: job for job in listed if job["jobId"].startswith(f"{schedule_id}.")}


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except OSError:
            found = None  # the host is restarting
        if found:
            return found
        assert time.monotonic() < deadline, what
        time.sleep(0.25)


def orchestration_status(stack_host: str, durable_key: str, instance: str) -> str | None:
    request = urllib.request.Request(
        f"{stack_host}/runtime/webhooks/durabletask/instances/{instance}", headers={"x-functions-key": durable_key}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(json.loads(response.read())["runtimeStatus"])
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise


def test_ticks_become_jobs_with_derived_ids_at_their_instants_then_delete_stops_them(
    stack: LocalStack, admin: BatchClient
) -> None:
    tenant = make_tenant(admin, "sched-ticks")
    body = schedule_body("*/3 * * * * *", CHECKS_SECRET.format(digest=hashlib.sha256(SECRET.encode()).hexdigest()))
    body["jobSpecification"]["secureEnv"] = {"API_TOKEN": SECRET}
    created = tenant.put_schedule("every3", body)
    assert created["applied"] is True and created["timeZone"] == "UTC"
    assert created["jobSpecification"]["secureEnv"] == {"API_TOKEN": "(hidden)"} and SECRET not in json.dumps(created)
    assert created["jobSpecification"]["taskCount"] == 1 and created["schedule"] == {"cron": "*/3 * * * * *"}
    runs = [parse_time(run) for run in created["nextRuns"]]
    assert len(runs) == 5 and all(
        later - earlier == timedelta(seconds=3) for earlier, later in itertools.pairwise(runs)
    )
    assert all(run.second % 3 == 0 and run.utcoffset() == timedelta(0) for run in runs)

    jobs = wait_for(lambda: len(jobs_of(tenant, "every3")) >= 3 and jobs_of(tenant, "every3"), 40, "3 ticks")
    instants = sorted(instant_of(job_id) for job_id in jobs)
    assert all(moment.second % 3 == 0 for moment in instants)
    assert instants[0] >= runs[0]  # nothing ran for a tick before the schedule existed
    for job_id, job in jobs.items():
        # Submitted at its instant: after it, and within one interval (a timer fires a little late, never early).
        lag = (parse_time(job["createdAt"]) - instant_of(job_id)).total_seconds()
        assert 0 <= lag < 3, (job_id, job["createdAt"])
    shown = tenant.schedule("every3")
    assert shown["counts"]["submitted"] >= 3 and shown["lastRun"]["jobId"] in jobs_of(tenant, "every3")
    assert shown["orchestration"] == "Running"
    # Each run gets the schedule's secure value, which no answer shows.
    first_job = min(jobs, key=instant_of)
    assert wait_for(lambda: tenant.job(first_job, limit=0)["state"] == "Succeeded", 30, f"{first_job} failed")

    # Another tenant neither sees nor touches it.
    other = make_tenant(admin, "sched-other")
    assert other.schedules() == {"schedules": [], "total": 0}
    for call in (lambda: other.schedule("every3"), lambda: other.schedule_action("every3", "trigger")):
        with pytest.raises(ApiCallError) as missing:
            call()
        assert missing.value.status == 404
    assert [item["scheduleId"] for item in tenant.schedules()["schedules"]] == ["every3"]

    deleted = tenant.delete_schedule("every3")
    assert deleted == {"scheduleId": "every3", "deleted": True, "applied": True}
    kept = jobs_of(tenant, "every3")
    time.sleep(4)  # more than one interval: no tick runs any more
    assert set(jobs_of(tenant, "every3")) == set(kept)
    for job_id in kept:
        assert tenant.job(job_id, limit=0)["jobId"] == job_id  # its jobs are left alone
    with pytest.raises(ApiCallError) as gone:
        tenant.schedule("every3")
    assert gone.value.status == 404 and tenant.schedules()["total"] == 0
    instance = schedule_instance_id("sched-ticks", "every3")
    assert orchestration_status(stack.host_url, stack.durable_key, instance) == "Terminated"


def test_forbid_skips_ticks_while_its_job_runs_and_says_so(stack: LocalStack, admin: BatchClient) -> None:
    tenant = make_tenant(admin, "sched-forbid")
    tenant.put_schedule("forbid", schedule_body("*/2 * * * * *", SLEEPS.format(seconds=5), concurrencyPolicy="Forbid"))

    def skipped() -> Any:
        shown = tenant.schedule("forbid")
        return shown["counts"]["skipped"] >= 2 and shown["counts"]["submitted"] >= 2 and shown

    shown = wait_for(skipped, 60, "Forbid never skipped a tick")
    tenant.delete_schedule("forbid")
    assert "concurrencyPolicy is Forbid and job forbid." in shown["lastSkip"]["reason"]
    assert "is still running" in shown["lastSkip"]["reason"]
    jobs = sorted(jobs_of(tenant, "forbid").items(), key=lambda item: instant_of(item[0]))
    # Never two at once: each job was submitted after the one before it had finished.
    finished = [tenant.job(job_id, limit=0) for job_id, _ in jobs[:-1]]
    for before, (_, after) in zip(finished, jobs[1:], strict=True):
        assert before["finishedAt"] is not None
        assert parse_time(after["createdAt"]) >= parse_time(before["finishedAt"])


def test_replace_cancels_the_running_job_and_starts_the_new_one(stack: LocalStack, admin: BatchClient) -> None:
    tenant = make_tenant(admin, "sched-replace")
    tenant.put_schedule(
        "replace", schedule_body("*/4 * * * * *", SLEEPS.format(seconds=60), concurrencyPolicy="Replace")
    )
    jobs = wait_for(lambda: len(jobs_of(tenant, "replace")) >= 2 and jobs_of(tenant, "replace"), 40, "no 2nd tick")
    tenant.delete_schedule("replace")
    first, second = sorted(jobs, key=instant_of)[:2]
    assert wait_for(lambda: tenant.job(first, limit=0)["state"] == "Cancelled", 40, f"{first} not cancelled")
    later = sorted(jobs_of(tenant, "replace"), key=instant_of)
    # The newest job runs on; the schedule's deletion leaves it alone.
    assert tenant.job(later[-1], limit=0)["state"] in {"Queued", "Running"}
    assert second in later
    for job_id in later:
        if tenant.job(job_id, limit=0)["state"] in {"Queued", "Running"}:
            tenant.cancel(job_id)


def test_suspend_resume_and_trigger(stack: LocalStack, admin: BatchClient) -> None:
    tenant = make_tenant(admin, "sched-suspend")
    tenant.put_schedule("pausable", schedule_body("*/2 * * * * *"))
    wait_for(lambda: jobs_of(tenant, "pausable"), 30, "no first tick")

    suspended = tenant.schedule_action("pausable", "suspend")
    assert suspended["suspended"] is True and suspended["nextRuns"] == [] and suspended["applied"] is True
    paused_at = datetime.now(UTC)
    time.sleep(5)  # two intervals and more
    scheduled = [job_id for job_id in jobs_of(tenant, "pausable") if ".manual." not in job_id]
    # A tick already being submitted when the suspension arrived may still land; none after it.
    assert all(instant_of(job_id) <= paused_at + timedelta(seconds=1) for job_id in scheduled)

    triggered = tenant.schedule_action("pausable", "trigger")
    assert triggered["jobId"] == f"pausable.manual.{triggered['scheduledFor'].replace('-', '').replace(':', '')}"
    wait_for(lambda: triggered["jobId"] in jobs_of(tenant, "pausable"), 20, "the trigger ran no job")

    # Taken before the call: a tick due while the resume request is in flight may rightly run once it applies.
    resumed_at = datetime.now(UTC)
    resumed = tenant.schedule_action("pausable", "resume")
    assert resumed["suspended"] is False and len(resumed["nextRuns"]) == 5
    after = wait_for(
        lambda: [j for j in jobs_of(tenant, "pausable") if ".manual." not in j and instant_of(j) > resumed_at],
        20,
        "no tick after resume",
    )
    # Resuming never catches up on the suspended time: no tick between the pause and the resume ran.
    skipped_window = [
        job_id
        for job_id in jobs_of(tenant, "pausable")
        if ".manual." not in job_id and paused_at + timedelta(seconds=1) < instant_of(job_id) <= resumed_at
    ]
    assert after and skipped_window == []
    tenant.delete_schedule("pausable")


def test_bad_schedules_are_400s_that_say_what_to_fix(stack: LocalStack, admin: BatchClient) -> None:
    tenant = make_tenant(admin, "sched-bad")
    body = schedule_body("0 2 * * *")
    body["schedule"] = {"cron": "0 25 * * *", "timeZone": "Europe/Nowhere"}
    with pytest.raises(ApiCallError) as bad:
        tenant.put_schedule("bad", body)
    assert bad.value.status == 400 and bad.value.code == "InvalidSchedule"
    paths = {item["path"]: item["message"] for item in bad.value.details}
    assert "not a valid cron expression" in paths["schedule.cron"]
    assert "'Europe/Nowhere' is not an IANA time zone name" in paths["schedule.timeZone"]
    with pytest.raises(ApiCallError) as bad_id:
        tenant.put_schedule("has.dot", schedule_body("0 2 * * *"))
    assert bad_id.value.status == 400 and "no '.'" in bad_id.value.message
    with pytest.raises(ApiCallError) as as_admin:
        admin.put_schedule("nightly", schedule_body("0 2 * * *"))
    assert as_admin.value.status == 403


def test_the_cli_manages_a_schedule_and_prints_its_next_runs_in_its_zone(
    stack: LocalStack, admin: BatchClient, tmp_path: Path
) -> None:
    tenant = make_tenant(admin, "sched-cli")
    body = schedule_body("30 2 * * *")
    body["schedule"]["timeZone"] = "America/New_York"
    schedule_file = tmp_path / "nightly.json"
    schedule_file.write_text(json.dumps({"scheduleId": "nightly", **body}))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "localdev.cli", "--url", stack.api_url, "--key", str(tenant.key)]
        return subprocess.run([*command, "schedule", *args], capture_output=True, text=True, timeout=60, check=False)

    created = cli("create", str(schedule_file))
    assert created.returncode == 0, created.stderr
    runs = [line.strip() for line in created.stdout.splitlines() if line.startswith("    ")]
    assert len(runs) == 5 and all(" 02:30:00 E" in run and run[-3:] in {"EST", "EDT"} for run in runs), runs
    assert "nightly  30 2 * * *  (America/New_York)  active  policy Allow" in created.stdout
    listed = cli("list")
    assert listed.stdout.startswith("nightly  30 2 * * *  active  next ") and " 02:30:00 E" in listed.stdout
    assert "next runs: none" in cli("suspend", "nightly").stdout
    assert " 02:30:00 E" in cli("resume", "nightly").stdout
    triggered = cli("trigger", "nightly")
    assert triggered.stdout.startswith("triggered nightly: job nightly.manual.")
    assert cli("delete", "nightly").stdout.strip() == "deleted nightly (its jobs are kept)"
    gone = cli("show", "nightly")
    assert gone.returncode == 1 and "schedule 'nightly' does not exist" in gone.stderr
    missing_id = cli("create", str(tmp_path / "absent.json"))
    assert missing_id.returncode == 1 and "absent.json" in missing_id.stderr


@pytest.mark.timeout(300)
def test_a_devhost_kill_across_a_tick_neither_loses_nor_duplicates_it(tmp_path: Path) -> None:
    interval = 15
    with crash_stack(tmp_path) as running:
        admin = BatchClient(running.api, running.settings["BATCH_ADMIN_KEY"])
        tenant = make_tenant(admin, "sched-crash")
        tenant.put_schedule("crash", schedule_body(f"*/{interval} * * * * *"))
        first = instant_of(wait_for(lambda: sorted(jobs_of(tenant, "crash")), 40, "no first tick")[0])

        # Kill -9 just before the next tick, start again: the tick comes due while the host is down.
        next_tick = first + timedelta(seconds=interval)
        time.sleep(max(0.0, (next_tick - datetime.now(UTC)).total_seconds() - 1.0))
        running.kill_host()
        time.sleep(1.5)
        running.start_host()
        # And kill -9 again just after the tick after it: while that tick is being submitted.
        after = next_tick + timedelta(seconds=interval)
        time.sleep(max(0.0, (after - datetime.now(UTC)).total_seconds() + 0.3))
        running.kill_host()
        running.start_host()

        third = after + timedelta(seconds=interval)
        jobs = wait_for(
            lambda: any(instant_of(j) >= third for j in jobs_of(tenant, "crash")) and jobs_of(tenant, "crash"),
            60,
            "the schedule stopped after the restarts",
        )
        instants = sorted(instant_of(job_id) for job_id in jobs)
        expected = [first + timedelta(seconds=interval * n) for n in range(len(instants))]
        assert instants == expected  # every tick once: none lost, none twice
        shown = tenant.schedule("crash")
        assert shown["counts"]["missed"] == 0
        assert shown["counts"]["submitted"] >= len(instants) - 1  # the newest may not be recorded yet
        assert shown["counts"]["submitted"] <= len(instants)
        tenant.delete_schedule("crash")
