// The function app's application settings: the exact names the Python code reads.
// Deployed after roles.bicep so identity-based connections and Key Vault references
// resolve on first start. Note: this resource replaces the whole app settings set.

@description('Name of the tools approvals queue (storage.bicep declares it and its -poison queue).')
param toolsApprovalsQueue string = 'tool-submissions'

param functionAppName string
param storageAccountName string
param appInsightsName string

param cosmosEndpoint string
param cosmosDatabase string
param cosmosContainer string
param cosmosCacheContainer string = 'responsecache'

param entraTenantId string
param entraAudience string

@description('Versionless secret URI of gateway-admin-key.')
param adminKeyUri string

@description('Versionless secret URI of gateway-key-hash-secret.')
param keyHashUri string

@description('Versionless secret URI of agent-card-signing-jwk (the secret is optional).')
param cardSigningJwkUri string

@description('JSON list of agent sync connections (no secrets: credentials are named UPSTREAM_SECRET_* settings).')
param agentsSyncConnections string = '[]'

// Upstream credentials (model backends, MCP servers, agents, webhooks) are app settings named UPSTREAM_SECRET_*,
// the only settings an admin may reference (shared/config.py). This resource replaces the whole app settings
// set on every deploy, so a hand-added setting would be lost: each one is declared here instead, as a Key Vault
// reference resolved with the app's identity (Key Vault Secrets User on this vault, roles.bicep).
@description('Upstream secrets as Key Vault references: [{ name: \'UPSTREAM_SECRET_GITHUB\', keyVaultSecretName: \'upstream-github\' }]; name: UPSTREAM_SECRET_ then A-Z, 0-9 or _ (at most 116 characters); keyVaultSecretName: A-Z, a-z, 0-9 or - (at most 127). docs/deploy.md, "Upstream secrets".')
@maxLength(200)
param upstreamSecrets array = []

@description('Key Vault holding the upstream secrets (keyvault.bicep).')
param keyVaultName string = ''

// Allow-lists, checked with what the template language has (checkov's parser reads neither user-defined types
// nor fail()): uriComponent(x) == x leaves only A-Z a-z 0-9 - _ . ~; then case and the extra characters narrow it
// to exactly UPSTREAM_SECRET_[A-Z0-9_]+ and [A-Za-z0-9-]+. Both are then safe inside the JSON built below.
var invalidUpstreamSecrets = filter(upstreamSecrets, s => !startsWith(s.name, 'UPSTREAM_SECRET_') || length(s.name) < 17 || length(s.name) > 116 || uriComponent(s.name) != s.name || toUpper(s.name) != s.name || contains(s.name, '-') || contains(s.name, '.') || contains(s.name, '~') || empty(s.keyVaultSecretName) || length(s.keyVaultSecretName) > 127 || uriComponent(s.keyVaultSecretName) != s.keyVaultSecretName || contains(s.keyVaultSecretName, '_') || contains(s.keyVaultSecretName, '.') || contains(s.keyVaultSecretName, '~'))

// A name outside the allow-list fails the deployment (json() of a message is not JSON), naming the entries:
// never a silently dropped setting, never a way to overwrite another setting such as GATEWAY_ADMIN_KEY.
var upstreamSecretSettings = empty(invalidUpstreamSecrets) ? json('{${join(map(upstreamSecrets, s => '"${s.name}":"@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${s.keyVaultSecretName})"'), ',')}}') : json('upstreamSecrets: invalid entries (name must be UPSTREAM_SECRET_[A-Z0-9_], keyVaultSecretName [A-Za-z0-9-]): ${string(map(invalidUpstreamSecrets, s => s.name))}')

resource site 'Microsoft.Web/sites@2024-11-01' existing = {
  name: functionAppName
}

