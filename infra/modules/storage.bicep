// Storage account used by the Functions host (AzureWebJobsStorage: timers, leases,
// queues) and by Flex Consumption for the deployment package. Tables are created by the
// app at startup; the tools approvals queue and its poison queue are declared below.

@description('Storage account name (3-24 lowercase letters and digits).')
param name string

param location string
param tags object = {}

@description('Blob container that holds the Flex Consumption deployment package.')
param deploymentContainerName string

@description('Replication. ZRS by default: host leases/timers, app queues and tables survive a zone outage. An account created as LRS cannot be switched to ZRS by redeploying (Azure needs a SKU conversion): pass Standard_LRS for such environments.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param skuName string = 'Standard_ZRS'

@description('True when the account is reached only through private endpoints (main.bicep enablePrivateNetworking).')
param privateNetworking bool = false

resource account 'Microsoft.Storage/storageAccounts@2025-01-01' = {
  //checkov:skip=CKV_AZURE_35: default action is Deny when privateNetworking is true; without a VNet a Flex Consumption app has no fixed outbound IPs to allow, so the public setup must Allow and relies on Entra-only (keyless) access.
  //checkov:skip=CKV_AZURE_206: replication is the skuName parameter, default Standard_ZRS (asserted by tests/unit/test_infra_bicep.py); checkov does not resolve parameter defaults.
  //checkov:skip=CKV_AZURE_59: public network access is Disabled when privateNetworking is true; the public setup is the keyless, Entra-only one (see CKV_AZURE_35).
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    // Keyless: every caller (host, app code, deployment) uses Entra ID + RBAC,
    // so account keys are disabled and cannot leak.
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: privateNetworking ? 'Disabled' : 'Enabled'
    networkAcls: {
      defaultAction: privateNetworking ? 'Deny' : 'Allow'
      bypass: 'AzureServices'
    }
  }
}

@description('Tools approvals queue; the Functions host moves a message that failed maxDequeueCount times to <name>-poison, which the app also reads (so a poisoned submission stays visible).')
param toolsApprovalsQueue string = 'tool-submissions'

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2025-01-01' = {
  parent: account
  name: 'default'
}

resource approvalsQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2025-01-01' = {
  parent: queueService
  name: toolsApprovalsQueue
}

resource approvalsPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2025-01-01' = {
  parent: queueService
  name: '${toolsApprovalsQueue}-poison'
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2025-01-01' = {
  parent: account
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-01-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

output toolsApprovalsQueue string = approvalsQueue.name
output name string = account.name
output id string = account.id
output blobEndpoint string = account.properties.primaryEndpoints.blob
