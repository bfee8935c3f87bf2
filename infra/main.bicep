// AI gateway: Flex Consumption function app + Cosmos DB + Storage + Key Vault + monitoring.
// Resource-group scope so the same template serves `azd up` and `az deployment group create`.
targetScope = 'resourceGroup'

@minLength(1)
@maxLength(64)
@description('azd environment name; seeds resource names and the azd-env-name tag.')
param environmentName string

@description('Region for every resource; must offer the Flex Consumption plan.')
param location string = resourceGroup().location

@description('Object id of the deploying user, granted data access for debugging. Empty to skip.')
param principalId string = ''

@description('Entra tenant that issues the tokens the gateway accepts.')
param entraTenantId string = subscription().tenantId

@minLength(1)
@description('Expected `aud` of access tokens: the API app registration\'s app ID URI (api://...) or client id.')
param entraAudience string

@secure()
@minLength(32)
@description('Admin key for the management API; stored only in Key Vault.')
param gatewayAdminKey string

@secure()
@minLength(32)
@description('HMAC secret used to hash API keys; stored only in Key Vault. Changing it invalidates issued keys.')
param gatewayKeyHashSecret string

@description('Flex Consumption scale-out limit.')
@maxValue(1000)
param maximumInstanceCount int = 100

// Deterministic per subscription/RG/environment, so re-provisioning updates in place.
var token = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = {
  'azd-env-name': environmentName
}
var deploymentContainerName = 'app-package-${token}'
// Names the Python code receives through COSMOS_DATABASE / COSMOS_CONTAINER.
var cosmosDatabaseName = 'gateway'
var cosmosContainerName = 'registry'

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    logAnalyticsName: 'log-${token}'
    appInsightsName: 'appi-${token}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: 'st${token}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
  }
}

module cosmos 'modules/cosmos.bicep' = {
  name: 'cosmos'
  params: {
    name: 'cosmos-${token}'
    location: location
    tags: tags
    databaseName: cosmosDatabaseName
    containerName: cosmosContainerName
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    name: 'kv-${token}'
    location: location
    tags: tags
    gatewayAdminKey: gatewayAdminKey
    gatewayKeyHashSecret: gatewayKeyHashSecret
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    name: 'func-${token}'
    planName: 'plan-${token}'
    location: location
    tags: tags
    storageBlobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: deploymentContainerName
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: 2048
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  params: {
    appPrincipalId: functionApp.outputs.principalId
    userPrincipalId: principalId
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    cosmosAccountName: cosmos.outputs.name
  }
}

module appSettings 'modules/appsettings.bicep' = {
  name: 'appsettings'
  // Settings last: the identity must already hold its roles when the host starts.
  dependsOn: [
    roles
  ]
  params: {
    functionAppName: functionApp.outputs.name
    storageAccountName: storage.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    cosmosEndpoint: cosmos.outputs.endpoint
    cosmosDatabase: cosmos.outputs.databaseName
    cosmosContainer: cosmos.outputs.containerName
    entraTenantId: entraTenantId
    entraAudience: entraAudience
    adminKeyUri: keyVault.outputs.adminKeyUri
    keyHashUri: keyVault.outputs.keyHashUri
  }
}

// Upper-case outputs become azd environment values (.azure/<env>/.env). None are secrets.
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output FUNCTION_APP_HOSTNAME string = functionApp.outputs.defaultHostName
output FUNCTION_APP_URL string = 'https://${functionApp.outputs.defaultHostName}'
output COSMOS_ENDPOINT string = cosmos.outputs.endpoint
output COSMOS_DATABASE string = cosmosDatabaseName
output COSMOS_CONTAINER string = cosmosContainerName
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.appInsightsName
output ENTRA_TENANT_ID string = entraTenantId
