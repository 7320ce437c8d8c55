// The app's two secrets (and the previous signing key during a rotation) in a vault with Azure RBAC: the app's
// identity reads them with Key Vault Secrets User (access.bicep) through Key Vault references in its settings.
param name string
param location string
param tags object

@secure()
param adminKey string

@secure()
param signingKey string

@secure()
param signingKeyPrevious string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  // checkov:skip=CKV_AZURE_109:Key Vault references of an app without virtual network integration resolve over the vault's public endpoint; access is Entra ID with RBAC only.
  // checkov:skip=CKV_AZURE_189:Key Vault references of an app without virtual network integration resolve over the vault's public endpoint; access is Entra ID with RBAC only.
  // checkov:skip=CKV_AZURE_110:Purge protection would keep the vault name reserved after azd down --purge, so a re-provision fails; the secrets are kept in the azd environment and soft delete stays on.
  // checkov:skip=CKV_AZURE_42:Purge protection would keep the vault name reserved after azd down --purge, so a re-provision fails; the secrets are kept in the azd environment and soft delete stays on.
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource adminKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'batch-admin-key'
  // checkov:skip=CKV_AZURE_41:An expired secret would stop the app; keys are rotated on purpose with the documented azd steps.
  properties: {
    value: adminKey
    contentType: 'text/plain'
  }
}

resource signingKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'batch-callback-signing-key'
  // checkov:skip=CKV_AZURE_41:An expired secret would stop the app; keys are rotated on purpose with the documented azd steps.
  properties: {
    value: signingKey
    contentType: 'text/plain'
  }
}

resource signingKeyPreviousSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(signingKeyPrevious)) {
  parent: vault
  name: 'batch-callback-signing-key-previous'
  // checkov:skip=CKV_AZURE_41:An expired secret would stop the app; keys are rotated on purpose with the documented azd steps.
  // checkov:skip=CKV_AZURE_114:False positive: checkov reads a conditional resource's body one level too high; contentType is set below.
  properties: {
    value: signingKeyPrevious
    contentType: 'text/plain'
  }
}

output name string = vault.name
// Version-less URIs: the app follows the latest version of each secret.
output adminKeySecretUri string = adminKeySecret.properties.secretUri
output signingKeySecretUri string = signingKeySecret.properties.secretUri
output signingKeyPreviousSecretUri string = empty(signingKeyPrevious) ? '' : signingKeyPreviousSecret.properties.secretUri
