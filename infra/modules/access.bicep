// Every role the app's identity holds on the resources of the app resource group, each on the narrowest scope
// that works. The other two grants live with their scopes: AcrPull in registry-pull.bicep, the container groups
// role in tasks.bicep. tests/deploy/test_template.py asserts this list is exactly the one in docs/deploy.md.
param appPrincipalId string
param pullIdentityName string
param hostStorageName string
param dataStorageName string
param vaultName string
param appInsightsName string
param useScheduler bool
param schedulerName string
param taskHubName string

var roles = loadJsonContent('../roles.json')

resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: hostStorageName
}

resource dataStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: dataStorageName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource pullIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' existing = {
  name: pullIdentityName
}

resource taskHub 'Microsoft.DurableTask/schedulers/taskHubs@2025-11-01' existing = if (useScheduler) {
  name: '${schedulerName}/${taskHubName}'
}

// The Functions host (identity-based AzureWebJobsStorage) and the Flex Consumption deployment package need blob
// ownership of the host account: the host takes blob leases and manages its containers.
resource hostBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, appPrincipalId, roles.storageBlobDataOwner)
  scope: hostStorage
  properties: {
    description: 'acibatch: Functions host storage and the deployment package'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The Azure Storage Durable backend keeps its task hub in queues and tables of the host account.
resource hostQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!useScheduler) {
  name: guid(hostStorage.id, appPrincipalId, roles.storageQueueDataContributor)
  scope: hostStorage
  properties: {
    description: 'acibatch: Durable Functions task hub queues (Azure Storage backend)'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource hostTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!useScheduler) {
  name: guid(hostStorage.id, appPrincipalId, roles.storageTableDataContributor)
  scope: hostStorage
  properties: {
    description: 'acibatch: Durable Functions task hub tables (Azure Storage backend)'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Task files and whole logs in the data account, which holds nothing else: the app creates each tenant's container
// (acb-<tenant>), reads and writes its blobs, and gets the user delegation key it signs per-attempt SAS with. Get
// User Delegation Key acts on the account, so its action (generateUserDelegationKey) only counts when assigned on the
// account or above, and containers created later cannot be scopes in advance: the account is the narrowest scope.
// A user delegation SAS never grants more than its signer's role; the ones the app signs grant read/list or
// create/write/add on one tenant container or blob, for one attempt.
resource dataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(dataStorage.id, appPrincipalId, roles.storageBlobDataContributor)
  scope: dataStorage
  properties: {
    description: 'acibatch: tenant containers, task files and logs in the data account, and user delegation SAS'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Key Vault references in the app settings (BATCH_ADMIN_KEY, BATCH_CALLBACK_SIGNING_KEY[_PREVIOUS]).
resource vaultSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appPrincipalId, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    description: 'acibatch: Key Vault references for the admin and signing keys'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Application Insights has local auth off, so telemetry is sent with the app's identity.
resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, appPrincipalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    description: 'acibatch: telemetry to Application Insights with Entra ID auth'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// ARM requires assign rights on a user-assigned identity to attach it to a container group (ACI_REGISTRY_IDENTITY).
resource pullIdentityOperator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(pullIdentity.id, appPrincipalId, roles.managedIdentityOperator)
  scope: pullIdentity
  properties: {
    description: 'acibatch: attach the image-pull identity to task container groups'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.managedIdentityOperator)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The Durable Task Scheduler backend: orchestrations, activities and entities on the app's task hub only.
resource taskHubContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (useScheduler) {
  name: guid(taskHub.id, appPrincipalId, roles.durableTaskDataContributor)
  scope: taskHub
  properties: {
    description: 'acibatch: Durable Task Scheduler task hub'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.durableTaskDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}
