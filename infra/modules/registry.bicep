// A new Basic container registry for the task images (when no existing registry is given): no admin user, no
// anonymous pull; task groups pull with the image-pull identity's AcrPull.
param name string
param location string
param tags object

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: name
  location: location
  tags: tags
  // checkov:skip=CKV_AZURE_139:Container Instances pulls task images over the registry's public endpoint; private access needs Premium and a virtual network.
  // checkov:skip=CKV_AZURE_163:Image scanning is Microsoft Defender for Containers, a subscription plan rather than a registry property.
  // checkov:skip=CKV_AZURE_166:Quarantine is a Premium-only feature; pass an existing Premium registry (registryName) to use it.
  sku: {
    name: 'Basic'
  }
  properties: {
    adminUserEnabled: false
    anonymousPullEnabled: false
    publicNetworkAccess: 'Enabled'
  }
}

output loginServer string = registry.properties.loginServer
