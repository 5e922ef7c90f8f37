// Graph Functions on Azure: `azd up` provisions this (subscription scope: one resource group) and deploys the
// app, in one pass: the identity, the site, then the Entra app registration (app-registration.bicep, needs the
// site's host name and the identity), then the app settings (need the registration's client ID). Deployers
// without Entra rights pass a registration made by an administrator instead (entraExistingClientId).
// docs/deploy.md walks through both paths and the roles each needs.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; names and tags every resource.')
param environmentName string

@minLength(1)
@description('Region of every resource (one that offers Flex Consumption).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object ID of the person or pipeline running azd (AZURE_PRINCIPAL_ID); gets Key Vault Secrets Officer to store the credential and the session key. Empty: no deployer role.')
param principalId string = ''

@description('Type of principalId.')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param principalType string = 'User'

@description('Directory (tenant) ID of the app registration (ENTRA_TENANT_ID).')
param entraTenantId string = tenant().tenantId

@description('Application (client) ID of an app registration made outside this template (ENTRA_EXISTING_CLIENT_ID), for deployers without Entra rights. Empty (the default): this template creates and updates the registration (needs Application Administrator). Deliberately not ENTRA_CLIENT_ID, which is an output: azd writes outputs back into the environment, and an input of that name would silently switch a later provision to this path.')
param entraExistingClientId string = ''

@description('single: the app serves this directory only (signInAudience AzureADMyOrg). multi: any organisation whose administrator onboards it at /onboard (AzureADMultipleOrgs; docs/multi-tenant.md).')
@allowed([
  'single'
  'multi'
])
param entraTenancy string = 'single'

@description('Grant tenant-wide admin consent to the registration\'s permissions while creating it (needs Privileged Role Administrator). False: an administrator consents afterwards (docs/deploy.md).')
param entraGrantConsent bool = false

@description('Request (and, with entraGrantConsent, consent) Mail.Read and Mail.Send in Entra. False: mailbox access is granted through Exchange Online RBAC for Applications only (docs/deploy.md).')
param entraMailPermissions bool = true

@description('Also register http://localhost:7071 for sign-in (running `func start` against this tenant).')
param entraLocalSignIn bool = false

@description('How the app proves its identity to Entra: managed-identity (secretless; a federated credential on the app registration trusts the managed identity) or keyvault (a client secret or certificate stored in the vault).')
@allowed([
  'managed-identity'
  'keyvault'
])
param entraCredential string = 'managed-identity'

@description('Vault secret holding the client secret or certificate (keyvault mode only).')
param entraCredentialName string = 'graph-functions-credential'

@description('Vault secret holding the session encryption key (SESSION_KEY_NAME); created by the postprovision hook.')
param sessionKeyName string = 'graph-functions-session-key'

@description('SharePoint site for the signed-in SharePoint page (SHAREPOINT_SITE_URL), e.g. https://contoso.sharepoint.com/sites/intranet. Empty: none.')
param sharepointSiteUrl string = ''

@description('Origin people reach the app at (PUBLIC_BASE_URL), e.g. behind Front Door or a custom domain. Empty: the Function App\'s own https host name.')
param publicBaseUrl string = ''

@description('Object ID of the security group whose members\' mailboxes may be read, or * for every mailbox (MAILBOX_SCOPE). Empty: no mailbox may be read.')
param mailboxScope string = ''

@description('Comma-separated origins of single-page apps on other sites that may call the API with a person\'s token (the Function App\'s platform CORS, docs/on-behalf-of.md), e.g. https://spa.contoso.com. Empty: none (the app\'s own /spa/ is same-origin).')
param corsAllowedOrigins string = ''

@description('Client ids of the apps whose tokens for access_as_user may call for a person, comma-separated (API_ALLOWED_CLIENT_APPS). Empty: any client of the tenant.')
param apiAllowedClientApps string = ''

@description('Client id of the single-page client served at /spa/ (SPA_CLIENT_ID). Empty: /spa/ answers 404.')
param spaClientId string = ''

@description('Mail ingestion (docs/change-notifications.md): webhook (Graph change notifications + delta), poll (delta from a timer) or off.')
@allowed([ 'off', 'webhook', 'poll' ])
param mailIngestionMode string = 'off'

@description('NCRONTAB schedule of the daily user report (REPORT_SCHEDULE), UTC.')
param reportSchedule string = '0 0 6 * * *'

@description('Comma-separated recipients of the daily summary mail (REPORT_RECIPIENTS). Empty: no mail.')
param reportRecipients string = ''

@description('Mailbox the daily summary is sent from (REPORT_SENDER); set together with reportRecipients.')
param reportSender string = ''

@description('Memory of one Flex Consumption instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Upper bound of instances Flex Consumption may scale out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Spread the app\'s instances across availability zones (regions that offer it for Flex Consumption; pair with Standard_ZRS storage).')
param zoneRedundant bool = false

