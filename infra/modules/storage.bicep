// The storage account the Functions host and the app share (AzureWebJobsStorage, identity-based): shared-key
// access off (no connection strings or account SAS exist), TLS 1.2, no anonymous blob access. Bicep creates
// every container, table and queue the app uses, so the app never needs rights to create them.

@description('Name of the storage account (3-24 lower-case letters and digits).')
param name string

@description('Azure region.')
param location string

@description('Tags for the resource.')
param tags object

@description('Blob container the Flex Consumption deployment package is uploaded to.')
param deploymentContainerName string

@description('Blob containers the app uses (REPORT_CONTAINER).')
param containerNames array

@description('Tables the app uses (SESSION_TABLE, AUTH_FLOW_TABLE, AUDIT_TABLE).')
param tableNames array

@description('Queues the app and the host use (REPORT_QUEUE and its host-managed poison queue).')
param queueNames array

@description('Private networking: the account accepts traffic only through its private endpoints.')
param privateNetworking bool = false

@description('Replication. Standard_ZRS survives a zone outage; Standard_LRS is the cheapest.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param skuName string = 'Standard_ZRS'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: privateNetworking ? 'Disabled' : 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: privateNetworking ? 'Deny' : 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
        }
        file: {
          enabled: true
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    // Reports are the record admins read; a deleted blob or container can be restored for a week.
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [
  for container in containerNames: {
    parent: blobService
    name: container
    properties: {
      publicAccess: 'None'
    }
  }
]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for table in tableNames: {
    parent: tableService
    name: table
  }
]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [
  for queue in queueNames: {
    parent: queueService
    name: queue
  }
]

output id string = storage.id
output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
// The account's own endpoints carry the cloud's storage suffix (core.windows.net, core.usgovcloudapi.net, ...):
// the app settings pass them on, so neither the host nor the app derives a host name from the account name.
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
