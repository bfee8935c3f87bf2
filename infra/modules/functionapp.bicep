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

// Bounds below are the Flex Consumption plan's documented limits (flex-consumption-plan,
// "Instance sizes" and "Considerations: Scale"): main.bicep repeats them on its parameters.
@description('Upper bound for scale-out; caps cost and downstream load.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Memory per instance in MB (512 MB = 0.25 vCPU, 2048 MB = 1 vCPU, 4096 MB = 2 vCPU).')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Concurrent HTTP invocations one instance takes before the platform adds another; see main.bicep for the choice.')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 64

@description('Always-ready instances for the `http` scale group (0 = scale to zero). Billed while idle; must not exceed maximumInstanceCount.')
@minValue(0)
@maxValue(1000)
param httpAlwaysReadyInstances int = 0

@description('Spread instances over availability zones (only in regions where Flex Consumption offers it).')
param zoneRedundant bool = false

@description('Subnet (delegated to Microsoft.App/environments) for outbound VNet integration; empty for none.')
param virtualNetworkSubnetId string = ''

// All HTTP functions form one scale group, `http`; always-ready counts are per group.
var httpAlwaysReady = [
  {
    name: 'http'
    instanceCount: httpAlwaysReadyInstances
  }
]

resource plan 'Microsoft.Web/serverfarms@2024-11-01' = {
  //checkov:skip=CKV_AZURE_225: zone redundancy is the zoneRedundant parameter: Flex Consumption offers it only in some regions and the deployment fails elsewhere, so it cannot be on by default.
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
    zoneRedundant: zoneRedundant
  }
}

resource site 'Microsoft.Web/sites@2024-11-01' = {
  //checkov:skip=CKV_AZURE_222: the gateway is a public API by design (clients authenticate with Entra tokens or API keys in the app); enablePrivateNetworking closes the data services, not the front door.
  //checkov:skip=CKV_AZURE_17: clients of an OpenAI-compatible API (SDKs, curl, browsers) do not present TLS client certificates; callers are authenticated by the app (Entra ID tokens, API keys).
  //checkov:skip=CKV_AZURE_78: Flex Consumption has no FTP/FTPS endpoint: siteConfig.ftpsState is on the plan's deprecated-properties list ("FTPS not supported"), code is pulled from the deployment blob container.
  //checkov:skip=CKV_AZURE_212: Flex Consumption has no fixed instance count (numberOfWorkers); warm capacity is the httpAlwaysReadyInstances parameter (default 0: scale to zero).
  //checkov:skip=CKV_AZURE_213: the platform health check would evict instances whose /readyz fails, and /readyz fails while Cosmos DB is unreachable: exactly when the gateway keeps serving last-known configuration (fail static), so it would take the whole app down in a dependency outage.
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
    // The gateway is the public entry point; see CKV_AZURE_222 above.
    publicNetworkAccess: 'Enabled'
    // Outbound VNet integration: with private networking every call to Storage,
    // Cosmos DB and Key Vault (references included) leaves through this subnet.
    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      http20Enabled: true
    }
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
        alwaysReady: httpAlwaysReadyInstances > 0 ? httpAlwaysReady : []
        triggers: {
          http: {
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
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
