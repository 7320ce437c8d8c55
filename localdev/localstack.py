"""The embedded local stack: aciemu + devhost running this app, wired together on loopback ports.

Used by `acibatch up`, `make demo` and the end-to-end tests, so all three run the same configuration.
It survives its own restart on the same data folder: the admin key and callback signing key it generates
are kept in `<data>/secrets.json` (mode 0600) and reused, because callback tokens of running tasks and
sealed secure env values of submitted jobs were made with them. Settings given in the environment win over
the stack's defaults and stored keys (and are never written to disk); `settings=` wins over both.

With `storage=True` the stack also runs Azurite's blob service (data in `<data>/azurite`, kept across
restarts like devhost's) and points the app's blob storage at it; without, the app runs with storage off
whatever the environment says, as the stacks of the existing end-to-end tests and the bench expect.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import socket
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from aciemu.launcher import AciEmulatorProcess
from devhost.launcher import DevhostProcess
from localtools.azurite import AzuriteProcess
from localtools.process import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
# Example images (examples/worker for myregistry.azurecr.io/acibatch/worker) as the emulator shows them.
EXAMPLE_IMAGES = REPO_ROOT / "examples" / "images.json"
# That image: its working directory holds the stdlib report helper, so `python3 -c` code can import it.
EXAMPLE_WORKER_IMAGE = "myregistry.azurecr.io/acibatch/worker:1"
# The acibatch agent (agent/), which examples/images.json maps for aciemu: the image the storage stack's tasks get.
LOCAL_AGENT_IMAGE = "myregistry.azurecr.io/acibatch/agent:1"
STORAGE_SETTINGS = ("BATCH_STORAGE_CONNECTION_STRING", "BATCH_STORAGE_ACCOUNT_URL")
LOCAL_SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
LOCAL_RESOURCE_GROUP = "acibatch-local"
LOCAL_LOCATION = "westeurope"
SECRETS_FILE = "secrets.json"
# Generated once per data folder. Hex: never starts with "-", so safe as a CLI flag value.
GENERATED_SECRETS = {"BATCH_ADMIN_KEY": 24, "BATCH_CALLBACK_SIGNING_KEY": 32}
# The stack's defaults; each yields to the same name in the environment.
DEFAULTS = {
    "FUNCTIONS_WORKER_RUNTIME": "python",
    # Activities block on ARM calls and the SDK's replay holds the GIL: two workers, as in Azure.
    "FUNCTIONS_WORKER_PROCESS_COUNT": "2",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "ACI_SUBSCRIPTION_ID": LOCAL_SUBSCRIPTION,
    "ACI_RESOURCE_GROUP": LOCAL_RESOURCE_GROUP,
    "ACI_LOCATION": LOCAL_LOCATION,
    "BATCH_POLL_SECONDS": "5",
    "BATCH_SWEEP_SCHEDULE": "0 */5 * * * *",
    # aciemu enforces no create or delete rate unless given limits (its --limits), like a subscription whose ACI
    # write limits were raised; the app's admission must then not hold writes back either. The rate tests set both.
    "ACI_CREATE_LIMITS": "100000/60",
    "ACI_DELETE_LIMITS": "100000/60",
    # The Functions host's own body cap (100 MiB by default): the host reads a whole body before the app can
    # refuse it, so this keeps oversized posts out of the host (413) while every body the API accepts
    # (BATCH_MAX_BODY_BYTES, 1 MiB by default) fits. Set it in Azure too (README, settings).
    "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": str(4 * 1024 * 1024),
}


class LocalStackError(RuntimeError):
    """The stack cannot start (busy port, data folder in use); the message says what to change."""


def default_data_dir() -> Path:
    """`$XDG_STATE_HOME/acibatch` (default `~/.local/state/acibatch`): state that outlives one run."""
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "acibatch"


@dataclass(frozen=True)
class LocalStack:
    api_url: str  # e.g. http://127.0.0.1:7071/api
    host_url: str
    aci_url: str
    aci_token: str  # the bearer token aciemu requires on its ARM API (the app gets it as ACI_ENDPOINT_TOKEN)
    admin_key: str
    data_dir: Path
    durable_key: str  # the Durable extension's system key: devhost's /runtime/webhooks/durabletask/ requires it
    settings: Mapping[str, str]
    blob_endpoint: str | None = None  # Azurite's, when the stack runs with storage (the account is devstoreaccount1)


def stored_secrets(data_dir: Path) -> dict[str, str]:
    """The generated keys of this data folder, created on first use; the file is rewritten 0600 if needed."""
    path = data_dir / SECRETS_FILE
    stored: dict[str, str] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text())
        except ValueError:
            raise LocalStackError(f"{path} is not valid JSON: fix or delete it (a new one is generated)") from None
        stored = {name: str(value) for name, value in loaded.items() if name in GENERATED_SECRETS and value}
    missing = {name: secrets.token_hex(size) for name, size in GENERATED_SECRETS.items() if name not in stored}
    if missing or (path.stat().st_mode & 0o077):
        stored.update(missing)
        temporary = path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(stored, handle, indent=2)
        os.chmod(temporary, 0o600)  # O_CREAT's mode does not apply to an existing leftover .tmp
        os.replace(temporary, path)
    return stored


def ensure_port_free(port: int) -> None:
    with socket.socket() as probe:
        # As the servers bind: a port whose last connections linger in TIME_WAIT is free to listen on.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise LocalStackError(
                f"port {port} on 127.0.0.1 is in use (another `acibatch up`?): stop it or pick another with --port"
            ) from None


@contextmanager
def exclusive(data_dir: Path) -> Iterator[None]:
    """One stack per data folder: two would run the same tasks twice and corrupt devhost's store."""
    with open(data_dir / "lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            message = f"{data_dir} is in use by another local stack: stop it or use another --data"
            raise LocalStackError(message) from None
        yield


def stack_settings(
    data_dir: Path,
    host_url: str,
    aci_url: str,
    aci_token: str,
    settings: Mapping[str, str] | None,
    storage_connection_string: str | None = None,
) -> dict[str, str]:
    base = {**DEFAULTS, **stored_secrets(data_dir)}
    if storage_connection_string is not None:
        base["BATCH_AGENT_IMAGE"] = LOCAL_AGENT_IMAGE
    values = {name: os.environ.get(name, value) for name, value in base.items()}
    # Where the parts of this stack listen, and the emulator's token, are the stack's to say, whatever the
    # environment holds. The token goes to devhost (the app) only: never into a job spec or a container's env.
    values.update({"ACI_ENDPOINT": aci_url, "ACI_ENDPOINT_TOKEN": aci_token, "BATCH_CALLBACK_BASE_URL": host_url})
    # So is its storage: its own Azurite, or none (empty is unset to the app; devhost inherits this environment,
    # so a developer's storage settings would otherwise turn storage on in stacks that run without it).
    values.update(dict.fromkeys(STORAGE_SETTINGS, ""))
    if storage_connection_string is not None:
        values["BATCH_STORAGE_CONNECTION_STRING"] = storage_connection_string
    values.update(settings or {})
    return values


@contextmanager
def local_stack(
    data_dir: Path,
    *,
    app_dir: Path = REPO_ROOT,
    settings: Mapping[str, str] | None = None,
    emulator_args: list[str] | None = None,
    host_port: int | None = None,
    emulator_port: int | None = None,
    images: Path | None = EXAMPLE_IMAGES,
    storage: bool = False,
) -> Iterator[LocalStack]:
    """Start aciemu (and Azurite with `storage`), then devhost with the app pointed at them; stop them all
    (devhost first) on exit.

    `images` is aciemu's image catalog (see aciemu/README.md): by default the examples' worker and agent images.
    `storage` raises `localtools.azurite.AzuriteMissing` (which says how to install it) without azurite-blob.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    if host_port is not None:
        ensure_port_free(host_port)
    host_port = host_port or free_port()
    host_url = f"http://127.0.0.1:{host_port}"
    with ExitStack() as stack:
        stack.enter_context(exclusive(data_dir))
        image_args = ["--images", str(images)] if images is not None else []
        emulator = stack.enter_context(
            AciEmulatorProcess(
                data_dir / "aciemu",
                port=emulator_port,
                args=[*image_args, *(emulator_args or [])],
                log_path=data_dir / "aciemu.log",
            )
        )
        azurite = None
        if storage:
            azurite = stack.enter_context(AzuriteProcess(data_dir / "azurite", log_path=data_dir / "azurite.log"))
        connection_string = azurite.connection_string if azurite else None
        values = stack_settings(data_dir, host_url, emulator.url, emulator.token, settings, connection_string)
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
            aci_token=emulator.token,
            admin_key=values["BATCH_ADMIN_KEY"],
            data_dir=data_dir,
            durable_key=host.system_key,
            settings=values,
            blob_endpoint=azurite.blob_endpoint if azurite else None,
        )
