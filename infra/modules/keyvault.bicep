// Key Vault (RBAC mode) holding the gateway's two shared secrets. The function app
// reads them through Key Vault references, so the values never appear in app settings.

@description('Key Vault name (3-24 characters).')
param name string

param location string
param tags object = {}

@secure()
@description('Break-glass admin key for the gateway management API.')
param gatewayAdminKey string

@secure()
@description('HMAC secret used to hash issued API keys before they are stored.')
param gatewayKeyHashSecret string

resource vault 'Microsoft.KeyVault/vaults@2024-11-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    // RBAC instead of access policies: access is granted with role assignments
    // (Key Vault Secrets User), like every other resource here.
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    // Purge protection is left off so `azd down --purge` can reuse the name in dev;
    // turn it on for production.
    publicNetworkAccess: 'Enabled'
  }
}

resource adminKey 'Microsoft.KeyVault/vaults/secrets@2024-11-01' = {
  parent: vault
  name: 'gateway-admin-key'
  properties: {
    value: gatewayAdminKey
    contentType: 'text/plain'
  }
}

resource keyHash 'Microsoft.KeyVault/vaults/secrets@2024-11-01' = {
  parent: vault
  name: 'gateway-key-hash-secret'
  properties: {
    value: gatewayKeyHashSecret
    contentType: 'text/plain'
  }
}

output name string = vault.name
output id string = vault.id
// Versionless URIs: a Key Vault reference to them follows secret rotation.
output adminKeyUri string = adminKey.properties.secretUri
output keyHashUri string = keyHash.properties.secretUri
