// Graph Functions on Azure: `azd up` provisions this (subscription scope: one resource group) and deploys the
// app. The app registration is a separate, optional template (app-registration.bicep), deployed by someone with
// Entra rights; docs/deploy.md walks through both and the post-provision steps.
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

@description('Application (client) ID of the app registration (ENTRA_CLIENT_ID), an output of app-registration.bicep. Empty on the first `azd up` (the registration needs the app\'s URL and identity): the app then reports the missing setting until a second `azd provision` sets it.')
param entraClientId string = ''

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

@description('Public network access of the vault without private networking (with it, always Disabled).')
@allowed([
  'Enabled'
  'Disabled'
])
param keyVaultPublicNetworkAccess string = 'Enabled'

@description('Private networking: VNet integration of the app and private endpoints for storage and the vault; their public access is disabled.')
param privateNetworking bool = false

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
var reportContainer = 'reports'
var reportQueue = 'report-runs'

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
    ]
    // The poison queue is created by the host on the first failure; creating it here lets operators alert on
    // it from day one.
    queueNames: [
      reportQueue
      '${reportQueue}-poison'
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
    publicNetworkAccess: privateNetworking ? 'Disabled' : keyVaultPublicNetworkAccess
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
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    storageBlobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    keyVaultUri: vault.outputs.uri
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    zoneRedundant: zoneRedundant
    virtualNetworkSubnetId: privateNetworking ? network.outputs.appSubnetId : ''
    entra: {
      tenantId: entraTenantId
      clientId: entraClientId
      credential: entraCredential
      credentialName: entraCredentialName
    }
    features: {
      sharepointSiteUrl: sharepointSiteUrl
      publicBaseUrl: publicBaseUrl
      sessionKeyName: sessionKeyName
      sessionTable: sessionTable
      authFlowTable: authFlowTable
      auditTable: auditTable
      mailboxScope: mailboxScope
      reportSchedule: reportSchedule
      reportContainer: reportContainer
      reportQueue: reportQueue
      reportRecipients: reportRecipients
      reportSender: reportSender
    }
  }
  // The app starts with its roles in place (host storage, vault), so its first start does not fail.
  dependsOn: [
    rbac
  ]
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_NAME string = app.outputs.name
output SERVICE_API_NAME string = app.outputs.name
output APP_BASE_URL string = empty(publicBaseUrl) ? 'https://${app.outputs.defaultHostName}' : publicBaseUrl
output AZURE_KEY_VAULT_NAME string = vault.outputs.name
output KEY_VAULT_URL string = vault.outputs.uri
output SESSION_KEY_NAME string = sessionKeyName
output ENTRA_CREDENTIAL string = entraCredential
output ENTRA_CREDENTIAL_NAME string = entraCredentialName
output MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
