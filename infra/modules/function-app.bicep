// The Function App on Flex Consumption (FC1). The runtime is declared in functionAppConfig, so none of the
// settings Flex rejects (FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION, WEBSITE_RUN_FROM_PACKAGE,
// linuxFxVersion) appear. The app settings are every setting the code reads in production (shared/core/settings.py
// SETTING_NAMES, except the documented deliberate omissions in tests/infra) plus the host's own.

@description('Name of the Flex Consumption plan.')
param planName string

@description('Name of the Function App.')
param name string

@description('Azure region.')
param location string

@description('Tags for the plan.')
param tags object

@description('azd service name the site is tagged with (azure.yaml services key).')
param serviceName string

@description('Resource ID of the user-assigned managed identity.')
param identityId string

@description('Client ID of the user-assigned managed identity.')
param identityClientId string

@description('Name of the storage account (AzureWebJobsStorage, identity-based).')
param storageAccountName string

@description('Blob endpoint of the storage account.')
param storageBlobEndpoint string

@description('Blob container the deployment package goes to.')
param deploymentContainerName string

@description('Application Insights connection string.')
param applicationInsightsConnectionString string

@description('Vault URI (KEY_VAULT_URL).')
param keyVaultUri string

@description('Python version of the Functions runtime.')
@allowed([
  '3.11'
])
param pythonVersion string = '3.11'

@description('Memory of one instance in MB (Flex Consumption sizes).')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Upper bound of instances the platform may scale out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Spread instances across availability zones (only in regions that offer it for Flex Consumption).')
param zoneRedundant bool = false

@description('Subnet for VNet integration (private networking), or empty.')
param virtualNetworkSubnetId string = ''

@description('Entra settings: tenantId, clientId, credential (keyvault or managed-identity), credentialName.')
param entra object

@description('Sign-in, mailbox and report settings: sharepointSiteUrl, publicBaseUrl, sessionKeyName, sessionTable, authFlowTable, auditTable, mailboxScope, reportSchedule, reportContainer, reportQueue, reportRecipients, reportSender.')
param features object

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    // With VNet integration the app reaches storage and the vault through their private endpoints. Only the
    // subnet is set, as in the Flex Consumption quickstarts (no vnetRouteAllEnabled).
    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      remoteDebuggingEnabled: false
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

// Publishing with basic (user/password) credentials is off: azd and the portal deploy with Entra ID.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

// A separate config resource, so PUBLIC_BASE_URL can default to the site's own host name.
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
    ENTRA_AUTHORITY_HOST: environment().authentication.loginEndpoint
    ENTRA_CREDENTIAL: entra.credential
    ENTRA_CREDENTIAL_NAME: (entra.credential == 'keyvault') ? entra.credentialName : ''
    KEY_VAULT_URL: keyVaultUri
    ENTRA_MANAGED_IDENTITY_CLIENT_ID: identityClientId
    SHAREPOINT_SITE_URL: features.sharepointSiteUrl
    AzureWebJobsStorage__accountName: storageAccountName
    AzureWebJobsStorage__clientId: identityClientId
    PUBLIC_BASE_URL: empty(features.publicBaseUrl) ? 'https://${site.properties.defaultHostName}' : features.publicBaseUrl
    SESSION_KEY_NAME: features.sessionKeyName
    SESSION_TABLE: features.sessionTable
    AUTH_FLOW_TABLE: features.authFlowTable
    AUDIT_TABLE: features.auditTable
    MAILBOX_SCOPE: features.mailboxScope
    REPORT_SCHEDULE: features.reportSchedule
    REPORT_CONTAINER: features.reportContainer
    REPORT_QUEUE: features.reportQueue
    REPORT_RECIPIENTS: features.reportRecipients
    REPORT_SENDER: features.reportSender
  }
}

output name string = site.name
output id string = site.id
output defaultHostName string = site.properties.defaultHostName
