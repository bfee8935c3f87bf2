// Private networking (deployed only when main.bicep's enablePrivateNetworking is true):
// a VNet with one subnet for the Function App's outbound VNet integration and one for
// private endpoints, a private endpoint per data-plane service the app calls (Storage
// blob/queue/table, Cosmos DB, Key Vault), and the privatelink DNS zones that make the
// services' public names resolve to those endpoints inside the VNet. The services
// themselves turn public network access off (see storage/cosmos/keyvault.bicep).

@description('Virtual network name.')
param name string

param location string
param tags object = {}

@description('Address space of the VNet; both subnets are carved out of its first /24s.')
param addressPrefix string = '10.40.0.0/16'

@description('Subnet for the Function App VNet integration (Flex: delegated to Microsoft.App/environments).')
param appSubnetPrefix string = '10.40.0.0/24'

@description('Subnet for the private endpoints.')
param privateEndpointSubnetPrefix string = '10.40.1.0/24'

param storageAccountId string
param cosmosAccountId string
param keyVaultId string

// Flex Consumption rejects subnet names containing underscores.
var appSubnetName = 'snet-app'
var peSubnetName = 'snet-private-endpoints'

// groupId -> privatelink zone. Storage/Key Vault zones follow the cloud's suffixes;
// Cosmos DB's SQL API zone has no environment() suffix, so it is spelled out.
var endpoints = [
  {
    service: 'blob'
    targetId: storageAccountId
    zone: 'privatelink.blob.${environment().suffixes.storage}'
  }
  {
    service: 'queue'
    targetId: storageAccountId
    zone: 'privatelink.queue.${environment().suffixes.storage}'
  }
  {
    service: 'table'
    targetId: storageAccountId
    zone: 'privatelink.table.${environment().suffixes.storage}'
  }
  {
    service: 'Sql'
    targetId: cosmosAccountId
    zone: 'privatelink.documents.azure.com'
  }
  {
    service: 'vault'
    targetId: keyVaultId
    zone: 'privatelink${replace(environment().suffixes.keyvaultDns, 'vault', 'vaultcore')}'
  }
]

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: appSubnetName
        properties: {
          addressPrefix: appSubnetPrefix
          // The delegation Flex Consumption requires for VNet integration
          // (the Microsoft.App resource provider must be registered).
          delegations: [
            {
              name: 'flex-consumption'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
        }
      }
      {
        name: peSubnetName
        properties: {
          addressPrefix: privateEndpointSubnetPrefix
          privateEndpointNetworkPolicies: 'Disabled'
        }
      }
    ]
  }
}

resource zones 'Microsoft.Network/privateDnsZones@2024-06-01' = [
  for ep in endpoints: {
    name: ep.zone
    location: 'global'
    tags: tags
  }
]

resource zoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2024-06-01' = [
  for (ep, i) in endpoints: {
    parent: zones[i]
    name: '${name}-link'
    location: 'global'
    tags: tags
    properties: {
      registrationEnabled: false
      virtualNetwork: {
        id: vnet.id
      }
    }
  }
]

resource privateEndpoints 'Microsoft.Network/privateEndpoints@2024-05-01' = [
  for ep in endpoints: {
    name: 'pe-${last(split(ep.targetId, '/'))}-${toLower(ep.service)}'
    location: location
    tags: tags
    properties: {
      subnet: {
        id: '${vnet.id}/subnets/${peSubnetName}'
      }
      privateLinkServiceConnections: [
        {
          name: toLower(ep.service)
          properties: {
            privateLinkServiceId: ep.targetId
            groupIds: [
              ep.service
            ]
          }
        }
      ]
    }
  }
]

// Registers each endpoint's private IP in its privatelink zone.
resource dnsGroups 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = [
  for (ep, i) in endpoints: {
    parent: privateEndpoints[i]
    name: 'default'
    properties: {
      privateDnsZoneConfigs: [
        {
          name: replace(ep.zone, '.', '-')
          properties: {
            privateDnsZoneId: zones[i].id
          }
        }
      ]
    }
  }
]

output vnetId string = vnet.id
output appSubnetId string = '${vnet.id}/subnets/${appSubnetName}'
