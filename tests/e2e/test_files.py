"""Issue 24's "done when", end to end on one storage stack (devhost runs the app, aciemu the tasks and the agent
beside them, Azurite the blobs; real processes, real HTTP): input files in every form staged in and three output
patterns uploaded, listed and downloaded; a 50 MB log kept whole after its group is gone; a missing input and an
unwritable destination failing with their Batch categories and leaving nothing behind; and no account key or SAS
the app minted anywhere in the run's answers, data or logs (a tenant's own SAS only in the job it submitted).

The four jobs run at once (one fixture submits them) on one tenant, so the file costs one stack and one wait.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient, ContainerSasPermissions, generate_container_sas

from acibatch.aci import AciGateway, make_client
from localdev.client import ApiCallError
from localdev.localstack import LOCAL_RESOURCE_GROUP, LOCAL_SUBSCRIPTION, LocalStack, local_stack
from localtools.azurite import find_azurite
from tests.conftest import AZURITE_MISSING, STORAGE_STACK_SETTINGS
from tests.e2e.conftest import python_job, wait_job, wait_no_groups
from tests.folderserve import serving_folder
from tests.leakcheck import Recorded, RecordingClient, find_leaks, read_files, sas_signatures

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]

TENANT = "dana"
OUTPUTS = "jobs/files/tasks/0/outputs/"  # the default destination's prefix for job `files`, task 0
LOG_LINES = 50 * 1024  # 1 KiB lines: a 50 MiB log
# Reads the three kinds of input and writes files some output patterns match and some must not.
FILES_TASK = """
import json, os, pathlib
os.chdir(os.environ['AZ_BATCH_TASK_WORKING_DIR'])
read = lambda name: pathlib.Path(name).read_text()
got = {name: read(name) for name in ('auto/a.txt', 'auto/sub/b.txt', 'own/sets/c.txt', 'web/hello.txt')}
for folder in ('out/deep/x', 'reports'):
    pathlib.Path(folder).mkdir(parents=True, exist_ok=True)
files = {'out/summary.json': json.dumps(got, sort_keys=True), 'out/top.txt': 'top', 'out/deep/x/notes.txt': 'deep',
         'reports/a-1.csv': '1,2', 'reports/ab-2.csv': 'not matched', 'out/skip.log': 'not matched',
         'out/.hidden.json': 'a dotfile'}
for name, text in files.items():
    pathlib.Path(name).write_text(text)