@description('Replication of the storage account (zone-redundant by default; Standard_LRS in a region without zones).')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSkuName string = 'Standard_ZRS'

@description('Public network access of the vault without private networking (with it, always Disabled). Disabled without privateNetworking is refused: neither the app (no VNet integration) nor the hook could reach the vault.')
@allowed([
  'Enabled'
  'Disabled'
])
param keyVaultPublicNetworkAccess string = 'Enabled'

@description('Private networking: VNet integration of the app and private endpoints for storage and the vault; their public access is disabled. Needs the Microsoft.App resource provider registered (docs/deploy.md).')
param privateNetworking bool = false

// Operator tuning (docs/settings.md): parameters rather than portal edits, because the app-settings resource
// replaces the whole set on every provision. Empty: the code's default.
@description('Microsoft Graph endpoint (GRAPH_ENDPOINT), e.g. https://graph.microsoft.us in a national cloud. Empty: the global service.')
param graphEndpoint string = ''

@description('GRAPH_TIMEOUT_SECONDS. Empty: the code\'s default.')
param graphTimeoutSeconds string = ''

@description('GRAPH_RETRY_BUDGET_SECONDS. Empty: the code\'s default.')
param graphRetryBudgetSeconds string = ''

@description('GRAPH_MAX_RETRIES. Empty: the code\'s default.')
param graphMaxRetries string = ''

@description('SESSION_IDLE_MINUTES. Empty: the code\'s default.')
param sessionIdleMinutes string = ''

@description('SESSION_MAX_AGE_HOURS. Empty: the code\'s default.')
param sessionMaxAgeHours string = ''

@description('MAILBOX_SCOPE_CACHE_SECONDS. Empty: the code\'s default.')
param mailboxScopeCacheSeconds string = ''

@description('REPORT_TOP_DEPARTMENTS. Empty: the code\'s default.')
param reportTopDepartments string = ''

var tags = {
  'azd-env-name': environmentName
}
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var serviceName = 'api'
var deploymentContainerName = 'app-package-${take(resourceToken, 7)}'
// The names the code uses by default (shared/core/settings.py); tests/infra checks they match.
var sessionTable = 'sessions'
var authFlowTable = 'authflows'
var auditTable = 'mailaudit'
var tenantsTable = 'tenants'
var reportContainer = 'reports'
var reportQueue = 'report-runs'
var notificationTable = 'mailnotifications'
var mailNotificationQueue = 'mail-notifications'
var mailEventsQueue = 'mail-events'
// The Microsoft Graph Bicep extension deploys in the public cloud only, and the app's federated assertion
// uses the public cloud's audience (shared/identity/credentials.py); docs/deploy.md, national clouds.
var publicCloud = environment().name == 'AzureCloud'
var createAppRegistration = empty(entraExistingClientId)

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    skuName: storageSkuName
    privateNetworking: privateNetworking
    deploymentContainerName: deploymentContainerName
    containerNames: [
      reportContainer
    ]
    tableNames: [
      sessionTable
      authFlowTable
      auditTable
      tenantsTable
      notificationTable
    ]
    // The poison queue is created by the host on the first failure; creating it here lets operators alert on
    // it from day one.
    queueNames: [
      reportQueue
      '${reportQueue}-poison'
      mailNotificationQueue
      '${mailNotificationQueue}-poison'
      mailEventsQueue
    ]
  }
}

module vault 'modules/keyvault.bicep' = {
  name: 'vault'
  scope: rg
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
    publicNetworkAccess: privateNetworking ? 'Disabled' : ((keyVaultPublicNetworkAccess == 'Enabled') ? 'Enabled' : fail('KEY_VAULT_PUBLIC_NETWORK_ACCESS=Disabled needs PRIVATE_NETWORKING=true: without private networking neither the app nor the post-provision hook can reach the vault. Set KEY_VAULT_PUBLIC_NETWORK_ACCESS=Enabled, or PRIVATE_NETWORKING=true.'))
  }
}

module network 'modules/network.bicep' = if (privateNetworking) {
  name: 'network'
  scope: rg
  params: {
    name: 'vnet-${resourceToken}'
    location: location
    tags: tags
    storageAccountId: storage.outputs.id
    keyVaultId: vault.outputs.id
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    appPrincipalId: identity.outputs.principalId
    deployerPrincipalId: principalId
    deployerPrincipalType: principalType
    // The certificate path of keyvault mode creates a certificate in the vault (docs/deploy.md).
    deployerManagesCertificates: entraCredential == 'keyvault'
    keyVaultName: vault.outputs.name
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
  }
}

