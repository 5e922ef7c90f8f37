// The vault holding the app's client credential (keyvault mode) and the session key, in RBAC mode: access is
// granted by role assignments (rbac.bicep), never by access policies. Bicep creates no secret here: the client
// secret or certificate cannot be minted by a template, and the session key is generated once after
// provisioning (infra/scripts/postprovision.sh), so a redeployment never replaces it.

@description('Name of the vault (3-24 letters, digits and dashes).')
param name string

@description('Azure region.')
param location string

@description('Tags for the resource.')
param tags object

@description('Public network access. Disabled needs private networking (the app reaches the vault through its private endpoint).')
@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string = 'Enabled'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: publicNetworkAccess
    networkAcls: {
      bypass: 'AzureServices'
      // A Flex Consumption app without VNet integration has no fixed outbound address to allow-list, so a
      // public vault must allow the internet; Entra RBAC is the gate. Private networking denies it.
      defaultAction: publicNetworkAccess == 'Enabled' ? 'Allow' : 'Deny'
    }
  }
}

output id string = vault.id
output name string = vault.name
output uri string = vault.properties.vaultUri