print('staged', sorted(got))
"""
INPUT_TEXTS = {"auto/a.txt": "alpha", "auto/sub/b.txt": "beta", "own/sets/c.txt": "gamma", "web/hello.txt": "hello"}
EXPECTED_OUTPUTS = {  # blob name -> (file relative to the working directory, its content)
    OUTPUTS + "json/summary.json": ("out/summary.json", json.dumps(INPUT_TEXTS, sort_keys=True)),
    OUTPUTS + "txt/top.txt": ("out/top.txt", "top"),
    OUTPUTS + "txt/deep/x/notes.txt": ("out/deep/x/notes.txt", "deep"),
    OUTPUTS + "a-1.csv": ("reports/a-1.csv", "1,2"),
}
BIG_LOG_TASK = (
    "import sys\nfor n in range(%d):\n    sys.stdout.write('%%08d' %% n + 'z' * 1015 + '\\n')\n" % LOG_LINES  # noqa: UP031
)
WRITES = "import os, pathlib; wd = os.environ['AZ_BATCH_TASK_WORKING_DIR']\n"
NO_WRITE_TASK = WRITES + "pathlib.Path(wd, 'ok.txt').write_text('complete'); pathlib.Path(wd, 'r.txt').write_text('x')"


def big_log() -> bytes:
    return b"".join(b"%08d" % n + b"z" * 1015 + b"\n" for n in range(LOG_LINES))


@pytest.fixture(scope="module")
def storage_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A storage stack of this module's own (it overrides the shared one): the leak grep reads every data file of
    the stack, and other modules' tenants put SAS of their own in their job specs, which the stored jobs keep."""
    if find_azurite() is None:
        pytest.skip(AZURITE_MISSING)
    data = tmp_path_factory.mktemp("files-stack")
    with local_stack(data, settings=STORAGE_STACK_SETTINGS, storage=True) as running:
        yield running


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An HTTP server of a folder holding hello.txt (and nothing else: other names are 404)."""
    folder = tmp_path_factory.mktemp("web")
    (folder / "hello.txt").write_text("hello")
    with serving_folder(folder) as url:
        yield url


@pytest.fixture(scope="module")
def recorded() -> Recorded:
    return Recorded()


@pytest.fixture(scope="module")
def service(storage_stack: LocalStack) -> Iterator[BlobServiceClient]:
    with BlobServiceClient.from_connection_string(storage_stack.settings["BATCH_STORAGE_CONNECTION_STRING"]) as client:
        yield client


def tenant_sas(service: BlobServiceClient, container: str, **permission: bool) -> str:
    return generate_container_sas(
        str(service.account_name), container, account_key=service.credential.account_key,
        permission=ContainerSasPermissions(**permission), expiry=datetime.now(UTC) + timedelta(hours=1),
    )  # fmt: skip


@pytest.fixture(scope="module")
def own_containers(service: BlobServiceClient) -> dict[str, str]:
    """The tenant's own containers as container URLs with SAS it made: one to read inputs from (read + list), one
    it may only read (an output destination that refuses writes)."""
    data = service.create_container("dana-data")
    data.upload_blob("sets/c.txt", b"gamma")
    data.upload_blob("elsewhere/d.txt", b"not under the prefix")
    readonly = service.create_container("dana-readonly")
    return {
        "data": f"{data.url}?{tenant_sas(service, 'dana-data', read=True, list=True)}",
        "readonly": f"{readonly.url}?{tenant_sas(service, 'dana-readonly', read=True, list=True)}",
    }


@pytest.fixture(scope="module")
def admin(storage_stack: LocalStack, recorded: Recorded) -> RecordingClient:
    return RecordingClient(storage_stack.api_url, storage_stack.admin_key, recorded)


@pytest.fixture(scope="module")
def dana(admin: RecordingClient, recorded: Recorded) -> RecordingClient:
    quota = {"maxGroups": 4, "maxCores": 4, "maxMemoryGb": 4, "weight": 1}
    created = admin.put_tenant(TENANT, quota)
    return RecordingClient(admin.api_url, created["apiKey"], recorded)


class ManifestHarvest:
    """Reads the agent's manifest (the SAS the app minted) out of running sidecars through /proc, while the jobs
    run: the test can then look for those exact signatures too, not only for the `sig=` pattern."""

    def __init__(self) -> None:
        self.signatures: set[str] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.wait(0.1):
            for proc in Path("/proc").iterdir():
                try:
                    if b"acibatch_agent\0sidecar" in (proc / "cmdline").read_bytes():
                        manifest = (proc / "root" / "acibatch-secrets" / "manifest.json").read_bytes()
                        self.signatures |= sas_signatures(manifest)
                except OSError:  # not a process, gone, or not readable
                    continue


def cli(stack: LocalStack, key: str, recorded: Recorded, *args: str) -> subprocess.CompletedProcess[bytes]:
    command = [sys.executable, "-m", "localdev.cli", "--url", stack.api_url, "--key", key, *args]
    done = subprocess.run(command, capture_output=True, timeout=120, check=False)
    recorded.add(f"cli {args[0]} stdout", done.stdout)
    recorded.add(f"cli {args[0]} stderr", done.stderr)
    return done


@pytest.fixture(scope="module")
def run(
    storage_stack: LocalStack, dana: RecordingClient, recorded: Recorded, web: str, own_containers: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:  # fmt: skip
    """The four jobs, submitted together and waited for; `signatures` the minted SAS seen in the agents' manifests."""
    (upload := tmp_path_factory.mktemp("upload") / "letters" / "sub").mkdir(parents=True)
    (upload.parent / "a.txt").write_text("alpha")
    (upload / "b.txt").write_text("beta")
    done = cli(storage_stack, dana.key or "", recorded, "upload", "letters", str(upload.parent))
    assert done.returncode == 0, done.stderr
    light: dict[str, Any] = {"cpu": 0.5, "memoryGb": 0.5, "maxAttempts": 2}
    inputs = [
        {"autoStorageContainerName": "letters", "filePath": "auto"},
        {"storageContainerUrl": own_containers["data"], "blobPrefix": "sets/", "filePath": "own"},
        {"httpUrl": f"{web}/hello.txt", "filePath": "web/hello.txt"},
    ]
    outputs = [
        {"filePattern": "out/*.json", "destination": {"container": {"path": "json"}}},
        {"filePattern": "out/**/*.txt", "destination": {"container": {"path": "txt"}}},
        {"filePattern": "reports/?-*.csv"},
    ]
    unwritable = {"container": {"containerUrl": own_containers["readonly"], "path": "r.txt"}}
    specs = [
        python_job(FILES_TASK, jobId="files", resourceFiles=inputs, outputFiles=outputs, **light),
        python_job(BIG_LOG_TASK, jobId="biglog", **light),
        python_job(WRITES, jobId="noinput", resourceFiles=[{"httpUrl": f"{web}/missing.csv", "filePath": "m.csv"}],
                   **light),
        python_job(NO_WRITE_TASK, jobId="nowrite", outputFiles=[
            {"filePattern": "ok.txt", "destination": {"container": {"path": "ok.txt"}}},
            {"filePattern": "r.txt", "destination": unwritable},
        ], **light),
    ]  # fmt: skip
    harvest = ManifestHarvest()
    harvest.thread.start()
    try:
        for spec in specs:
            dana.submit(spec)
        jobs = {spec["jobId"]: wait_job(dana, spec["jobId"], timeout=120) for spec in specs}
    finally:
        harvest.stop.set()
        harvest.thread.join()
    yield {"jobs": jobs, "signatures": harvest.signatures}


