// Cosmos DB for NoSQL holding the gateway registry (projects, keys, flags, ...).
// Serverless: the registry is small and bursty, so pay-per-request beats provisioned RU/s.

@description('Cosmos DB account name (3-44 lowercase letters, digits, hyphens).')
param name string

param location string
param tags object = {}

param databaseName string = 'gateway'
param containerName string = 'registry'

@description('True when the account is reached only through a private endpoint (main.bicep enablePrivateNetworking).')
param privateNetworking bool = false

resource account 'Microsoft.DocumentDB/databaseAccounts@2025-04-15' = {
  //checkov:skip=CKV_AZURE_101: public network access is Disabled when privateNetworking is true; without a VNet a Flex Consumption app has no fixed outbound IPs, so the public setup stays reachable and accepts only Entra ID tokens (disableLocalAuth).
  //checkov:skip=CKV_AZURE_99: access is restricted to the private endpoint when privateNetworking is true; an IP firewall cannot describe a Flex Consumption app's outbound addresses in the public setup (see CKV_AZURE_101).
  name: name
  location: location
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    capabilities: [
      {
        name: 'EnableServerless'
      }
    ]
    consistencyPolicy: {
      // Session gives read-your-writes per client, which the ETag-based updates rely on.
      defaultConsistencyLevel: 'Session'
    }
    locations: [
      {
        locationName: location
        failoverPriority: 0
        isZoneRedundant: false
      }
    ]
    // Keyless: only Entra ID tokens (data-plane RBAC) are accepted; no account keys.
    disableLocalAuth: true
    // Databases/containers are managed by this template (ARM), never by the app;
    // matches COSMOS_CREATE_IF_MISSING=false.
    disableKeyBasedMetadataWriteAccess: true
    minimalTlsVersion: 'Tls12'
    publicNetworkAccess: privateNetworking ? 'Disabled' : 'Enabled'
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2025-04-15' = {
  parent: account
  name: databaseName
  properties: {
    resource: {
      id: databaseName
    }
  }
}

resource container 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2025-04-15' = {
  parent: database
  name: containerName
  properties: {
    resource: {
      id: containerName
      // The code partitions by project id; global documents use pk '_global'.
      partitionKey: {
        paths: [
          '/pk'
        ]
        kind: 'Hash'
        version: 2
      }
    }
  }
}

output name string = account.name
output id string = account.id
output endpoint string = account.properties.documentEndpoint
output databaseName string = database.name
output containerName string = container.name
