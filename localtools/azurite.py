"""Start Azurite's blob service (the Azure Storage emulator, an npm package) on a free loopback port and stop it.

The local stack and the tests use it as the storage account of `BATCH_STORAGE_CONNECTION_STRING`, so the app
reaches it through azure-storage-blob exactly as it reaches Azure. Azurite is started so that it never writes a
request URL anywhere (SAS tokens travel in URLs): no `--debug` log, `--silent` (no access log on stdout), and no
telemetry (it would send usage data out of this machine).
"""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from localtools.process import ServiceProcess

# The version CI installs and the tests are run against; 3.35.0 is the newest Azurite that runs on Node 20.
AZURITE_VERSION = "3.35.0"
INSTALL_HINT = f"npm install -g azurite@{AZURITE_VERSION}"
EXECUTABLE = "azurite-blob"
# The emulator's well-known development account and key: public, the same for every Azurite (Microsoft's
# "Use the Azurite emulator" docs, section "Well-known storage account and key"; Azurite's
# src/blob/utils/constants.ts, EMULATOR_ACCOUNT_KEY_STR). It guards nothing: Azurite listens on loopback only.
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
# Azurite answers every request, even an unsigned one (403), with this Server header: the readiness signal.
SERVER_HEADER_PREFIX = "Azurite-Blob/"
# Set, it replaces the well-known account (Azurite's docs, "Custom storage accounts and keys"), so a developer's
# own value would make our connection string fail: the child never sees it.
CUSTOM_ACCOUNTS_ENV = "AZURITE_ACCOUNTS"
REPO_ROOT = Path(__file__).resolve().parent.parent


# Where a local (not global) install puts it: `make` installs into the venv's folder when it is not on PATH;
# a developer may have run `npm install azurite` in the repo.
LOCAL_INSTALLS = (Path(".venv") / "azurite", Path())


def find_azurite(search_root: Path = REPO_ROOT) -> Path | None:
    """`azurite-blob` on PATH, else in a local install's `node_modules/.bin` under the repo."""
    on_path = shutil.which(EXECUTABLE)
    if on_path:
        return Path(on_path)
    for prefix in LOCAL_INSTALLS:
        local = search_root / prefix / "node_modules" / ".bin" / EXECUTABLE
        if local.is_file() and os.access(local, os.X_OK):
            return local
    return None


class AzuriteMissing(RuntimeError):
    """`azurite-blob` is not installed; the message says how to install it."""

    def __init__(self) -> None:
        super().__init__(f"{EXECUTABLE} is not installed: run `{INSTALL_HINT}` (needs Node.js >= 20)")


class AzuriteProcess(ServiceProcess):
    """Azurite's blob service with its data in `data_dir`; `connection_string` addresses its well-known account."""

    module = EXECUTABLE  # the name ServiceProcess shows in its errors

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        log_path: Path | None = None,
        env: Mapping[str, str] | None = None,
        executable: Path | None = None,
        ready_timeout: float = 30.0,
    ) -> None:
        found = executable or find_azurite()
        if found is None:
            raise AzuriteMissing()
        super().__init__([], port=port, env=env, log_path=log_path, ready_timeout=ready_timeout)
        self.env.pop(CUSTOM_ACCOUNTS_ENV, None)
        self.executable = found
        self.data_dir = data_dir

    def command(self) -> list[str]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return [
            str(self.executable),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(self.port),
            "--location",
            str(self.data_dir),
            # The app pins no storage API version and the SDK's may be newer than this Azurite knows.
            "--skipApiVersionCheck",
            "--silent",
            "--disableTelemetry",
        ]

    def ready(self) -> bool:
        # No proxy: a developer's HTTP(S)_PROXY must not swallow a loopback probe.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(self.blob_endpoint, timeout=2) as response:
                server = response.headers.get("Server", "")
        except urllib.error.HTTPError as error:  # the unsigned probe is refused, which proves Azurite answers
            server = error.headers.get("Server", "")
        except (urllib.error.URLError, OSError):
            return False
        return str(server).startswith(SERVER_HEADER_PREFIX)

    @property
    def account_name(self) -> str:
        return ACCOUNT_NAME

    @property
    def account_key(self) -> str:
        return ACCOUNT_KEY

    @property
    def blob_endpoint(self) -> str:
        return f"{self.url}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.blob_endpoint};"
        )
