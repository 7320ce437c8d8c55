// acibatch on Azure in one `azd up`: a Flex Consumption Function App that runs its tasks as ACI container groups,
// with managed identities end to end (no storage keys, no registry passwords, no instrumentation keys).
// docs/deploy.md explains every resource and role; tests/deploy checks this template offline.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name: resource names and the azd-env-name tag derive from it.')
param environmentName string

@minLength(1)
@description('Region of the Function App and its resources (a region that offers Flex Consumption).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Region the task container groups run in (ACI_LOCATION); empty means the app region.')
param aciLocation string = ''

@description('Resource group of the app; empty means rg-<environmentName>.')
param resourceGroupName string = ''

@description('Resource group the app creates task container groups in; empty means rg-<environmentName>-tasks.')
param taskResourceGroupName string = ''

@minValue(1)
@maxValue(100000)
@description('ACI_MAX_GROUPS: container groups the app runs at once, across all tenants (your regional ACI quota).')
param aciMaxGroups int = 100

@minValue(1)
@maxValue(1000000)
@description('ACI_MAX_CORES: cores the app runs at once, across all tenants (your regional ACI quota).')
param aciMaxCores int = 100

@minValue(0)
@maxValue(1000000)
@description('ACI_MAX_SPOT_CORES: Spot cores the app runs at once (ACI has a separate Spot quota); defaults to aciMaxCores.')
param aciMaxSpotCores int = aciMaxCores

@description('ACI_CREATE_LIMITS: container group creates allowed per window, COUNT/SECONDS pairs; empty keeps the app default.')
param aciCreateLimits string = ''

@description('ACI_DELETE_LIMITS: container group deletes allowed per window, COUNT/SECONDS pairs; empty keeps the app default.')
param aciDeleteLimits string = ''

@description('An existing Azure Container Registry that holds the task images; empty creates a new Basic registry.')
param registryName string = ''

@description('Resource group of that existing registry; empty means the app resource group.')
param registryResourceGroupName string = ''

@allowed([
  'AzureStorage'
  'DurableTaskScheduler'
])
@description('Durable Functions backend: the app storage account, or a Durable Task Scheduler (higher throughput).')
param durableBackend string = 'AzureStorage'

@allowed([
  'Consumption'
  'Dedicated'
])
@description('Durable Task Scheduler SKU, used when durableBackend is DurableTaskScheduler.')
param schedulerSku string = 'Consumption'

@minValue(1)
@maxValue(1000)
@description('Most Flex Consumption instances the app scales out to.')
param maximumInstanceCount int = 100

@description('Create a free container group profile in the task resource group so the deployment registers Microsoft.ContainerInstance.')
param registerContainerInstanceProvider bool = true

@description('BATCH_AGENT_IMAGE: the task agent image (stage-in, whole logs, outputs); empty means <registry>/acibatch/agent:1, which the postprovision hook builds.')
param agentImage string = ''

@secure()
@description('BATCH_ADMIN_KEY: azd generates it on the first provision and keeps it in the environment.')
@metadata({
  azd: {
    type: 'generate'
    config: {
      length: 48
      noSpecial: true
    }
  }
})
param batchAdminKey string

@secure()
@description('BATCH_CALLBACK_SIGNING_KEY: azd generates it on the first provision and keeps it in the environment.')
@metadata({
  azd: {
    type: 'generate'
    config: {
      length: 64
      noSpecial: true
    }
  }
})
param batchCallbackSigningKey string

@secure()
@description('BATCH_CALLBACK_SIGNING_KEY_PREVIOUS: the signing key before a rotation (empty when not rotating).')
param batchCallbackSigningKeyPrevious string = ''

// One short unique suffix per subscription, environment and region keeps the global names (storage, vault,
// registry, app) free and stable across re-provisions.
var token = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var appName = 'func-acibatch-${token}'
// azd passes an empty mapped value as '' rather than leaving the parameter out, so "same as the app" is ''.
var taskLocation = empty(aciLocation) ? location : aciLocation
var newRegistryName = 'cracibatch${token}'
var useScheduler = durableBackend == 'DurableTaskScheduler'
// The Durable task hub name must match host.json's extensions.durableTask.hubName (a test checks it).
var taskHubName = 'acibatch'
var deploymentContainerName = 'app-package'
// acibatch/settings.py's AGENT_IMAGE_PATH (a test keeps them equal): the image the postprovision hook builds.
var defaultAgentImagePath = 'acibatch/agent:1'

resource appGroup 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: empty(resourceGroupName) ? 'rg-${environmentName}' : resourceGroupName
  location: location
  tags: tags
}

// The app creates, lists and deletes task container groups here; it holds nothing else but the registration profile.
resource taskGroup 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: empty(taskResourceGroupName) ? 'rg-${environmentName}-tasks' : taskResourceGroupName
  location: taskLocation
  tags: tags
}

