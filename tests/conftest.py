"""Settings for every devhost the tests start (they inherit this process's environment), and the session's
Azurite (the `azurite` fixture and marker)."""

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from localtools.azurite import INSTALL_HINT, AzuriteProcess, find_azurite

# Every orchestration episode the tests run through devhost resumes its worker session *and* replays the whole
# history, and the episode fails if the two answers differ (`devhost.sessions`). Tests that need another mode
# set it for their own devhost.
os.environ.setdefault("DEVHOST_ORCHESTRATION_SESSIONS", "verify")

AZURITE_MISSING = f"azurite-blob is not installed: run `{INSTALL_HINT}` (.ci/run does)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `azurite` skip, saying how to install it, when azurite-blob is not installed."""
    if find_azurite() is not None:
        return
    skip = pytest.mark.skip(reason=AZURITE_MISSING)
    for item in items:
        if item.get_closest_marker("azurite") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteProcess]:
    """One Azurite blob service for the whole session (its data and log in a temp folder). It is shared:
    each test uses containers of its own (`azurite_container` makes one)."""
    if find_azurite() is None:
        pytest.skip(AZURITE_MISSING)
    root = tmp_path_factory.mktemp("azurite")
    with AzuriteProcess(root / "data", log_path=root / "azurite.log") as process:
        yield process


@pytest.fixture
def azurite_container(azurite: AzuriteProcess) -> Iterator[Any]:
    """A new, empty blob container on the session's Azurite (an azure.storage.blob ContainerClient), deleted after."""
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.create_container(f"t{uuid.uuid4().hex}")
    try:
        yield container
    finally:
        container.delete_container()
        service.close()


# Plain http to this machine: a tenant's own container may be one on the stack's Azurite, and an httpUrl input one
# on a test's own server (acibatch/outbound.py refuses http and loopback unless the operator allows them).
STORAGE_STACK_SETTINGS = {
    "BATCH_POLL_SECONDS": "1",
    "BATCH_OUTBOUND_ALLOW_HTTP": "true",
    "BATCH_OUTBOUND_ALLOW": "127.0.0.1",
}


@pytest.fixture(scope="package")
def storage_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The local stack (a localdev.localstack.LocalStack) with blob storage (its own Azurite; `blob_endpoint` says
    where), one per test package, for the file tests: the end-to-end `stack` runs without storage. Each test uses
    tenants and jobs of its own."""
    from localdev.localstack import local_stack  # here: only tests that run a stack need devhost and aciemu

    if find_azurite() is None:
        pytest.skip(AZURITE_MISSING)
    data = tmp_path_factory.mktemp("storage-stack")
    with local_stack(data, settings=STORAGE_STACK_SETTINGS, storage=True) as running:
        yield running
