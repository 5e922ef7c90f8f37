// The Function App's application settings: every setting the code reads in production (shared/core/settings.py
// SETTING_NAMES; tests/infra checks the list both ways) plus the Functions host's own.
//
// This resource REPLACES the whole set on every `azd provision`: a setting added or changed in the portal
// disappears on the next provision. So every setting an operator may need to change is a main.bicep
// parameter (an `azd env set` variable, docs/settings.md); change it there, never in the portal. Empty values
// mean "the code's default" (shared/core/settings.py treats empty as unset), so no default is copied here.
//
// A separate module, deployed after the app registration: ENTRA_CLIENT_ID comes from it, and the
// registration's redirect URIs need the site's host name first (no cycle: site, registration, settings).

@description('Name of the Function App.')
param siteName string

@description('Client ID of the user-assigned managed identity.')
param identityClientId string

@description('Storage account (AzureWebJobsStorage, identity-based): name and its blob, queue and table endpoints.')
param storage object

@description('Application Insights connection string.')
param applicationInsightsConnectionString string

@description('Vault URI (KEY_VAULT_URL).')
param keyVaultUri string

@description('Entra settings: tenantId, clientId, credential (keyvault or managed-identity), credentialName, tenancy (single or multi).')
param entra object

@description('Sign-in, mailbox and report settings: sharepointSiteUrl, publicBaseUrl, sessionKeyName, sessionTable, authFlowTable, auditTable, tenantsTable, mailboxScope, reportSchedule, reportContainer, reportQueue, reportRecipients, reportSender, mailIngestionMode, mailEventsQueue, mailNotificationQueue, notificationTable.')
param features object

@description('Operator tuning, each empty for the code\'s default: graphEndpoint, graphTimeoutSeconds, graphRetryBudgetSeconds, graphMaxRetries, sessionIdleMinutes, sessionMaxAgeHours, mailboxScopeCacheSeconds, reportTopDepartments.')
param tuning object

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: siteName
}

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: {
    // The Functions host's own settings: identity-based host storage and Entra-authenticated telemetry.
    AzureWebJobsStorage__credential: 'managedidentity'
    APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
    // The app's settings (docs/settings.md).
    ENTRA_TENANT_ID: entra.tenantId
    ENTRA_CLIENT_ID: entra.clientId
    ENTRA_TENANCY: entra.tenancy
    TENANTS_TABLE: features.tenantsTable
    ENTRA_AUTHORITY_HOST: environment().authentication.loginEndpoint
    ENTRA_CREDENTIAL: entra.credential
    ENTRA_CREDENTIAL_NAME: (entra.credential == 'keyvault') ? entra.credentialName : ''
    KEY_VAULT_URL: keyVaultUri
    ENTRA_MANAGED_IDENTITY_CLIENT_ID: identityClientId
    GRAPH_ENDPOINT: tuning.graphEndpoint
    SHAREPOINT_SITE_URL: features.sharepointSiteUrl
    AzureWebJobsStorage__accountName: storage.name
    AzureWebJobsStorage__clientId: identityClientId
    // Explicit service URIs from the account itself: `__accountName` alone makes the host (and the app)
    // assume the public cloud's core.windows.net; these are right in every cloud.
    AzureWebJobsStorage__blobServiceUri: storage.blobEndpoint
    AzureWebJobsStorage__queueServiceUri: storage.queueEndpoint
    AzureWebJobsStorage__tableServiceUri: storage.tableEndpoint
    GRAPH_TIMEOUT_SECONDS: tuning.graphTimeoutSeconds
    GRAPH_RETRY_BUDGET_SECONDS: tuning.graphRetryBudgetSeconds
    GRAPH_MAX_RETRIES: tuning.graphMaxRetries
    PUBLIC_BASE_URL: empty(features.publicBaseUrl) ? 'https://${site.properties.defaultHostName}' : features.publicBaseUrl
    SESSION_KEY_NAME: features.sessionKeyName
    SESSION_TABLE: features.sessionTable
    AUTH_FLOW_TABLE: features.authFlowTable
    SESSION_IDLE_MINUTES: tuning.sessionIdleMinutes
    SESSION_MAX_AGE_HOURS: tuning.sessionMaxAgeHours
    AUDIT_TABLE: features.auditTable
    MAILBOX_SCOPE: features.mailboxScope
    MAILBOX_SCOPE_CACHE_SECONDS: tuning.mailboxScopeCacheSeconds
    REPORT_SCHEDULE: features.reportSchedule
    REPORT_CONTAINER: features.reportContainer
    REPORT_QUEUE: features.reportQueue
    MAIL_INGESTION_MODE: features.mailIngestionMode
    MAIL_EVENTS_QUEUE: features.mailEventsQueue
    MAIL_NOTIFICATION_QUEUE: features.mailNotificationQueue
    NOTIFICATION_TABLE: features.notificationTable
    // Graph posts to PUBLIC_BASE_URL in Azure.
    NOTIFICATION_BASE_URL: ''
    NOTIFICATION_CERTIFICATE_NAME: ''
    REPORT_RECIPIENTS: features.reportRecipients
    REPORT_SENDER: features.reportSender
    REPORT_TOP_DEPARTMENTS: tuning.reportTopDepartments
    API_ALLOWED_CLIENT_APPS: features.apiAllowedClientApps
    SPA_CLIENT_ID: features.spaClientId
  }
}
