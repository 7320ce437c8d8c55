// The Durable Task Scheduler backend (durableBackend = DurableTaskScheduler): a scheduler and the app's task hub.
// Clients authenticate with Entra ID only; the app's identity gets Durable Task Data Contributor on the hub.
param name string
param location string
param tags object
param skuName string
param taskHubName string

// Dedicated is billed per capacity unit (one is the minimum); Consumption per work item, nothing at idle.
var dedicatedSku = {
  name: 'Dedicated'
  capacity: 1
}
var consumptionSku = {
  name: 'Consumption'
}

resource scheduler 'Microsoft.DurableTask/schedulers@2025-11-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    // Flex Consumption has no fixed outbound addresses without a virtual network, so the allow list is open and
    // the identity-only authentication is the gate.
    ipAllowlist: [
      '0.0.0.0/0'
    ]
    sku: (skuName == 'Dedicated') ? dedicatedSku : consumptionSku
  }
}

resource taskHub 'Microsoft.DurableTask/schedulers/taskHubs@2025-11-01' = {
  parent: scheduler
  name: taskHubName
  properties: {}
}

output endpoint string = scheduler.properties.endpoint
output taskHubName string = taskHub.name
