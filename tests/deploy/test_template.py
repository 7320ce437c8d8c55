"""The azd template (azure.yaml + infra/) checked offline: it parses, grants exactly the roles docs/deploy.md lists,
sets every app setting acibatch/settings.py reads, uses no registry module, and wires both Durable backends."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from acibatch.settings import MIN_SIGNING_KEY_CHARS
from tests.deploy import bicep
from tests.deploy.settings_source import names_read_by_settings

ROOT = bicep.ROOT
MAIN = bicep.INFRA / "main.bicep"
FUNCTION_APP = bicep.INFRA / "modules" / "functionapp.bicep"
ROLES = json.loads((bicep.INFRA / "roles.json").read_text(encoding="utf-8"))

# The built-in roles' fixed ids (Azure built-in roles reference); roles.json must not drift from them.
BUILT_IN_ROLE_IDS = {
    "acrPull": "7f951dda-4ed3-4680-a7ca-43fe172d538d",
    "durableTaskDataContributor": "0ad04412-c4d5-4796-b79c-f76d14c8d402",
    "keyVaultSecretsUser": "4633458b-17de-408a-b874-0445c86b69e6",
    "managedIdentityOperator": "f1a07417-d97a-45cb-824c-7a7467783830",
    "monitoringMetricsPublisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "storageBlobDataContributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "storageBlobDataOwner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "storageQueueDataContributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "storageTableDataContributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
}

APP = "appPrincipalId"
# Every role assignment the template makes, and nothing more: (file, role, scope, principal, condition).
EXPECTED_GRANTS = {
    # Functions host storage (identity-based AzureWebJobsStorage) and the Flex deployment package.
    ("modules/access.bicep", "storageBlobDataOwner", "hostStorage", APP, None),
    # The Azure Storage Durable backend's queues and tables; not granted with the scheduler.
    ("modules/access.bicep", "storageQueueDataContributor", "hostStorage", APP, "!useScheduler"),
    ("modules/access.bicep", "storageTableDataContributor", "hostStorage", APP, "!useScheduler"),
    # Task files and whole logs: the data account (it holds nothing else; user delegation keys need the account).
    ("modules/access.bicep", "storageBlobDataContributor", "dataStorage", APP, None),
    # Key Vault references for BATCH_ADMIN_KEY and BATCH_CALLBACK_SIGNING_KEY[_PREVIOUS].
    ("modules/access.bicep", "keyVaultSecretsUser", "vault", APP, None),
    # Application Insights with local auth off.
    ("modules/access.bicep", "monitoringMetricsPublisher", "appInsights", APP, None),
    # Attaching the image-pull identity to task container groups.
    ("modules/access.bicep", "managedIdentityOperator", "pullIdentity", APP, None),
    # The Durable Task Scheduler backend: its task hub only.
    ("modules/access.bicep", "durableTaskDataContributor", "taskHub", APP, "useScheduler"),
    # Task container groups pull images as the image-pull identity.
    ("modules/registry-pull.bicep", "acrPull", "registry", "pullIdentityPrincipalId", None),
    # Managing container groups in the task resource group (the custom role below).
    ("modules/tasks.bicep", "containerGroupsRoleId", "resourceGroup", APP, None),
}

CONTAINER_GROUP_ACTIONS = [
    "Microsoft.ContainerInstance/containerGroups/*",
    "Microsoft.ContainerInstance/locations/*/read",
]

# Flex Consumption sets these from functionAppConfig or does not support them (Azure Functions docs, Flex
# Consumption plan: deprecated properties and settings); the template must not carry them over.
FLEX_REFUSED_SETTINGS = {
    "FUNCTIONS_EXTENSION_VERSION",
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_WORKER_RUNTIME_VERSION",
    "FUNCTIONS_MAX_HTTP_CONCURRENCY",
    "FUNCTIONS_WORKER_PROCESS_COUNT",
    "FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTOVERVNET",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT",
    "WEBSITE_NODE_DEFAULT_VERSION",
    "WEBSITE_SKIP_CONTENTSHARE_VALIDATION",
    "WEBSITE_VNET_ROUTE_ALL",
    "WEBSITE_DNS_SERVER",
}


def app_settings_expression() -> object:
    (_, _, resource), *others = [
        entry for entry in bicep.resources_of_type("Microsoft.Web/sites/config") if entry[0] == FUNCTION_APP
    ]
    assert not others, "functionapp.bicep should set app settings in one place"
    assert bicep.body(resource)["name"] == "appsettings"
    return bicep.body(resource)["properties"]


def test_every_bicep_file_parses_and_every_module_is_local() -> None:
    files = bicep.bicep_files()
    assert MAIN in files and FUNCTION_APP in files
    for path in files:
        document = bicep.parse(path)
        for name, module in document.get("modules", {}).items():
            # An offline build cannot fetch br:/ts: modules (Bicep registry, template specs); only files here.
            assert module["type"] == "local", f"{path.name}: module {name} comes from a registry ({module['detail']})"
            target = (path.parent / module["detail"]["path"]).resolve()
            assert target.is_file(), f"{path.name}: module {name} points at {target}, which does not exist"
            assert target in files


def test_no_keys_or_passwords_anywhere_in_the_template() -> None:
    for path in bicep.bicep_files():
        text = path.read_text(encoding="utf-8")
        for forbidden in ("listKeys(", "AccountKey=", "listCredentials(", "InstrumentationKey="):
            assert forbidden not in text, f"{path.name} uses {forbidden}: use the managed identities"
        # Access is granted by the role assignments the grants test counts, never by vault access policies.
        assert "accessPolicies" not in text, f"{path.name} grants vault access outside Azure RBAC"


def test_roles_json_holds_the_built_in_ids() -> None:
    assert ROLES == BUILT_IN_ROLE_IDS


def test_the_template_grants_exactly_the_documented_roles() -> None:
    grants = bicep.grants()
    found = {(g.file, g.role, g.scope, g.principal, g.condition) for g in grants}
    missing, extra = EXPECTED_GRANTS - found, found - EXPECTED_GRANTS
    assert not missing and not extra, (
        f"missing grants: {sorted(missing, key=str)}; unexpected grants: {sorted(extra, key=str)}"
    )
    # Managed identities are service principals; saying so avoids the replication-delay failure of a fresh identity.
    assert {g.principal_type for g in grants} == {"ServicePrincipal"}
    used = {g.role for g in grants} - {"containerGroupsRoleId"}
    assert used == set(ROLES), f"roles.json lists roles nothing grants: {sorted(set(ROLES) - used)}"


def test_every_role_is_explained_in_docs() -> None:
    docs = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    for key in ROLES:
        # docs/deploy.md names each role by its display name, e.g. storageBlobDataOwner -> Storage Blob Data Owner.
        words = re.sub(r"(?<!^)(?=[A-Z])", " ", key[0].upper() + key[1:])
        display = words.replace("Acr Pull", "AcrPull")
        assert display in docs, f"docs/deploy.md does not explain the {display} grant"


def test_the_container_groups_role_is_exactly_container_groups_and_location_reads() -> None:
    definitions = [
        resource
        for name, resource in bicep.parse(MAIN)["resources"].items()
        if resource["type"] == "Microsoft.Authorization/roleDefinitions"
    ]
    assert len(definitions) == 1
    properties = bicep.body(definitions[0])["properties"]
    assert [bicep.render(scope) for scope in properties["assignableScopes"]] == ["taskGroup.id"]
    (permission,) = properties["permissions"]
    assert permission["actions"] == CONTAINER_GROUP_ACTIONS
    assert permission["notActions"] == permission["dataActions"] == permission["notDataActions"] == []
    tasks = bicep.parse(bicep.INFRA / "modules" / "tasks.bicep")
    assert bicep.parse(MAIN)["modules"]["tasks"]["config"]["params"]["containerGroupsRoleId"] == {
        "operator": {"type": "property_accessor", "operands": {"operand_1": "containerGroupsRole", "operand_2": "id"}}
    }
    assert "containerGroupsRoleId" in tasks["parameters"]


def settings_without_an_entry(read: set[str]) -> list[str]:
    return sorted(read - bicep.keys_always_set(FUNCTION_APP, app_settings_expression()))


def test_every_setting_the_app_reads_has_an_app_setting_entry() -> None:
    read = names_read_by_settings()
    # The source scan must keep finding the settings it always found, or it has stopped working.
    assert {"ACI_SUBSCRIPTION_ID", "BATCH_ADMIN_KEY", "ACI_MAX_GROUPS", "BATCH_OUTBOUND_ALLOW"} <= read
    missing = settings_without_an_entry(read)
    assert not missing, (
        f"acibatch/settings.py reads {', '.join(missing)}, but infra/modules/functionapp.bicep has no app setting "
        "for it: add it to acibatchSettings (its value, or '' with the reason it stays unset in Azure)"
    )


def test_a_setting_added_to_settings_py_without_an_entry_is_named() -> None:
    source = (ROOT / "acibatch" / "settings.py").read_text(encoding="utf-8")
    grown = source + '\n\ndef extra(get):\n    return get("ACI_SOMETHING_NEW"), os.environ["BATCH_OTHER_NEW"]\n'
    assert settings_without_an_entry(names_read_by_settings(grown)) == ["ACI_SOMETHING_NEW", "BATCH_OTHER_NEW"]


def test_the_secrets_are_key_vault_references_and_the_local_only_settings_stay_empty() -> None:
    settings = bicep.variable(FUNCTION_APP, "acibatchSettings")
    for name in ("BATCH_ADMIN_KEY", "BATCH_CALLBACK_SIGNING_KEY"):
        assert settings[name].startswith("@Microsoft.KeyVault(SecretUri=${"), name
    assert "@Microsoft.KeyVault(SecretUri=" in bicep.render(settings["BATCH_CALLBACK_SIGNING_KEY_PREVIOUS"])
    for name in ("ACI_ENDPOINT", "ACI_ENDPOINT_TOKEN", "ACI_REGISTRY_USERNAME", "ACI_REGISTRY_PASSWORD"):
        assert settings[name] == "", f"{name} must stay unset in Azure"
    assert settings["BATCH_OUTBOUND_ALLOW_HTTP"] == "false"
    # Key Vault references resolve with the site's user-assigned identity only if the site names it.
    site = bicep.body(bicep.resources_of_type("Microsoft.Web/sites")[0][2])
    assert site["properties"]["keyVaultReferenceIdentity"] == "appIdentityId"


def test_the_host_uses_identity_connections_and_no_setting_flex_refuses() -> None:
    expression = app_settings_expression()
    ever = bicep.keys_ever_set(FUNCTION_APP, expression)
    refused = sorted(ever & FLEX_REFUSED_SETTINGS)
    assert not refused, f"Flex Consumption refuses these app settings: {refused}"
    host = bicep.variable(FUNCTION_APP, "hostSettings")
    assert host["AzureWebJobsStorage__credential"] == "managedidentity"
    assert host["AzureWebJobsStorage__clientId"] == host["AZURE_CLIENT_ID"] == "appIdentityClientId"
    assert "AzureWebJobsStorage" not in ever and "APPINSIGHTS_INSTRUMENTATIONKEY" not in ever
    assert host["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "ClientId=${appIdentityClientId};Authorization=AAD"
    site = bicep.body(bicep.resources_of_type("Microsoft.Web/sites")[0][2])
    runtime = site["properties"]["functionAppConfig"]["runtime"]
    assert runtime == {"name": "python", "version": "3.11"}


def declared(resource_type: str) -> list[dict[str, Any]]:
    """The bodies of the resources of this type the template creates (not the `existing` references)."""
    return [bicep.body(r) for _, _, r in bicep.resources_of_type(resource_type) if not r.get("existing")]


def test_storage_monitoring_and_registry_take_no_keys() -> None:
    (account,) = declared("Microsoft.Storage/storageAccounts")  # one module, used for the host and the data account
    properties = account["properties"]
    assert properties["allowSharedKeyAccess"] is False and properties["allowBlobPublicAccess"] is False
    assert properties["minimumTlsVersion"] == "TLS1_2" and properties["supportsHttpsTrafficOnly"] is True
    (insights,) = declared("Microsoft.Insights/components")
    assert insights["properties"]["DisableLocalAuth"] is True
    (registry,) = declared("Microsoft.ContainerRegistry/registries")
    assert registry["properties"]["adminUserEnabled"] is False
    assert registry["properties"]["anonymousPullEnabled"] is False
    (vault,) = declared("Microsoft.KeyVault/vaults")
    assert vault["properties"]["enableRbacAuthorization"] is True


def test_both_durable_backends_are_wired() -> None:
    host_json = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    durable = host_json["extensions"]["durableTask"]
    # host.json keeps Azure Storage as the default; the scheduler is chosen by app settings that override it.
    assert durable["storageProvider"]["type"] == "AzureStorage"
    assert bicep.variable(MAIN, "taskHubName") == durable["hubName"], "the scheduler's task hub must be host.json's hub"
    bundle = host_json["extensionBundle"]
    # The Durable Task Scheduler provider is in the default bundle from 4.30.0; [4.*, 5.0.0) resolves to the latest 4.x.
    assert bundle["id"] == "Microsoft.Azure.Functions.ExtensionBundle" and bundle["version"].startswith("[4.")

    storage = bicep.variable(FUNCTION_APP, "storageBackendSettings")
    assert set(storage) == {"AzureWebJobsStorage__queueServiceUri", "AzureWebJobsStorage__tableServiceUri"}
    scheduler = bicep.variable(FUNCTION_APP, "schedulerBackendSettings")
    prefix = "AzureFunctionsJobHost__extensions__durableTask__storageProvider__"
    assert scheduler[prefix + "type"] == "azureManaged"
    connection_name = scheduler[prefix + "connectionStringName"]
    assert connection_name in scheduler
    assert scheduler[connection_name] == (
        "Endpoint=${schedulerEndpoint};Authentication=ManagedIdentity;ClientID=${appIdentityClientId}"
    )
    choice = bicep.variable(FUNCTION_APP, "backendSettings")
    assert bicep.render(choice) == (
        "conditional(durableBackend == DurableTaskScheduler, schedulerBackendSettings, storageBackendSettings)"
    )
    allowed = next(
        d["argument"] for d in bicep.parse(MAIN)["parameters"]["durableBackend"]["decorators"] if d["type"] == "allowed"
    )
    assert allowed == ["AzureStorage", "DurableTaskScheduler"]


def test_the_deployment_registers_the_container_instance_provider() -> None:
    # ARM registers the resource providers of the resource types a template deploys; the app's own creates later
    # would fail with MissingSubscriptionRegistration. A Microsoft.ContainerInstance resource does it.
    types = [
        resource["type"]
        for path in bicep.bicep_files()
        for resource in bicep.parse(path).get("resources", {}).values()
        if not resource.get("existing")
    ]
    assert "Microsoft.ContainerInstance/containerGroupProfiles" in types


@pytest.mark.parametrize("name", ["aciMaxGroups", "aciMaxCores", "registryName", "durableBackend", "location"])
def test_the_parameters_the_issue_asks_for_exist_and_map_to_azd_values(name: str) -> None:
    parameters = bicep.parse(MAIN)["parameters"]
    assert name in parameters
    mapped = json.loads((bicep.INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert set(mapped) <= set(parameters), (
        f"main.parameters.json sets unknown parameters {set(mapped) - set(parameters)}"
    )
    assert name in mapped


def test_azd_can_set_every_parameter() -> None:
    # azd reads `infra.parameters.<name>` from the environment config only for parameters without a default that
    # main.parameters.json does not map (Azure/azure-dev, pkg/infra/provisioning/bicep/bicep_provider.go): every
    # other parameter must be mapped to an azd environment value, or users could not change it.
    parameters = bicep.parse(MAIN)["parameters"]
    mapped = json.loads((bicep.INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    generated = {
        name
        for name, parameter in parameters.items()
        for decorator in parameter["decorators"]
        if decorator["type"] == "metadata" and decorator["argument"].get("azd", {}).get("type") == "generate"
    }
    assert generated == {"batchAdminKey", "batchCallbackSigningKey"}
    unreachable = sorted(set(parameters) - set(mapped) - generated)
    assert not unreachable, f"map these parameters in infra/main.parameters.json: {unreachable}"
    # An empty mapped string reaches Bicep as '' (not as "use the default"), so a string parameter mapped with an
    # empty default must itself default to ''.
    for name, entry in mapped.items():
        if entry["value"].endswith("=}") and parameters[name]["type"] == "string":
            assert parameters[name].get("default") == "", f"{name}: an empty azd value would override its default"


def test_secrets_are_secure_parameters_generated_by_azd() -> None:
    parameters = bicep.parse(MAIN)["parameters"]
    for name in ("batchAdminKey", "batchCallbackSigningKey", "batchCallbackSigningKeyPrevious"):
        assert {"type": "secure"} in parameters[name]["decorators"], f"{name} must be @secure()"
    for name, length in (("batchAdminKey", 48), ("batchCallbackSigningKey", 64)):
        metadata = next(d["argument"] for d in parameters[name]["decorators"] if d["type"] == "metadata")
        assert metadata["azd"]["type"] == "generate"
        assert metadata["azd"]["config"] == {"length": length, "noSpecial": True}
        # settings.py refuses a signing key shorter than MIN_SIGNING_KEY_CHARS.
        assert length >= MIN_SIGNING_KEY_CHARS


def test_azure_yaml_deploys_the_tagged_function_app() -> None:
    text = (ROOT / "azure.yaml").read_text(encoding="utf-8")
    service = re.search(r"^services:\n  (\w+):\n((?:    .*\n)+)", text, re.MULTILINE)
    assert service is not None, "azure.yaml needs one service"
    name, fields = service.group(1), dict(re.findall(r"^    (\w+): (.*)$", service.group(2), re.MULTILINE))
    assert fields["host"] == "function" and fields["language"] == "python" and fields["project"] == "."
    site = bicep.body(bicep.resources_of_type("Microsoft.Web/sites")[0][2])
    assert "'azd-service-name': '" + name + "'" in Path(FUNCTION_APP).read_text(encoding="utf-8")
    assert site["kind"] == "functionapp,linux"
