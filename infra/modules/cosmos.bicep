// Cosmos DB for NoSQL holding the gateway registry (projects, keys, flags, ...).
// Serverless: the registry is small and bursty, so pay-per-request beats provisioned RU/s.

@description('Cosmos DB account name (3-44 lowercase letters, digits, hyphens).')
param name string

param location string
param tags object = {}

param databaseName string = 'gateway'
param containerName string = 'registry'

resource account 'Microsoft.DocumentDB/databaseAccounts@2025-04-15' = {
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
    publicNetworkAccess: 'Enabled'
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
output endpoint string = account.properties.documentEndpoint
output databaseName string = database.name
output containerName string = container.name
