// Flex Consumption plan + Linux Python function app with a system-assigned identity.
// App settings are applied by appsettings.bicep *after* the role assignments exist, so
// Key Vault references and identity-based storage resolve on the first start.

@description('Function app name (globally unique host name).')
param name string

@description('Flex Consumption plan name.')
param planName string

param location string
param tags object = {}

@description('Blob endpoint of the storage account, e.g. https://<acct>.blob.core.windows.net/.')
param storageBlobEndpoint string

@description('Container that receives the deployment package (azd deploy / func publish).')
param deploymentContainerName string

@description('Upper bound for scale-out; caps cost and downstream load.')
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Memory per instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

resource plan 'Microsoft.Web/serverfarms@2024-11-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true // Linux
  }
}

resource site 'Microsoft.Web/sites@2024-11-01' = {
  name: name
  location: location
  // azd finds the deployment target of service `api` (azure.yaml) by this tag.
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          // The package is pulled with the app identity (shared keys are disabled).
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      // On Flex Consumption the worker runtime lives here, not in FUNCTIONS_WORKER_RUNTIME.
      runtime: {
        name: 'python'
        version: '3.13'
      }
    }
  }
}

output name string = site.name
output principalId string = site.identity.principalId
output defaultHostName string = site.properties.defaultHostName