// Read here rather than passed in, so the connection string stays out of module outputs.
resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// checkov treats every Microsoft.Web/sites/config resource as the `web` config; this one is
// `appsettings`, a name -> value map in which those properties cannot exist (adding them would
// only create app settings with those names). Each is covered where it can apply:
resource appSettings 'Microsoft.Web/sites/config@2024-11-01' = {
  //checkov:skip=CKV_AZURE_63: this is the appsettings resource, not the web config the check reads; HTTP logs of a Flex Consumption app go to Application Insights (APPLICATIONINSIGHTS_CONNECTION_STRING), App Service file-system HTTP logging does not exist on Flex.
  //checkov:skip=CKV_AZURE_65: this is the appsettings resource, not the web config the check reads; detailed errors are App Service (IIS) error pages, which a Linux Flex Consumption app does not serve: the app returns its own structured errors.
  //checkov:skip=CKV_AZURE_66: this is the appsettings resource, not the web config the check reads; failed request tracing is an IIS feature without a Linux/Flex equivalent; failures are traced in Application Insights.
  //checkov:skip=CKV_AZURE_80: this is the appsettings resource, not the web config the check reads, and the app is Python: netFrameworkVersion is on Flex Consumption's deprecated list (the runtime is functionAppConfig.runtime).
  //checkov:skip=CKV_AZURE_88: this is the appsettings resource, not the web config the check reads; Flex Consumption has no Azure Files content share: code is pulled from the deployment blob container (WEBSITE_CONTENTSHARE is deprecated on Flex).
  //checkov:skip=CKV_AZURE_13: App Service Authentication (EasyAuth) would reject API-key callers; the gateway validates Entra ID tokens and API keys itself (shared/auth), which is the authentication this check asks for.
  //checkov:skip=CKV_AZURE_222: this is the appsettings resource, not the site; the site's public network access is justified in functionapp.bicep.
  parent: site
  name: 'appsettings'
  properties: union({
    // Identity-based host storage: no connection string, the host derives the
    // blob/queue endpoints from the account name and uses the managed identity.
    AzureWebJobsStorage__accountName: storageAccountName

    COSMOS_ENDPOINT: cosmosEndpoint
    COSMOS_DATABASE: cosmosDatabase
    COSMOS_CONTAINER: cosmosContainer
    // The response cache's container has a vector policy: nearest prompts come from VectorDistance.
    COSMOS_CACHE_CONTAINER: cosmosCacheContainer
    CACHE_VECTOR_SEARCH: 'true'
    // Database and container are owned by Bicep; local auth is off, so the app
    // could not create them anyway.
    COSMOS_CREATE_IF_MISSING: 'false'

    ENTRA_TENANT_ID: entraTenantId
    ENTRA_AUDIENCE: entraAudience

    // Resolved by the platform with the app identity (Key Vault Secrets User).
    GATEWAY_ADMIN_KEY: '@Microsoft.KeyVault(SecretUri=${adminKeyUri})'
    GATEWAY_KEY_HASH_SECRET: '@Microsoft.KeyVault(SecretUri=${keyHashUri})'

    FLAG_CACHE_TTL_SECONDS: '5'

    // Agents pillar: cloud sync timers (six-field NCRONTAB; Flex Consumption has no TimeSpan schedules) and
    // the connections, a JSON list (docs/admin-guide.md). Credentials are UPSTREAM_SECRET_* settings named in
    // it, added as Key Vault references by the operator; none by default.
    AGENTS_SYNC_BEDROCK_SCHEDULE: '0 */15 * * * *'
    AGENTS_SYNC_VERTEX_SCHEDULE: '0 */15 * * * *'
    AGENTS_SYNC_CONNECTIONS: agentsSyncConnections
    // The private JWK that signs the gateway's agent cards; while the secret is absent the reference does not
    // resolve and the app serves unsigned cards (shared/config.py treats an unresolved reference as unset).
    AGENT_CARD_SIGNING_JWK: '@Microsoft.KeyVault(SecretUri=${cardSigningJwkUri})'
    FAIL_STATIC_MAX_SECONDS: '300'

    // Tools pillar: the approvals queue (and its -poison queue, both declared in storage.bicep) and the
    // six-field NCRONTAB of the tool-pinning check (%TOOLS_PINNING_SCHEDULE% in the timer binding).
    TOOLS_APPROVALS_QUEUE: toolsApprovalsQueue
    TOOLS_PINNING_SCHEDULE: '0 */15 * * * *'
    // Monitoring jobs (issue 12): six-field NCRONTAB (Flex Consumption has no TimeSpan schedules).
    REQUEST_LOG_RETENTION_DAYS: '30'
    REQUEST_LOG_RETENTION_SCHEDULE: '0 17 3 * * *'
    ANALYTICS_ROLLUP_SCHEDULE: '0 */5 * * * *'
    ANALYTICS_ROLLUP_LOOKBACK_HOURS: '3'
    ALERTS_SCHEDULE: '30 * * * * *'

    // Required by the azurefunctions-extensions-http-fastapi streaming extension.
    PYTHON_ENABLE_INIT_INDEXING: '1'

    APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
    // The gateway's own spans and metrics (GenAI conventions) through the Azure Monitor distro (shared/telemetry).
    TELEMETRY_ENABLED: 'true'
  }, upstreamSecretSettings)
}
