// Key Vault (RBAC mode) holding the gateway's two shared secrets. The function app
// reads them through Key Vault references, so the values never appear in app settings.

@description('Key Vault name (3-24 characters).')
param name string

param location string
param tags object = {}

@description('Days a deleted vault/secret stays recoverable (7-90). Fixed when the vault is created, so the default keeps the value existing vaults were created with; use 90 for a new production vault.')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 7

@description('True when the vault is reached only through a private endpoint (main.bicep enablePrivateNetworking).')
param privateNetworking bool = false

@secure()
@description('Break-glass admin key for the gateway management API.')
param gatewayAdminKey string

@secure()
@description('HMAC secret used to hash issued API keys before they are stored.')
param gatewayKeyHashSecret string

@secure()
@description('Optional private JWK (EC P-256, RSA or Ed25519) that signs the gateway\'s A2A agent cards. Empty: no secret is written here; cards stay unsigned until an operator adds the secret agent-card-signing-jwk (docs/deploy.md).')
param agentCardSigningJwk string = ''

resource vault 'Microsoft.KeyVault/vaults@2024-11-01' = {
  //checkov:skip=CKV_AZURE_109: the firewall denies by default when privateNetworking is true; in the public setup Key Vault references are resolved from a Flex Consumption app with no fixed outbound IPs, so no IP rule could allow it (RBAC still limits access to the app identity).
  //checkov:skip=CKV_AZURE_189: public network access is Disabled when privateNetworking is true; the public setup needs it for the Key Vault references (see CKV_AZURE_109).
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
    softDeleteRetentionInDays: softDeleteRetentionInDays
    // Nobody (not even an owner) can purge the vault or a secret before the retention
    // ends: a deleted HMAC secret would otherwise invalidate every issued API key for
    // good. Cannot be turned off again; `azd down --purge` then cannot purge the vault,
    // so a re-provisioned environment must use another name (docs/deploy.md).
    enablePurgeProtection: true
    publicNetworkAccess: privateNetworking ? 'Disabled' : 'Enabled'
    networkAcls: {
      defaultAction: privateNetworking ? 'Deny' : 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource adminKey 'Microsoft.KeyVault/vaults/secrets@2024-11-01' = {
  //checkov:skip=CKV_AZURE_41: deliberately no expiry. The gateway reads this break-glass admin key through a Key Vault reference at every start; reads of an expired secret may be refused (SecretExpired), which would lock admins out on a date nobody chose. Rotation is explicit (docs/deploy.md, Secrets in Key Vault).
  parent: vault
  name: 'gateway-admin-key'
  properties: {
    value: gatewayAdminKey
    contentType: 'text/plain'
  }
}

resource keyHash 'Microsoft.KeyVault/vaults/secrets@2024-11-01' = {
  //checkov:skip=CKV_AZURE_41: deliberately no expiry. This secret is the gateway's root of trust, read through a Key Vault reference at every start; reads of an expired secret may be refused (SecretExpired), which would take the gateway down on a date nobody chose. Rotating it invalidates every issued API key, so it has no rotation period; rotation is explicit (docs/deploy.md, Secrets in Key Vault).
  parent: vault
  name: 'gateway-key-hash-secret'
  properties: {
    value: gatewayKeyHashSecret
    contentType: 'text/plain'
  }
}

resource cardSigningJwk 'Microsoft.KeyVault/vaults/secrets@2024-11-01' = if (!empty(agentCardSigningJwk)) {
  //checkov:skip=CKV_AZURE_114: contentType IS set below ('application/jwk+json'); checkov's Bicep parser does not read the properties of a conditional (`= if (...)`) resource, so it reports it missing.
  //checkov:skip=CKV_AZURE_41: deliberately no expiry, like the gateway's other secrets: read through a Key Vault reference at every start; an expired secret would silently turn card signing off. Rotation is explicit (docs/deploy.md): publish the new key's JWKS first.
  parent: vault
  name: 'agent-card-signing-jwk'
  properties: {
    value: agentCardSigningJwk
    contentType: 'application/jwk+json'
  }
}

output name string = vault.name
output id string = vault.id
// Versionless URIs: a Key Vault reference to them follows secret rotation.
output adminKeyUri string = adminKey.properties.secretUri
output keyHashUri string = keyHash.properties.secretUri
// Built from the vault URI (the secret may not exist yet): an unresolved reference reads as unset (unsigned cards).
output cardSigningJwkUri string = '${vault.properties.vaultUri}secrets/agent-card-signing-jwk'