def no_groups_left(stack: LocalStack, job_id: str) -> list[str]:
    gateway = AciGateway(make_client(LOCAL_SUBSCRIPTION, stack.aci_url, token=stack.aci_token), LOCAL_RESOURCE_GROUP)
    return wait_no_groups(gateway, f"{TENANT}-{job_id}")


def sha(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def test_inputs_in_every_form_are_staged_and_three_patterns_upload_listed_and_downloadable(
    storage_stack: LocalStack, service: BlobServiceClient, dana: RecordingClient, recorded: Recorded,
    run: dict[str, Any], tmp_path: Path,
) -> None:  # fmt: skip
    job = run["jobs"]["files"]
    assert job["state"] == "Succeeded", job["tasks"]
    tenant_container: ContainerClient = service.get_container_client(f"acb-{TENANT}")
    stored = {blob.name for blob in tenant_container.list_blobs(name_starts_with=OUTPUTS)}
    # Exactly the matches: not the dotfile `*.json` does not name, `ab-2.csv` (`?` is one character), `skip.log`.
    assert stored == set(EXPECTED_OUTPUTS)
    for name, (_, text) in EXPECTED_OUTPUTS.items():
        assert tenant_container.download_blob(name).readall() == text.encode(), name
    summary = json.loads(tenant_container.download_blob(OUTPUTS + "json/summary.json").readall())
    assert summary == INPUT_TEXTS  # every input form landed where Batch puts it, with its content
    listing = dana.task_files("files", "0")
    listed = {
        item["name"]: (item["file"], item["size"], item["sha256"], item["destination"]) for item in listing["files"]
    }
    expected = {name: (file, len(text), sha(text), "default") for name, (file, text) in EXPECTED_OUTPUTS.items()}
    assert listing["attempt"] == 1 and listed == expected
    done = cli(storage_stack, dana.key or "", recorded, "download", "files", "--to", str(tmp_path))
    assert done.returncode == 0, done.stderr
    downloaded = {str(path.relative_to(tmp_path)): path.read_text() for path in tmp_path.rglob("*") if path.is_file()}
    assert downloaded == {"0/" + name[len(OUTPUTS) :]: text for name, (_, text) in EXPECTED_OUTPUTS.items()}


def test_a_50_mb_log_is_read_whole_after_its_group_is_deleted(
    storage_stack: LocalStack, dana: RecordingClient, recorded: Recorded, run: dict[str, Any]
) -> None:
    assert run["jobs"]["biglog"]["state"] == "Succeeded", run["jobs"]["biglog"]["tasks"]
    assert no_groups_left(storage_stack, "biglog") == []  # ACI's own log is gone with the group
    done = cli(storage_stack, dana.key or "", recorded, "logs", "biglog", "0")
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(done.stdout) == LOG_LINES * 1024
    assert sha(done.stdout) == sha(big_log())
    last = dana.log_page("biglog", "0", tail=1)
    assert last.complete and last.content == b"%08d" % (LOG_LINES - 1) + b"z" * 1015 + b"\n"


def test_a_missing_input_and_an_unwritable_destination_fail_with_their_category_and_leave_nothing(
    storage_stack: LocalStack, service: BlobServiceClient, admin: RecordingClient, dana: RecordingClient,
    run: dict[str, Any],
) -> None:  # fmt: skip
    [missing] = run["jobs"]["noinput"]["tasks"]
    assert (missing["state"], missing.get("failureCategory"), missing["attempts"]) == (
        "Failed", "preProcessingError", 1
    )  # fmt: skip
    assert "m.csv" in missing["error"]
    [unwritable] = run["jobs"]["nowrite"]["tasks"]
    assert (unwritable["state"], unwritable.get("failureCategory"), unwritable["attempts"]) == (
        "Failed", "fileUploadError", 1
    )  # fmt: skip
    assert "r.txt" in unwritable["error"]
    assert list(service.get_container_client("dana-readonly").list_blobs()) == []
    tenant_container = service.get_container_client(f"acb-{TENANT}")
    # Uploads go in outputFiles' order and stop at the first failure: ok.txt went whole before r.txt failed, and
    # only it is listed; nothing is listed for a task whose inputs failed (its command never ran).
    for job_id, complete in (("noinput", []), ("nowrite", ["ok.txt"])):
        assert no_groups_left(storage_stack, job_id) == []
        listed = dana.task_files(job_id, "0")["files"]
        assert [item["file"] for item in listed] == complete
        for item in listed:
            blob = tenant_container.download_blob(item["name"]).readall()
            assert (len(blob), sha(blob)) == (item["size"], item["sha256"]) == (8, sha("complete"))
    deadline = time.monotonic() + 20
    while (usage := admin.get_tenant(TENANT))["running"]["groups"] and time.monotonic() < deadline:
        time.sleep(0.3)
    assert (usage["running"]["groups"], usage["queued"]) == (0, 0)  # every lease released


def storage_secrets(stack: LocalStack) -> dict[str, str]:
    parts = stack.settings["BATCH_STORAGE_CONNECTION_STRING"].split(";")
    connection = dict(part.split("=", 1) for part in parts if part)
    return {"the account key": connection["AccountKey"]}


def tenant_signatures(own_containers: dict[str, str]) -> set[str]:
    return {urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["sig"][0] for url in own_containers.values()}


def show_tenant_sas_back(dana: RecordingClient, own_containers: dict[str, str]) -> dict[str, Any]:
    """Answers that could echo the tenant's SAS: a schedule's job spec (answered back whole) and a refused job."""
    inputs = [{"storageContainerUrl": own_containers["data"], "filePath": "own"}]
    outputs = [{"filePattern": "*.txt", "destination": {"container": {"containerUrl": own_containers["readonly"]}}}]
    job = python_job("pass", resourceFiles=inputs, outputFiles=outputs)
    dana.put_schedule("never", {"schedule": {"cron": "0 0 0 1 1 *"}, "suspend": True, "jobSpecification": job})
    with pytest.raises(ApiCallError) as refused:
        dana.submit({**job, "resourceFiles": [{**inputs[0], "fileMode": "999"}]})
    assert refused.value.status == 400 and "fileMode" in str(refused.value)
    shown: dict[str, Any] = dana.schedule("never")["jobSpecification"]
    dana.delete_schedule("never")
    return shown


def test_no_answer_file_or_log_holds_the_key_or_a_minted_sas_and_tenant_sas_is_redacted(
    storage_stack: LocalStack, dana: RecordingClient, recorded: Recorded, run: dict[str, Any],
    own_containers: dict[str, str],
) -> None:  # fmt: skip
    shown = show_tenant_sas_back(dana, own_containers)
    assert shown["resourceFiles"][0]["storageContainerUrl"] == own_containers["data"].split("?")[0] + "?..."
    readonly = own_containers["readonly"].split("?")[0] + "?..."
    assert shown["outputFiles"][0]["destination"]["container"]["containerUrl"] == readonly
    tenant = tenant_signatures(own_containers)
    minted = run["signatures"] - tenant
    assert minted, "no agent manifest was read through /proc while the jobs ran: the grep has no minted SAS to seek"
    forbidden = {**storage_secrets(storage_stack), **{f"minted SAS {sig[:6]}...": sig for sig in minted}}
    devhost_store = Path(storage_stack.data_dir) / "devhost"
    # The stack's data folder holds devhost's, aciemu's and Azurite's data and their logs. Files deleted during the
    # run (a group's sandbox) are not seen: what stays on disk is what the grep answers for.
    files = list(read_files([Path(storage_stack.data_dir)]))
    assert len(files) > 10 and recorded.answers  # the grep saw the run
    # The tenant's own SAS may stay in the job it submitted (devhost's store), and nowhere else.
    in_store = [(where, data) for where, data in files if Path(where).is_relative_to(devhost_store)]
    elsewhere = [(where, data) for where, data in files if not Path(where).is_relative_to(devhost_store)]
    # A control: the store keeps the tenant's SAS (the agent needs it) in a form this grep reads.
    assert tenant <= set().union(*(sas_signatures(data) for _, data in in_store))
    leaks = find_leaks(in_store, forbidden, allowed_signatures=tenant)
    leaks += find_leaks(elsewhere, forbidden, allowed_signatures=set())
    leaks += find_leaks(recorded.answers, forbidden, allowed_signatures=set())
    assert leaks == []


def test_the_grep_fails_on_a_sas_planted_in_a_devhost_data_file(
    storage_stack: LocalStack, service: BlobServiceClient, own_containers: dict[str, str]
) -> None:
    """The grep can fail: a SAS like the ones the app mints (another signature than the tenant's), planted in a
    devhost data file, is reported there."""
    planted = Path(storage_stack.data_dir) / "devhost" / "planted.json"
    minted_like = f"{service.url}acb-{TENANT}?{tenant_sas(service, f'acb-{TENANT}', read=True)}"
    planted.write_text(json.dumps({"url": minted_like}))
    try:
        files = list(read_files([planted.parent]))
        leaks = find_leaks(files, storage_secrets(storage_stack), allowed_signatures=tenant_signatures(own_containers))
    finally:
        planted.unlink()
    assert [leak.where for leak in leaks] == [str(planted)]
