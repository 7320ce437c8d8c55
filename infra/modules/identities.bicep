// Two user-assigned identities: the app's own (storage, vault, monitoring, ACI, Durable) and the image-pull
// identity ACI gives each task group so it can pull from the registry (ACI cannot pull from ACR with a
// system-assigned identity). Keeping them apart means a task group never holds the app's rights.
param location string
param tags object
param token string

resource appIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-acibatch-app-${token}'
  location: location
  tags: tags
}

resource pullIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-acibatch-pull-${token}'
  location: location
  tags: tags
}

output appId string = appIdentity.id
output appClientId string = appIdentity.properties.clientId
output appPrincipalId string = appIdentity.properties.principalId
output pullId string = pullIdentity.id
output pullName string = pullIdentity.name
output pullPrincipalId string = pullIdentity.properties.principalId
