"""The agent's request and schedules with files on the local stack with storage (devhost runs the app, aciemu the
task and its sidecar, Azurite the blobs): a job whose task plus the agent's sidecar exceeds the tenant's quota is a
400 naming the agent's share, a running agent task holds its whole group's cores in the tenant's lease, and a
schedule with files is accepted and its run moves them like a job submitted by hand."""

from __future__ import annotations

import time

import pytest

from localdev.client import ApiCallError, BatchClient
from localdev.localstack import LocalStack
from tests.e2e.conftest import make_tenant, python_job, wait_job

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]
TENANT = "erin"
WRITES = (
    "import os, pathlib, time; time.sleep(3); wd = pathlib.Path(os.environ['AZ_BATCH_TASK_WORKING_DIR']); "
    "(wd / 'out').mkdir(); (wd / 'out' / 'n.txt').write_text('42')"
)
OUTPUTS = [{"filePattern": "out/*.txt", "destination": {"container": {"path": "res"}}}]


@pytest.fixture(scope="module")
def erin(stack: LocalStack) -> BatchClient:
    admin = BatchClient(stack.api_url, stack.admin_key)
    return make_tenant(admin, TENANT, maxGroups=2, maxCores=2, maxMemoryGb=4, weight=1)


def test_a_task_that_only_the_agent_pushes_over_the_quota_is_a_400_naming_its_share(erin: BatchClient) -> None:
    with pytest.raises(ApiCallError) as caught:
        erin.submit(python_job(WRITES, jobId="too-big", cpu=2, memoryGb=1))
    assert (caught.value.status, caught.value.code) == (400, "InvalidJobSpec")
    [detail] = caught.value.details
    assert detail["path"] == "cpu"
    assert "acibatch agent" in detail["message"] and "2 + 0.1 = 2.1 cores" in detail["message"]
    assert "set cpu to at most 1.9" in detail["message"]
    job = {**python_job(WRITES, cpu=2), "outputFiles": OUTPUTS}
    with pytest.raises(ApiCallError) as schedule:
        erin.put_schedule("too-big", {"schedule": {"recurrenceInterval": "PT1H"}, "jobSpecification": job})
    assert (schedule.value.status, schedule.value.code) == (400, "InvalidSchedule")
    assert [item["path"] for item in schedule.value.details] == ["jobSpecification.cpu"]


def test_a_running_agent_task_holds_its_whole_groups_cores(erin: BatchClient) -> None:
    erin.submit(python_job(WRITES, jobId="held", cpu=1, memoryGb=1, outputFiles=OUTPUTS))
    deadline, running = time.monotonic() + 60, {"groups": 0}
    while running["groups"] == 0 and time.monotonic() < deadline:
        running = erin.get_tenant(TENANT)["running"]
        time.sleep(0.2)
    assert (running["groups"], running["cores"], running["memoryGb"]) == (1, 1.1, 1.2)
    job = wait_job(erin, "held", timeout=120)
    assert job["state"] == "Succeeded", job
    # Usage is the lease's core- and GB-seconds (shown rounded to 3 places): the sidecar's share is billed too.
    usage = erin.get_tenant(TENANT)["usage"]
    assert usage["coreSeconds"] > 0 and abs(usage["gbSeconds"] / usage["coreSeconds"] - 1.2 / 1.1) < 1e-3


def test_a_schedule_with_files_runs_them_like_a_submitted_job(erin: BatchClient) -> None:
    spec = {**python_job(WRITES, cpu=0.5, memoryGb=0.5), "outputFiles": OUTPUTS}
    put = erin.put_schedule("nightly-files", {"schedule": {"cron": "0 2 * * *"}, "jobSpecification": spec})
    assert put["jobSpecification"]["outputFiles"][0]["filePattern"] == "out/*.txt"
    triggered = erin.schedule_action("nightly-files", "trigger")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            job = wait_job(erin, triggered["jobId"], timeout=120)
            break
        except ApiCallError as error:  # the schedule's orchestration has not submitted it yet
            assert error.status == 404, error
            time.sleep(0.3)
    assert job["state"] == "Succeeded", job
    files = erin.task_files(triggered["jobId"], "0")["files"]
    assert [(item["name"], item["size"]) for item in files] == [
        (f"jobs/{triggered['jobId']}/tasks/0/outputs/res/n.txt", 2)
    ]
    erin.delete_schedule("nightly-files")
