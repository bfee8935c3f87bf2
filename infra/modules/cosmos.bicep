// Cosmos DB for NoSQL holding the gateway registry (projects, keys, flags, ...).
// Serverless: the registry is small and bursty, so pay-per-request beats provisioned RU/s.

@description('Cosmos DB account name (3-44 lowercase letters, digits, hyphens).')
param name string

param location string
param tags object = {}

param databaseName string = 'gateway'
param containerName string = 'registry'

@description('Container of the response cache (shared/cache_semantic), partitioned by cache scope.')
param cacheContainerName string = 'responsecache'

@description('Dimensions of the cache embeddings model (text-embedding-3-small: 1536). Fixed by the vector policy.')
@minValue(2)
@maxValue(4096)
param cacheVectorDimensions int = 1536

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
      {
        // VectorDistance queries and vector indexes (the semantic response cache)
        name: 'EnableNoSQLVectorSearch'
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

// The response cache: one partition per cache scope (project, model, and what the settings vary by). Entries
// expire by their own `ttl` (defaultTtl -1: TTL on, no default). `/vector` holds the prompt embedding: a vector
// embedding policy (cosine) and a quantizedFlat index make `ORDER BY VectorDistance(c.vector, @v)` an index
// lookup; the vector is excluded from the range index.
resource cacheContainer 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2025-04-15' = {
  parent: database
  name: cacheContainerName
  properties: {
    resource: {
      id: cacheContainerName
      partitionKey: {
        paths: [
          '/pk'
        ]
        kind: 'Hash'
        version: 2
      }
      defaultTtl: -1
      vectorEmbeddingPolicy: {
        vectorEmbeddings: [
          {
            path: '/vector'
            dataType: 'float32'
            distanceFunction: 'cosine'
            dimensions: cacheVectorDimensions
          }
        ]
      }
      indexingPolicy: {
        indexingMode: 'consistent'
        automatic: true
        includedPaths: [
          {
            path: '/*'
          }
        ]
        excludedPaths: [
          {
            path: '/vector/*'
          }
          {
            path: '/answer/*'
          }
          {
            path: '/prompt/?'
          }
        ]
        vectorIndexes: [
          {
            path: '/vector'
            type: 'quantizedFlat'
          }
        ]
      }
    }
  }
}

output name string = account.name
output id string = account.id
output endpoint string = account.properties.documentEndpoint
output databaseName string = database.name
output containerName string = container.name
output cacheContainerName string = cacheContainer.name
