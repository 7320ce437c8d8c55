// The task resource group: the app's custom container groups role on it, and (optionally) a container group
// profile. A profile is a free template that runs nothing; declaring it makes Azure Resource Manager register
// Microsoft.ContainerInstance for the subscription as part of this deployment, as it does for every resource
// provider a template deploys to. Without the registration the app's first create fails with
// MissingSubscriptionRegistration.
param location string
param tags object
param appPrincipalId string
param containerGroupsRoleId string
param registerProvider bool

resource containerGroupsOperator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, appPrincipalId, containerGroupsRoleId)
  properties: {
    description: 'acibatch: create, watch and delete task container groups'
    roleDefinitionId: containerGroupsRoleId
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource providerRegistration 'Microsoft.ContainerInstance/containerGroupProfiles@2025-09-01' = if (registerProvider) {
  name: 'acibatch-provider-registration'
  location: location
  tags: tags
  properties: {
    osType: 'Linux'
    sku: 'Standard'
    restartPolicy: 'Never'
    containers: [
      {
        name: 'unused'
        properties: {
          image: 'mcr.microsoft.com/azurelinux/base/core:3.0'
          command: [
            'true'
          ]
          resources: {
            requests: {
              cpu: 1
              memoryInGB: 1
            }
          }
        }
      }
    ]
  }
}