// Exactly what the app does with ACI: container groups (create, get, restart, stop, delete, logs) and the location
// reads (capabilities and usages). No built-in role is that narrow; Contributor would also let the app touch
// anything else in the group.
resource containerGroupsRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, 'acibatch-container-groups')
  properties: {
    roleName: 'acibatch container groups (${environmentName}-${token})'
    description: 'Lets the acibatch app manage the task container groups in its task resource group.'
    type: 'CustomRole'
    assignableScopes: [
      taskGroup.id
    ]
    permissions: [
      {
        actions: [
          'Microsoft.ContainerInstance/containerGroups/*'
          'Microsoft.ContainerInstance/locations/*/read'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
  }
}

module identities 'modules/identities.bicep' = {
  name: 'identities'
  scope: appGroup
  params: {
    location: location
    tags: tags
    token: token
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: appGroup
  params: {
    location: location
    tags: tags
    token: token
  }
}

// Host storage: the deployment package, the host's own blobs and, with the AzureStorage backend, the task hub.
module hostStorage 'modules/storage.bicep' = {
  name: 'host-storage'
  scope: appGroup
  params: {
    name: 'st${token}'
    location: location
    tags: tags
    containers: [
      deploymentContainerName
    ]
  }
}

// Task data: tenants' input files, task outputs and whole logs, one container per tenant (acb-<tenant>) that the
// app creates on first use. A separate account keeps tenants' data apart from the Durable task hub and the host's
// state: its role (Storage Blob Data Contributor on the whole account) then reaches no host blob, and its
// traffic (50 MB logs, big outputs) never competes with the task hub's queues for the account's request rate.
// Task containers reach it over the public endpoint with per-attempt user delegation SAS, which work with
// shared keys off; the account's network rules must keep allowing the internet (ACI has no fixed egress address).
module dataStorage 'modules/storage.bicep' = {
  name: 'data-storage'
  scope: appGroup
  params: {
    name: 'st${token}data'
    location: location
    tags: tags
    containers: []
  }
}

module vault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: appGroup
  params: {
    name: 'kv-${token}'
    location: location
    tags: tags
    adminKey: batchAdminKey
    signingKey: batchCallbackSigningKey
    signingKeyPrevious: batchCallbackSigningKeyPrevious
  }
}

module newRegistry 'modules/registry.bicep' = if (empty(registryName)) {
  name: 'registry'
  scope: appGroup
  params: {
    name: newRegistryName
    location: location
    tags: tags
  }
}

module registryPull 'modules/registry-pull.bicep' = {
  name: 'registry-pull'
  scope: resourceGroup((empty(registryName) || empty(registryResourceGroupName)) ? appGroup.name : registryResourceGroupName)
  dependsOn: [
    newRegistry
  ]
  params: {
    registryName: empty(registryName) ? newRegistryName : registryName
    pullIdentityPrincipalId: identities.outputs.pullPrincipalId
  }
}

module scheduler 'modules/scheduler.bicep' = if (useScheduler) {
  name: 'scheduler'
  scope: appGroup
  params: {
    name: 'dts-${token}'
    location: location
    tags: tags
    skuName: schedulerSku
    taskHubName: taskHubName
  }
}

module access 'modules/access.bicep' = {
  name: 'access'
  scope: appGroup
  dependsOn: [
    scheduler
  ]
  params: {
    appPrincipalId: identities.outputs.appPrincipalId
    pullIdentityName: identities.outputs.pullName
    hostStorageName: hostStorage.outputs.name
    dataStorageName: dataStorage.outputs.name
    vaultName: vault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    useScheduler: useScheduler
    schedulerName: 'dts-${token}'
    taskHubName: taskHubName
  }
}

module tasks 'modules/tasks.bicep' = {
  name: 'tasks'
  scope: taskGroup
  params: {
    location: taskLocation
    tags: tags
    appPrincipalId: identities.outputs.appPrincipalId
    containerGroupsRoleId: containerGroupsRole.id
    registerProvider: registerContainerInstanceProvider
  }
}

var effectiveAgentImage = empty(agentImage) ? '${registryPull.outputs.loginServer}/${defaultAgentImagePath}' : agentImage

module app 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: appGroup
  // The app reads its Key Vault references and storage with its identity at start: grant first.
  dependsOn: [
    access
    tasks
    registryPull
  ]
  params: {
    name: appName
    location: location
    tags: tags
    appIdentityId: identities.outputs.appId
    appIdentityClientId: identities.outputs.appClientId
    hostStorageName: hostStorage.outputs.name
    deploymentContainerName: deploymentContainerName
    appInsightsConnectionString: monitoring.outputs.connectionString
    maximumInstanceCount: maximumInstanceCount
    aciSubscriptionId: subscription().subscriptionId
    aciResourceGroup: taskGroup.name
    aciLocation: taskLocation
    aciMaxGroups: aciMaxGroups
    aciMaxCores: aciMaxCores
    aciMaxSpotCores: aciMaxSpotCores
    aciCreateLimits: aciCreateLimits
    aciDeleteLimits: aciDeleteLimits
    registryServer: registryPull.outputs.loginServer
    registryIdentityId: identities.outputs.pullId
    dataBlobEndpoint: dataStorage.outputs.blobEndpoint
    agentImage: effectiveAgentImage
    adminKeySecretUri: vault.outputs.adminKeySecretUri
    signingKeySecretUri: vault.outputs.signingKeySecretUri
    signingKeyPreviousSecretUri: vault.outputs.signingKeyPreviousSecretUri
    durableBackend: durableBackend
    schedulerEndpoint: useScheduler ? scheduler.outputs.endpoint : ''
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = appGroup.name
output AZURE_FUNCTION_APP_NAME string = app.outputs.name
output ACIBATCH_URL string = 'https://${app.outputs.defaultHostName}/api'
output ACIBATCH_TASK_RESOURCE_GROUP string = taskGroup.name
output ACIBATCH_REGISTRY_SERVER string = registryPull.outputs.loginServer
output ACIBATCH_KEY_VAULT_NAME string = vault.outputs.name
output ACIBATCH_STORAGE_ACCOUNT_URL string = dataStorage.outputs.blobEndpoint
// The postprovision hook (infra/hooks/agent-image.sh) builds this image when it is in the deployment's registry.
output ACIBATCH_AGENT_IMAGE string = effectiveAgentImage
output ACIBATCH_DURABLE_BACKEND string = durableBackend
