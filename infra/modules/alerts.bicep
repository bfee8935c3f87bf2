// Azure Monitor alert rules on the gateway's Application Insights requests (issue 12; docs/runbook.md
// "Alert: gateway availability" / "Alert: gateway latency"). The per-project, per-pillar rules with webhooks
// live in the gateway itself (/manage/projects/{project}/alert-rules); these watch the whole app from outside.

@description('Application Insights component the gateway reports to.')
param appInsightsName string

param location string
param tags object = {}

@description('E-mail that receives the alerts; empty: the action group has no receiver (add one later).')
param alertEmail string = ''

@description('Server-error share (%) of requests over 5 minutes that fires the availability alert.')
@minValue(1)
@maxValue(100)
param availabilityErrorPercent int = 1

@description('p95 request duration (ms) over 5 minutes that fires the latency alert.')
@minValue(100)
@maxValue(600000)
param latencyP95Ms int = 2000

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-${appInsightsName}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'aigateway'
    enabled: true
    emailReceivers: empty(alertEmail) ? [] : [
      {
        name: 'operators'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

resource availability 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: 'gateway-availability-${appInsightsName}'
  location: location
  tags: tags
  properties: {
    displayName: 'AI gateway availability'
    description: 'Share of gateway requests answered with a 5xx above the threshold (runbook: Alert: gateway availability).'
    severity: 1
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: 'requests | summarize total = count(), failed = countif(toint(resultCode) >= 500) | where total >= 20 | extend failedPercent = 100.0 * failed / total'
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'failedPercent'
          operator: 'GreaterThan'
          threshold: availabilityErrorPercent
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

resource latency 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: 'gateway-latency-${appInsightsName}'
  location: location
  tags: tags
  properties: {
    displayName: 'AI gateway latency'
    description: 'p95 duration of gateway requests above the threshold (runbook: Alert: gateway latency).'
    severity: 2
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: 'requests | summarize n = count(), p95 = percentile(duration, 95) | where n >= 20'
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'p95'
          operator: 'GreaterThan'
          threshold: latencyP95Ms
          failingPeriods: {
            numberOfEvaluationPeriods: 2
            minFailingPeriodsToAlert: 2
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

output actionGroupId string = actionGroup.id
