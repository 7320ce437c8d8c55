// Deployed into the registry's resource group (new or existing): AcrPull for the image-pull identity on that
// registry only.
param registryName string
param pullIdentityPrincipalId string

var roles = loadJsonContent('../roles.json')

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = {
  name: registryName
}

resource acrPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, pullIdentityPrincipalId, roles.acrPull)
  scope: registry
  properties: {
    description: 'acibatch: task container groups pull their images with the image-pull identity'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.acrPull)
    principalId: pullIdentityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output loginServer string = registry.properties.loginServer
