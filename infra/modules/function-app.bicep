// The Function App on Flex Consumption (FC1). The runtime is declared in functionAppConfig, so none of the
// settings Flex rejects (FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION, WEBSITE_RUN_FROM_PACKAGE,
// linuxFxVersion) appear. The app settings are a separate module (app-settings.bicep), deployed after the
// app registration, which needs this site's host name first.

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

@description('Blob endpoint of the storage account.')
param storageBlobEndpoint string

@description('Blob container the deployment package goes to.')
param deploymentContainerName string

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

@description('Origins allowed by the platform\'s CORS (single-page apps calling with a person\'s token). The platform answers preflights itself, before the function runs. Empty: no cross-origin caller.')
param corsAllowedOrigins array = []

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
    // Only site-config properties Flex Consumption accepts (tests/infra): newer stamps answer 400 (51021) to
    // others such as ftpsState (FTP is off via the ftp policy below) and remoteDebuggingEnabled.
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      http20Enabled: true
      // Bearer tokens, not cookies, cross origins: no credentials mode (docs/on-behalf-of.md).
      cors: {
        allowedOrigins: corsAllowedOrigins
        supportCredentials: false
      }
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

output name string = site.name
output id string = site.id
output defaultHostName string = site.properties.defaultHostName
