// The gateway's Azure Monitor workbook (issue 12): requests, errors and latency per pillar, tokens and cost, cache
// and guardrails, failovers/breakers/quota refusals, approvals and sync — from the gateway's own spans (requests
// table) and metrics (customMetrics) in Application Insights. The workbook's JSON is workbook.json.

@description('Application Insights component the gateway reports to (the workbook\'s data source).')
param appInsightsName string

param location string
param tags object = {}

@description('Title shown in the portal.')
@maxLength(128)
param displayName string = 'AI gateway'

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  // A workbook's name must be a GUID: stable per resource group and component, so a redeploy updates it.
  name: guid(resourceGroup().id, appInsightsName, 'ai-gateway-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: appInsights.id
    serializedData: loadTextContent('workbook.json')
  }
}

output workbookId string = workbook.id
