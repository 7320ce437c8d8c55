"""The embedded local stack: aciemu + devhost running this app, wired together on loopback ports.

Used by `acibatch up`, `make demo` and the end-to-end tests, so all three run the same configuration.
Secrets (admin key, callback signing key) are generated per run unless given.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from aciemu.launcher import AciEmulatorProcess
from devhost.launcher import DevhostProcess, free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCAL_SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
LOCAL_RESOURCE_GROUP = "acibatch-local"
LOCAL_LOCATION = "westeurope"


@dataclass(frozen=True)
class LocalStack:
    api_url: str  # e.g. http://127.0.0.1:7071/api
    host_url: str
    aci_url: str
    admin_key: str
    data_dir: Path
    settings: Mapping[str, str]


@contextmanager
def local_stack(
    data_dir: Path,
    *,
    app_dir: Path = REPO_ROOT,
    settings: Mapping[str, str] | None = None,
    emulator_args: list[str] | None = None,
    host_port: int | None = None,
    emulator_port: int | None = None,
) -> Iterator[LocalStack]:
    """Start aciemu, then devhost with the app pointed at it; stop both (devhost first) on exit."""
    data_dir.mkdir(parents=True, exist_ok=True)
    host_port = host_port or free_port()
    host_url = f"http://127.0.0.1:{host_port}"
    with ExitStack() as stack:
        emulator = stack.enter_context(
            AciEmulatorProcess(
                data_dir / "aciemu",
                port=emulator_port,
                args=list(emulator_args or []),
                log_path=data_dir / "aciemu.log",
            )
        )
        values = {
            "FUNCTIONS_WORKER_RUNTIME": "python",
            # Activities block on ARM calls and the SDK's replay holds the GIL: two workers, as in Azure.
            "FUNCTIONS_WORKER_PROCESS_COUNT": "2",
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
            "ACI_SUBSCRIPTION_ID": LOCAL_SUBSCRIPTION,
            "ACI_RESOURCE_GROUP": LOCAL_RESOURCE_GROUP,
            "ACI_LOCATION": LOCAL_LOCATION,
            "ACI_ENDPOINT": emulator.url,
            "BATCH_ADMIN_KEY": secrets.token_hex(24),  # hex: never starts with "-", safe as a CLI flag value
            "BATCH_CALLBACK_SIGNING_KEY": secrets.token_hex(32),
            "BATCH_CALLBACK_BASE_URL": host_url,
            "BATCH_POLL_SECONDS": "5",
            "BATCH_SWEEP_SCHEDULE": "0 */5 * * * *",
            **(settings or {}),
        }
        host = stack.enter_context(
            DevhostProcess(
                app_dir,
                data_dir / "devhost",
                env=values,
                port=host_port,
                log_path=data_dir / "devhost.log",
            )
        )
        yield LocalStack(
            api_url=f"{host.url}/api",
            host_url=host.url,
            aci_url=emulator.url,
            admin_key=values["BATCH_ADMIN_KEY"],
            data_dir=data_dir,
            settings=values,
        )
