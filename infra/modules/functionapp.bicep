// The Function App on Flex Consumption (Linux, Python 3.11), running as the app's user-assigned identity, and its
// app settings: every setting acibatch/settings.py reads has an entry here (tests/deploy checks it), plus the
// host's identity-based connections and the Durable backend switch.
param name string
param location string
param tags object
param appIdentityId string
param appIdentityClientId string
param hostStorageName string
param deploymentContainerName string
param appInsightsConnectionString string
param maximumInstanceCount int
param aciSubscriptionId string
param aciResourceGroup string
param aciLocation string
param aciMaxGroups int
param aciMaxCores int
param aciMaxSpotCores int
param aciCreateLimits string
param aciDeleteLimits string
param registryServer string
param registryIdentityId string
param dataBlobEndpoint string
param agentImage string
param adminKeySecretUri string
param signingKeySecretUri string
param signingKeyPreviousSecretUri string
param durableBackend string
param schedulerEndpoint string

resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: hostStorageName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${name}'
  location: location
  tags: tags
  kind: 'functionapp'
  // checkov:skip=CKV_AZURE_225:Zone redundancy is left off for the lowest idle cost; enable it on the plan in a region that offers it for Flex Consumption.
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  // azd finds the service to deploy by this tag (azure.yaml's service "api").
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  // checkov:skip=CKV_AZURE_222:The API and the task containers' callbacks reach the app over its public endpoint; every route checks a bearer key or a per-attempt token.
  // checkov:skip=CKV_AZURE_17:Clients authenticate with bearer keys and task containers with per-attempt tokens; neither can present a client certificate.
  // checkov:skip=CKV_AZURE_212:Flex Consumption scales from zero by design; a minimum instance count would bill at idle.
  // checkov:skip=CKV_AZURE_213:Flex Consumption replaces unhealthy instances itself; GET /api/health serves an external probe.
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${appIdentityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Key Vault references resolve with this identity; without it they would need a system-assigned one.
    keyVaultReferenceIdentity: appIdentityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostStorage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: appIdentityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: 2048
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Deployments use Entra ID tokens (azd, Core Tools, the zip deploy); basic-auth publishing stays off.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

// The host's own connections, all with the app's identity. Flex Consumption sets the runtime and its version
// from functionAppConfig and does not support FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION,
// FUNCTIONS_WORKER_PROCESS_COUNT and the other settings it replaced; a test keeps them out.
var hostSettings = {
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: appIdentityClientId
  AzureWebJobsStorage__blobServiceUri: hostStorage.properties.primaryEndpoints.blob
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${appIdentityClientId};Authorization=AAD'
  // DefaultAzureCredential (acibatch.aci) picks the user-assigned identity by this client id.
  AZURE_CLIENT_ID: appIdentityClientId
}

// The settings acibatch/settings.py reads. An empty value is "unset" to the app (settings.py), so the ones that
// stay unset in Azure are listed with '' and the reason.
var acibatchSettings = {
  ACI_SUBSCRIPTION_ID: aciSubscriptionId
  ACI_RESOURCE_GROUP: aciResourceGroup
  ACI_LOCATION: aciLocation
  // Unset: real ARM with DefaultAzureCredential. These two point the app at the local ACI emulator only.
  ACI_ENDPOINT: ''
  ACI_ENDPOINT_TOKEN: ''
  ACI_REGISTRY_SERVER: registryServer
  // Task groups pull with the image-pull identity, never with a registry password.
  ACI_REGISTRY_IDENTITY: registryIdentityId
  ACI_REGISTRY_USERNAME: ''
  ACI_REGISTRY_PASSWORD: ''
  ACI_MAX_GROUPS: string(aciMaxGroups)
  ACI_MAX_CORES: string(aciMaxCores)
  ACI_MAX_SPOT_CORES: string(aciMaxSpotCores)
  // Empty keeps the app's default create rate (acibatch.armrate), which follows ACI's documented limits.
  ACI_CREATE_LIMITS: aciCreateLimits
  ACI_DELETE_LIMITS: aciDeleteLimits
  BATCH_ADMIN_KEY: '@Microsoft.KeyVault(SecretUri=${adminKeySecretUri})'
  BATCH_CALLBACK_SIGNING_KEY: '@Microsoft.KeyVault(SecretUri=${signingKeySecretUri})'
  BATCH_CALLBACK_SIGNING_KEY_PREVIOUS: empty(signingKeyPreviousSecretUri) ? '' : '@Microsoft.KeyVault(SecretUri=${signingKeyPreviousSecretUri})'
  BATCH_CALLBACK_BASE_URL: 'https://${site.properties.defaultHostName}'
  BATCH_POLL_SECONDS: '30'
  // 'perAttempt' makes a container's report one raise with no read; set it only once this build runs on every
  // worker (docs/callbacks.md, "Turning per-attempt names on"): an older build cannot run such a task.
  BATCH_CALLBACK_EVENTS: 'shared'
  // 'true' makes a job's chunks start its tasks in waves (about twice ACI_MAX_GROUPS at once); set it only once this
  // build runs on every worker (docs/versioning.md, "Turning task waves on"): an older build breaks such a chunk.
  BATCH_TASK_WAVES: 'false'
  // The orphan sweep's timer binding reads this setting by name, so it must exist.
  BATCH_SWEEP_SCHEDULE: '0 */5 * * * *'
  BATCH_SWEEP_GRACE_SECONDS: '600'
  BATCH_MAX_BODY_BYTES: '1048576'
  // The host reads a whole body before the app can refuse it: keep its own cap a little above the app's.
  FUNCTIONS_REQUEST_BODY_SIZE_LIMIT: '4194304'
  // Plain-http notifyUrls are for local use only.
  BATCH_OUTBOUND_ALLOW_HTTP: 'false'
  BATCH_OUTBOUND_ALLOW: ''
  // Files and whole logs: the data account with the app identity (AZURE_CLIENT_ID), user delegation SAS per attempt.
  BATCH_STORAGE_ACCOUNT_URL: dataBlobEndpoint
  // Unset: a connection string carries an account key, for Azurite only; the data account has shared keys off.
  BATCH_STORAGE_CONNECTION_STRING: ''
  BATCH_STORAGE_CONTAINER_PREFIX: 'acb-'
  // In the registry the task groups pull from with the image-pull identity (main.bicep's agentImage).
  BATCH_AGENT_IMAGE: agentImage
  // Empty keeps the app's defaults for the agent sidecar's request (0.1 CPU, 0.2 GB).
  BATCH_AGENT_CPU: ''
  BATCH_AGENT_MEMORY_GB: ''
  // Empty keeps the app's default (1800 s) for how long the sidecar waits for the task container to start.
  BATCH_AGENT_START_TIMEOUT_SECONDS: ''
}

// The Azure Storage backend (host.json's default) keeps its task hub in the host account's queues and tables.
var storageBackendSettings = {
  AzureWebJobsStorage__queueServiceUri: hostStorage.properties.primaryEndpoints.queue
  AzureWebJobsStorage__tableServiceUri: hostStorage.properties.primaryEndpoints.table
}

// The Durable Task Scheduler backend: app settings override host.json's storageProvider, so switching is a
// parameter, not a code change. The extension bundle 4.x in host.json carries the scheduler provider.
var schedulerBackendSettings = {
  AzureFunctionsJobHost__extensions__durableTask__storageProvider__type: 'azureManaged'
  AzureFunctionsJobHost__extensions__durableTask__storageProvider__connectionStringName: 'DURABLE_TASK_SCHEDULER_CONNECTION_STRING'
  DURABLE_TASK_SCHEDULER_CONNECTION_STRING: 'Endpoint=${schedulerEndpoint};Authentication=ManagedIdentity;ClientID=${appIdentityClientId}'
}

var backendSettings = (durableBackend == 'DurableTaskScheduler') ? schedulerBackendSettings : storageBackendSettings

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_13:False positive: reads site configuration; this resource holds only app settings (the site is checked above).
  // checkov:skip=CKV_AZURE_63:False positive: reads site configuration; this resource holds only app settings (the site is checked above).
  // checkov:skip=CKV_AZURE_65:False positive: reads site configuration; this resource holds only app settings (the site is checked above).
  parent: site
  // checkov:skip=CKV_AZURE_66:False positive: reads site configuration; this resource holds only app settings (the site is checked above).
  // checkov:skip=CKV_AZURE_80:False positive: reads site configuration; this resource holds only app settings (the site is checked above).
  name: 'appsettings'
  // checkov:skip=CKV_AZURE_88:False positive: reads site configuration; this resource holds only app settings (the site is checked above).
  // checkov:skip=CKV_AZURE_222:False positive: reads site configuration; this resource holds only app settings (the site is checked above).
  properties: union(hostSettings, acibatchSettings, backendSettings)
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
