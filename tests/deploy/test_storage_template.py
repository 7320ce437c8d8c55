"""Files and whole logs in Azure (issue 24), checked offline: the template gives the app a data account of its own,
the one role it needs there on the narrowest scope that works, the storage settings that turn the agent on, and a
postprovision hook that builds the agent image into the registry the task groups pull from."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from acibatch.settings import AGENT_IMAGE_PATH, Settings
from tests.deploy import bicep

MAIN = bicep.INFRA / "main.bicep"
ACCESS = bicep.INFRA / "modules" / "access.bicep"
FUNCTION_APP = bicep.INFRA / "modules" / "functionapp.bicep"
STORAGE = bicep.INFRA / "modules" / "storage.bicep"
HOOK = bicep.INFRA / "hooks" / "agent-image.sh"

# Storage Blob Data Contributor as the Azure built-in roles reference (Storage category) defines it.
BLOB_DATA_CONTRIBUTOR_ACTIONS = {
    "Microsoft.Storage/storageAccounts/blobServices/containers/delete",
    "Microsoft.Storage/storageAccounts/blobServices/containers/read",
    "Microsoft.Storage/storageAccounts/blobServices/containers/write",
    "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
}
BLOB_DATA_CONTRIBUTOR_DATA_ACTIONS = {
    "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete",
    "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
    "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write",
    "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/move/action",
    "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action",
}
# What acibatch/blobstore does with the app identity, and the action each needs ("Permissions for calling data
# operations" in the Blob REST reference). A user delegation SAS grants no more than its signer holds, so the
# agent's appends (Append Block: add) and uploads (write) need them here too.
NEEDED = {
    "Create Container (a tenant's acb-<tenant> on first use)": "containers/write",
    "Get User Delegation Key (signs every attempt's SAS)": "generateUserDelegationKey/action",
    "Get Blob, List Blobs (result.json, logs, outputs, inputs)": "containers/blobs/read",
    "Put Blob (tenant inputs; the agent's outputs through its SAS)": "containers/blobs/write",
    "Append Block (the agent's whole logs through its SAS)": "containers/blobs/add/action",
}

# The settings acibatch/settings.py requires whatever else is set (tests/unit/test_settings.py's minimum).
REQUIRED_ENV = {
    "ACI_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001",
    "ACI_RESOURCE_GROUP": "rg-env-tasks",
    "ACI_LOCATION": "westeurope",
    "BATCH_ADMIN_KEY": "a" * 48,
    "BATCH_CALLBACK_SIGNING_KEY": "s" * 64,
    "BATCH_CALLBACK_BASE_URL": "https://func-acibatch-x.azurewebsites.net",
}


def main_module(name: str) -> dict[str, Any]:
    module: dict[str, Any] = bicep.parse(MAIN)["modules"][name]
    return module


def test_task_data_has_its_own_account_apart_from_the_host_and_task_hub() -> None:
    host, data = main_module("hostStorage"), main_module("dataStorage")
    assert host["detail"]["path"] == data["detail"]["path"] == "modules/storage.bicep"
    assert host["config"]["params"]["name"] == "st${token}"
    assert data["config"]["params"]["name"] == "st${token}data"
    # No fixed container: the app creates acb-<tenant> itself (acibatch/blobstore/store.py ensure_container).
    assert data["config"]["params"]["containers"] == []
    # Every storage account the template creates comes from the one module, with shared keys off.
    created = [path.name for path, _, r in bicep.resources_of_type("Microsoft.Storage/storageAccounts")
               if not r.get("existing")]  # fmt: skip
    assert created == ["storage.bicep"]


def test_the_data_account_lets_task_containers_in_over_its_public_endpoint() -> None:
    # ACI groups outside a virtual network have no fixed egress address, so an IP rule or a closed endpoint would
    # refuse every agent; the per-attempt user delegation SAS is the gate (it works with shared keys off).
    (account,) = [bicep.body(r) for _, _, r in bicep.resources_of_type("Microsoft.Storage/storageAccounts")
                  if not r.get("existing")]  # fmt: skip
    properties = account["properties"]
    assert properties["publicNetworkAccess"] == "Enabled"
    assert properties["networkAcls"]["defaultAction"] == "Allow"
    assert properties["allowSharedKeyAccess"] is False and properties["supportsHttpsTrafficOnly"] is True


def test_the_app_gets_blob_data_contributor_on_the_data_account_and_nothing_else_there() -> None:
    on_data = [g for g in bicep.grants() if g.scope == "dataStorage"]
    assert [(g.file, g.role, g.principal, g.condition) for g in on_data] == [
        ("modules/access.bicep", "storageBlobDataContributor", "appPrincipalId", None)
    ]
    reference = bicep.parse(ACCESS)["resources"]["dataStorage"]
    # The account itself: Get User Delegation Key acts on the account, so a container scope would not grant it.
    assert reference["type"] == "Microsoft.Storage/storageAccounts" and reference["existing"] is True
    assert reference["config"]["name"] == "dataStorageName"
    params = main_module("access")["config"]["params"]
    assert bicep.render(params["dataStorageName"]) == "dataStorage.outputs.name"
    assert bicep.render(params["hostStorageName"]) == "hostStorage.outputs.name"


@pytest.mark.parametrize("operation", sorted(NEEDED))
def test_the_data_role_covers_what_the_app_and_its_sas_do(operation: str) -> None:
    granted = BLOB_DATA_CONTRIBUTOR_ACTIONS | BLOB_DATA_CONTRIBUTOR_DATA_ACTIONS
    assert any(action.endswith("/" + NEEDED[operation]) for action in granted), operation


def test_the_app_settings_point_the_app_at_the_data_account() -> None:
    settings = bicep.variable(FUNCTION_APP, "acibatchSettings")
    assert settings["BATCH_STORAGE_ACCOUNT_URL"] == "dataBlobEndpoint"
    assert settings["BATCH_STORAGE_CONNECTION_STRING"] == "", "a connection string carries an account key"
    assert settings["BATCH_AGENT_IMAGE"] == "agentImage"
    params = main_module("app")["config"]["params"]
    assert bicep.render(params["dataBlobEndpoint"]) == "dataStorage.outputs.blobEndpoint"
    assert params["agentImage"] == "effectiveAgentImage"
    assert bicep.render(bicep.parse(STORAGE)["outputs"]["blobEndpoint"]["value"]) == (
        "account.properties.primaryEndpoints.blob"
    )
    # The site runs as the app identity, which DefaultAzureCredential picks by AZURE_CLIENT_ID.
    assert bicep.variable(FUNCTION_APP, "hostSettings")["AZURE_CLIENT_ID"] == "appIdentityClientId"


def template_storage_env() -> dict[str, str]:
    """The storage settings the template writes, with its parameters given the values a deployment gives them."""
    deployed = {
        "dataBlobEndpoint": "https://stabc123data.blob.core.windows.net/",  # primaryEndpoints.blob ends in '/'
        "agentImage": f"cracibatchabc123.azurecr.io/{AGENT_IMAGE_PATH}",
    }
    settings = bicep.variable(FUNCTION_APP, "acibatchSettings")
    names = [name for name in settings if name.startswith(("BATCH_STORAGE_", "BATCH_AGENT_"))]
    assert len(names) == 7
    env = {}
    for name in names:
        value = settings[name]
        assert isinstance(value, str), f"{name} should be a literal or a parameter"
        env[name] = deployed.get(value, value)
    return env


def test_the_template_storage_settings_turn_storage_on_with_managed_identity() -> None:
    settings = Settings.from_env({**REQUIRED_ENV, **template_storage_env()})
    storage = settings.storage
    assert settings.storage_enabled and storage.connection_string is None
    assert storage.account_url == "https://stabc123data.blob.core.windows.net/"
    assert storage.container_prefix == "acb-"
    assert storage.agent_image == f"cracibatchabc123.azurecr.io/{AGENT_IMAGE_PATH}"
    assert (storage.agent_cpu, storage.agent_memory_gb) == (0.1, 0.2)
    assert storage.agent_start_timeout_seconds == 1800


def test_the_default_agent_image_is_the_apps_default_in_the_deployments_registry() -> None:
    assert bicep.variable(MAIN, "defaultAgentImagePath") == AGENT_IMAGE_PATH
    assert bicep.render(bicep.variable(MAIN, "effectiveAgentImage")) == (
        "conditional(empty(agentImage), ${registryPull.outputs.loginServer}/${defaultAgentImagePath}, agentImage)"
    )
    outputs = bicep.parse(MAIN)["outputs"]
    assert outputs["ACIBATCH_AGENT_IMAGE"]["value"] == "effectiveAgentImage"
    assert bicep.render(outputs["ACIBATCH_STORAGE_ACCOUNT_URL"]["value"]) == "dataStorage.outputs.blobEndpoint"
    mapped = json.loads((bicep.INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    # Not ACIBATCH_AGENT_IMAGE: azd writes outputs into the environment, and the output would pin the next provision.
    assert mapped["agentImage"] == {"value": "${BATCH_AGENT_IMAGE=}"}


def test_azure_yaml_runs_the_agent_image_hook_after_provisioning() -> None:
    text = (bicep.ROOT / "azure.yaml").read_text(encoding="utf-8")
    hook = re.search(r"^hooks:\n(?:  #.*\n)*  postprovision:\n((?:    .*\n)+)", text, re.MULTILINE)
    assert hook is not None, "azure.yaml needs a postprovision hook"
    fields = dict(re.findall(r"^    (\w+): (.*)$", hook.group(1), re.MULTILINE))
    # azd refuses a hook without a shell (Azure/azure-dev#2346).
    assert fields["shell"] == "sh" and fields["run"] == HOOK.relative_to(bicep.ROOT).as_posix()
    assert fields["continueOnError"] == "false"
    assert os.access(HOOK, os.X_OK)


def test_the_docs_give_the_agent_image_step_and_setting() -> None:
    docs = (bicep.ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert f"--image {AGENT_IMAGE_PATH} agent" in docs
    for name in ("BATCH_AGENT_IMAGE", "BATCH_STORAGE_ACCOUNT_URL", "ACIBATCH_BUILD_AGENT_IMAGE", "Storage Blob Data"):
        assert name in docs, name


# The hook, run by the system's POSIX sh (dash here) with a stand-in `az` that records its arguments: the real CLI
# needs an Azure sign-in, and what matters offline is the command the hook would run.
STAND_IN_AZ = """#!/bin/sh
printf '%s\\n' "$*" >> "$AZ_LOG"
if [ "$1" = account ]; then exit "${AZ_ACCOUNT_EXIT:-0}"; fi
exit 0
"""


def run_hook(
    tmp_path: Path, env: dict[str, str], with_az: bool = True
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    tools = tmp_path / "bin"
    tools.mkdir()
    # Only what the hook needs besides sh's builtins, so "az is missing" is true whatever this machine has.
    (tools / "dirname").symlink_to(shutil.which("dirname") or "/usr/bin/dirname")
    if with_az:
        (tools / "az").write_text(STAND_IN_AZ, encoding="utf-8")
        (tools / "az").chmod(0o755)
    log = tmp_path / "az.log"
    result = subprocess.run(
        ["/bin/sh", str(HOOK)],
        env={"PATH": str(tools), "AZ_LOG": str(log), **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    calls = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return result, calls


AZD_ENV = {
    "ACIBATCH_REGISTRY_SERVER": "cracibatchabc123.azurecr.io",
    "ACIBATCH_AGENT_IMAGE": f"cracibatchabc123.azurecr.io/{AGENT_IMAGE_PATH}",
    "AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001",
}


def test_the_hook_is_posix_sh() -> None:
    result = subprocess.run(["/bin/sh", "-n", str(HOOK)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_the_hook_builds_the_agent_folder_into_the_deployments_registry(tmp_path: Path) -> None:
    result, calls = run_hook(tmp_path, AZD_ENV)
    assert result.returncode == 0, result.stderr
    subscription = "--subscription 00000000-0000-0000-0000-000000000001"
    assert calls == [
        f"account show {subscription}",
        f"acr build {subscription} --registry cracibatchabc123 --image {AGENT_IMAGE_PATH} {bicep.ROOT / 'agent'}",
    ]
    assert (bicep.ROOT / "agent" / "Dockerfile").is_file()


def test_the_hook_can_be_skipped(tmp_path: Path) -> None:
    result, calls = run_hook(tmp_path, {**AZD_ENV, "ACIBATCH_BUILD_AGENT_IMAGE": "false"})
    assert result.returncode == 0 and calls == []
    assert "not built" in result.stdout


def test_the_hook_leaves_an_image_in_another_registry_to_its_owner(tmp_path: Path) -> None:
    result, calls = run_hook(tmp_path, {**AZD_ENV, "ACIBATCH_AGENT_IMAGE": "other.azurecr.io/acibatch/agent:7"})
    assert result.returncode == 0 and calls == []
    assert "push it there yourself" in result.stdout


def test_the_hook_without_the_azure_cli_fails_with_the_command_to_run(tmp_path: Path) -> None:
    result, calls = run_hook(tmp_path, AZD_ENV, with_az=False)
    assert result.returncode == 1 and calls == []
    assert f"az acr build --registry cracibatchabc123 --image {AGENT_IMAGE_PATH} agent" in result.stderr


def test_the_hook_signed_out_fails_saying_az_login(tmp_path: Path) -> None:
    result, calls = run_hook(tmp_path, {**AZD_ENV, "AZ_ACCOUNT_EXIT": "1"})
    assert result.returncode == 1
    assert calls == ["account show --subscription 00000000-0000-0000-0000-000000000001"]
    assert "az login" in result.stderr


def test_the_hook_before_provisioning_says_so(tmp_path: Path) -> None:
    result, calls = run_hook(tmp_path, {"AZURE_SUBSCRIPTION_ID": AZD_ENV["AZURE_SUBSCRIPTION_ID"]})
    assert result.returncode == 1 and calls == []
    assert "azd provision" in result.stderr