module app 'modules/function-app.bicep' = {
  name: 'app'
  scope: rg
  params: {
    planName: 'plan-${resourceToken}'
    name: 'func-${resourceToken}'
    location: location
    tags: tags
    serviceName: serviceName
    identityId: identity.outputs.id
    storageBlobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: deploymentContainerName
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    zoneRedundant: zoneRedundant
    virtualNetworkSubnetId: privateNetworking ? network.outputs.appSubnetId : ''
    corsAllowedOrigins: empty(corsAllowedOrigins) ? [] : map(split(corsAllowedOrigins, ','), origin => trim(origin))
  }
  // The app starts with its roles in place (host storage, vault), so its first start does not fail.
  dependsOn: [
    rbac
  ]
}

var appBaseUrl = empty(publicBaseUrl) ? 'https://${app.outputs.defaultHostName}' : publicBaseUrl

// The Entra app registration, after the site (its redirect URIs) and the identity (its federated credential).
module appRegistration 'app-registration.bicep' = if (createAppRegistration) {
  name: 'app-registration'
  scope: rg
  params: {
    uniqueName: 'graph-functions-${environmentName}'
    displayName: 'Graph Functions (${environmentName})'
    appBaseUrl: publicCloud ? appBaseUrl : fail('The Microsoft Graph Bicep extension deploys in the public cloud only: register the app by hand and set ENTRA_EXISTING_CLIENT_ID (docs/deploy.md, national clouds).')
    extraBaseUrls: entraLocalSignIn ? ['http://localhost:7071'] : []
    managedIdentityPrincipalId: entraCredential == 'managed-identity' ? identity.outputs.principalId : ''
    grantConsent: entraGrantConsent
    mailPermissions: entraMailPermissions
    sharePoint: !empty(sharepointSiteUrl)
    signInAudience: entraTenancy == 'multi' ? 'AzureADMultipleOrgs' : 'AzureADMyOrg'
  }
}

var entraClientId = createAppRegistration ? appRegistration.outputs.ENTRA_CLIENT_ID : entraExistingClientId

module appSettings 'modules/app-settings.bicep' = {
  name: 'app-settings'
  scope: rg
  params: {
    siteName: app.outputs.name
    identityClientId: identity.outputs.clientId
    storage: {
      name: storage.outputs.name
      blobEndpoint: storage.outputs.blobEndpoint
      queueEndpoint: storage.outputs.queueEndpoint
      tableEndpoint: storage.outputs.tableEndpoint
    }
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    keyVaultUri: vault.outputs.uri
    entra: {
      tenantId: entraTenantId
      clientId: entraClientId
      credential: (entraCredential == 'managed-identity' && !publicCloud) ? fail('ENTRA_CREDENTIAL=managed-identity works in the public cloud only (the federated credential\'s audience differs elsewhere): use keyvault (docs/deploy.md, national clouds).') : entraCredential
      credentialName: entraCredentialName
      tenancy: entraTenancy
    }
    features: {
      sharepointSiteUrl: sharepointSiteUrl
      publicBaseUrl: publicBaseUrl
      sessionKeyName: sessionKeyName
      sessionTable: sessionTable
      authFlowTable: authFlowTable
      auditTable: auditTable
      tenantsTable: tenantsTable
      mailboxScope: mailboxScope
      reportSchedule: reportSchedule
      reportContainer: reportContainer
      reportQueue: reportQueue
      mailIngestionMode: mailIngestionMode
      mailEventsQueue: mailEventsQueue
      mailNotificationQueue: mailNotificationQueue
      notificationTable: notificationTable
      reportRecipients: reportRecipients
      reportSender: reportSender
      apiAllowedClientApps: apiAllowedClientApps
      spaClientId: spaClientId
    }
    tuning: {
      graphEndpoint: graphEndpoint
      graphTimeoutSeconds: graphTimeoutSeconds
      graphRetryBudgetSeconds: graphRetryBudgetSeconds
      graphMaxRetries: graphMaxRetries
      sessionIdleMinutes: sessionIdleMinutes
      sessionMaxAgeHours: sessionMaxAgeHours
      mailboxScopeCacheSeconds: mailboxScopeCacheSeconds
      reportTopDepartments: reportTopDepartments
    }
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_NAME string = app.outputs.name
output SERVICE_API_NAME string = app.outputs.name
output APP_BASE_URL string = appBaseUrl
output AZURE_KEY_VAULT_NAME string = vault.outputs.name
output KEY_VAULT_URL string = vault.outputs.uri
output SESSION_KEY_NAME string = sessionKeyName
output ENTRA_CREDENTIAL string = entraCredential
output ENTRA_CREDENTIAL_NAME string = entraCredentialName
output MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
// One pass: the client ID (created here, or the existing one) and the URI callers request tokens for.
output ENTRA_CLIENT_ID string = entraClientId
output ENTRA_APP_ID_URI string = 'api://${entraClientId}'
output ENTRA_APP_REGISTRATION string = createAppRegistration ? 'created' : 'existing'
