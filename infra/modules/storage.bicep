// A storage account reachable only with Entra ID (shared keys off), TLS 1.2, no anonymous blob access, and the
// private blob containers it holds.
param name string
param location string
param tags object
param containers array

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  // checkov:skip=CKV_AZURE_35:A Flex Consumption app without virtual network integration reaches its storage over the public endpoint; shared keys are off, so access is Entra ID only.
  // checkov:skip=CKV_AZURE_59:A Flex Consumption app without virtual network integration reaches its storage over the public endpoint; shared keys are off, so access is Entra ID only.
  // checkov:skip=CKV_AZURE_206:Locally redundant storage keeps the idle cost lowest; choose Standard_ZRS or GRS for production data.
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource blobContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [
  for container in containers: {
    parent: blobService
    name: container
    properties: {
      publicAccess: 'None'
    }
  }
]

output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output containerUrls array = [for container in containers: '${account.properties.primaryEndpoints.blob}${container}']
