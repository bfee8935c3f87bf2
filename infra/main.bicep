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

@secure()
@description('Optional private JWK that signs the gateway\'s A2A agent cards; stored only in Key Vault. Empty: unsigned cards.')
param agentCardSigningJwk string = ''

// --- Flex Consumption scale (bounds: the plan's documented limits) ---------------------

@description('Flex Consumption scale-out limit (plan range 1-1000); caps cost and the load on Cosmos DB, Storage and the upstream models.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Memory per instance: 512 (0.25 vCPU), 2048 (1 vCPU) or 4096 (2 vCPU) MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

// Why 64 and not the platform default. Flex gives Python apps a very low HTTP concurrency
// per instance unless told otherwise, because a synchronous Python function blocks its
// worker. This app is asyncio end to end (one event loop; the upstream pool allows 1000
// connections), and a streamed chat completion (SSE) holds its slot for the whole
// generation, tens of seconds spent waiting on the model, not on the CPU. With a slot per
// instance, every concurrent stream would cost a cold instance. The CPU bound: the gateway
// uses ~1 ms of CPU per request (docs/benchmarks.md: ~900 req/s on one core, local host) plus the
// Functions host's per-invocation cost, so 64 in-flight requests on a 2048 MB (1 vCPU)
// instance keep the core far from saturation even when they all arrive at once, and their
// buffers are small next to 2 GB. Scale 512 MB instances (0.25 vCPU) down to ~16 and 4096 MB
// up to ~128; lower it if a load test shows CPU-bound latency.
@description('Concurrent HTTP invocations (SSE streams included) one instance takes before Flex adds another (1-1000).')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 64

@description('Always-ready (pre-warmed, billed while idle) instances of the HTTP scale group; 0 scales to zero. Must not exceed maximumInstanceCount; 2 or more with zoneRedundant.')
@minValue(0)
@maxValue(1000)
param httpAlwaysReadyInstances int = 0

@description('Zone-redundant Flex Consumption plan; only in regions that offer it for Flex.')
param zoneRedundant bool = false

// --- Network and data durability ---------------------------------------------------

@description('Private networking: a VNet, the app\'s outbound VNet integration, private endpoints + privatelink DNS for Storage (blob/queue/table), Cosmos DB and Key Vault, and public network access disabled on those. The app itself stays public.')
param enablePrivateNetworking bool = false

@description('Storage replication. ZRS by default; an existing LRS account cannot be switched by redeploying, so pass Standard_LRS for it.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSkuName string = 'Standard_ZRS'

@description('Upstream credentials as app settings resolved from Key Vault, kept across deploys: [{ name: \'UPSTREAM_SECRET_X\', keyVaultSecretName: \'x\' }] (docs/deploy.md, "Upstream secrets").')
@maxLength(200)
param upstreamSecrets array = []

@description('Key Vault soft-delete retention (7-90 days); fixed when the vault is created (purge protection is always on).')
@minValue(7)
@maxValue(90)
param keyVaultSoftDeleteRetentionInDays int = 7

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

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  params: {
    appInsightsName: monitoring.outputs.appInsightsName
    location: location
    tags: tags
  }
}

module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  params: {
    appInsightsName: monitoring.outputs.appInsightsName
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
    skuName: storageSkuName
    privateNetworking: enablePrivateNetworking
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
    privateNetworking: enablePrivateNetworking
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
    agentCardSigningJwk: agentCardSigningJwk
    softDeleteRetentionInDays: keyVaultSoftDeleteRetentionInDays
    privateNetworking: enablePrivateNetworking
  }
}

module network 'modules/network.bicep' = if (enablePrivateNetworking) {
  name: 'network'
  params: {
    name: 'vnet-${token}'
    location: location
    tags: tags
    storageAccountId: storage.outputs.id
    cosmosAccountId: cosmos.outputs.id
    keyVaultId: keyVault.outputs.id
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  // With private networking the endpoints and DNS must exist before the host starts.
  dependsOn: [
    network
  ]
  params: {
    name: 'func-${token}'
    planName: 'plan-${token}'
    location: location
    tags: tags
    storageBlobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: deploymentContainerName
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    httpPerInstanceConcurrency: httpPerInstanceConcurrency
    httpAlwaysReadyInstances: httpAlwaysReadyInstances
    zoneRedundant: zoneRedundant
    virtualNetworkSubnetId: enablePrivateNetworking ? network.outputs.appSubnetId : ''
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
    cosmosCacheContainer: cosmos.outputs.cacheContainerName
    entraTenantId: entraTenantId
    entraAudience: entraAudience
    adminKeyUri: keyVault.outputs.adminKeyUri
    keyHashUri: keyVault.outputs.keyHashUri
    upstreamSecrets: upstreamSecrets
    keyVaultName: keyVault.outputs.name
    cardSigningJwkUri: keyVault.outputs.cardSigningJwkUri
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
