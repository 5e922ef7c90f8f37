// The Entra app registration of Graph Functions, with the Microsoft Graph Bicep extension. main.bicep deploys it
// as a module after the site and the identity (so `azd up` is one pass), unless ENTRA_EXISTING_CLIENT_ID names a
// registration made by someone else (docs/deploy.md). The person running azd then needs Entra rights:
// Application Administrator or Cloud Application Administrator, and Privileged Role Administrator for
// grantConsent. azd signs in with the Azure CLI's application ID (azure-dev pkg/auth), which the Graph
// extension accepts for interactive deployments. The extension deploys in Azure's public cloud only.
// Client secrets cannot be created from a template (Graph's passwordCredentials are read-only here): the
// secretless mode (a federated credential trusting the managed identity) needs none; the keyvault mode takes a
// secret or certificate uploaded to the vault by hand.
extension microsoftGraphV1

@description('Display name of the application.')
param displayName string = 'Graph Functions'

@description('Immutable unique name of the application: the key that makes redeployment update, not duplicate.')
param uniqueName string = 'graph-functions'

@description('Origin the app is reached at (the APP_BASE_URL output of main.bicep), without a trailing slash. Empty: no redirect URIs yet (an administrator creating the registration before the first `azd up`, docs/deploy.md).')
param appBaseUrl string = ''

@description('Further origins to register for sign-in, e.g. http://localhost:7071 for `func start`.')
param extraBaseUrls array = []

@description('Principal (object) ID of the app\'s user-assigned managed identity (MANAGED_IDENTITY_PRINCIPAL_ID). Set: a federated credential trusts it (ENTRA_CREDENTIAL=managed-identity). Empty: none.')
param managedIdentityPrincipalId string = ''

@description('Grant tenant-wide admin consent to the Graph and SharePoint permissions below (needs Privileged Role Administrator). False: an administrator consents afterwards (/auth/admin-consent or the portal).')
param grantConsent bool = false

@description('Request the Graph application permissions Mail.Read and Mail.Send in Entra. False: mailbox access comes from Exchange Online RBAC for Applications instead (docs/deploy.md, mailboxes), which Entra consent would widen to every mailbox.')
param mailPermissions bool = true

@description('Who may sign in: AzureADMyOrg (this directory only, ENTRA_TENANCY=single) or AzureADMultipleOrgs (any organisation whose administrator onboards the app, ENTRA_TENANCY=multi; docs/multi-tenant.md).')
@allowed([
  'AzureADMyOrg'
  'AzureADMultipleOrgs'
])
param signInAudience string = 'AzureADMyOrg'

@description('Request SharePoint\'s delegated AllSites.Read (the /sharepoint page, with SHAREPOINT_SITE_URL). False: no lookup of the SharePoint service principal, which a tenant without SharePoint Online does not have.')
param sharePoint bool = false

var graphAppId = '00000003-0000-0000-c000-000000000000'
var sharePointAppId = '00000003-0000-0ff1-ce00-000000000000'
// Delegated Graph permissions of signed-in people: sign-in, /me, the delegated user list.
var graphDelegated = [
  'openid'
  'profile'
  'offline_access'
  'User.Read'
  'User.ReadBasic.All'
]
// Application Graph permissions: the user list and report (User.Read.All), the report's sign-in activity
// (AuditLog.Read.All, with an Entra ID P1/P2 licence; shared/report/listing.py), the mailbox scope's group
// check (GroupMember.Read.All); with mailPermissions, mailbox reads (Mail.Read) and the report mail (Mail.Send).
var graphApplicationBase = [
  'User.Read.All'
  'AuditLog.Read.All'
  'GroupMember.Read.All'
]
var graphApplicationMail = [
  'Mail.Read'
  'Mail.Send'
]
var graphApplication = concat(graphApplicationBase, mailPermissions ? graphApplicationMail : [])
// Delegated SharePoint permission of the /sharepoint page.
var sharePointDelegated = [
  'AllSites.Read'
]
// App roles of this API (callers' tokens carry them in `roles`); people and services alike.
var apiRoles = [
  {
    value: 'Users.Read.All'
    description: 'List and read users of the directory through Graph Functions.'
  }
  {
    value: 'Mail.Read.All'
    description: 'Read mailboxes inside the configured mailbox scope (every read is audited).'
  }
  {
    value: 'Reports.Read'
    description: 'Read the daily user reports.'
  }
  {
    value: 'Reports.Run'
    description: 'Start a user report run on demand.'
  }
  {
    value: 'Audit.Read'
    description: 'Read the mailbox-read audit trail.'
  }
  {
    value: 'Tenants.Manage'
    description: 'Suspend, resume and offboard onboarded organisations (multi-tenant; operators of the home tenant).'
  }
]
var baseUrls = concat(empty(appBaseUrl) ? [] : [appBaseUrl], extraBaseUrls)

resource graphSp 'Microsoft.Graph/servicePrincipals@v1.0' existing = {
  appId: graphAppId
}

// Only looked up when the SharePoint page is configured: the lookup fails the whole deployment in a tenant
// without SharePoint Online.
resource sharePointSp 'Microsoft.Graph/servicePrincipals@v1.0' existing = if (sharePoint) {
  appId: sharePointAppId
}

resource application 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: uniqueName
  displayName: displayName
  signInAudience: signInAudience
  api: {
    requestedAccessTokenVersion: 2
  }
  appRoles: [
    for role in apiRoles: {
      id: guid(uniqueName, 'appRole', role.value)
      value: role.value
      displayName: role.value
      description: role.description
      allowedMemberTypes: [
        'Application'
        'User'
      ]
      isEnabled: true
    }
  ]
  web: {
    // Sign-in (/auth/callback), admin consent (/auth/admin-consent/callback) and the post-logout URI (/),
    // which must be a registered redirect URI for Entra's end_session_endpoint (shared/signin/web.py); a
    // multi-tenant registration also onboards organisations (/onboard/callback, shared/tenants/onboarding.py).
    redirectUris: flatten(map(baseUrls, origin => concat([
      '${origin}/auth/callback'
      '${origin}/auth/admin-consent/callback'
      '${origin}/'
    ], signInAudience == 'AzureADMultipleOrgs' ? ['${origin}/onboard/callback'] : [])))
    implicitGrantSettings: {
      enableAccessTokenIssuance: false
      enableIdTokenIssuance: false
    }
  }
  requiredResourceAccess: concat([
    {
      resourceAppId: graphAppId
      resourceAccess: concat(
        map(
          filter(graphSp.oauth2PermissionScopes, scope => contains(graphDelegated, scope.value)),
          scope => { id: scope.id, type: 'Scope' }
        ),
        map(
          filter(graphSp.appRoles, role => contains(graphApplication, role.value)),
          role => { id: role.id, type: 'Role' }
        )
      )
    }
  ], sharePoint ? [
    {
      resourceAppId: sharePointAppId
      resourceAccess: map(
        filter(sharePointSp.oauth2PermissionScopes, scope => contains(sharePointDelegated, scope.value)),
        scope => { id: scope.id, type: 'Scope' }
      )
    }
  ] : [])
}

// The application ID URI callers request tokens for, `api://{client id}` (README, shared/identity/bearer.py,
// shared/app/openapi.py; Settings.api_audiences accepts it). Without it Entra answers AADSTS500011
// (microsoftgraph/msgraph-bicep-types#239). It contains the application's own appId, which the application
// resource cannot reference in its own body, so a second module updates the same application (keyed by
// uniqueName; Graph upserts with PATCH, so only identifierUris changes: Microsoft Graph Bicep docs,
// "Uniquely named resources").
module identifierUri 'modules/app-identifier-uri.bicep' = {
  name: 'app-identifier-uri'
  params: {
    uniqueName: application.uniqueName
    displayName: displayName
    appId: application.appId
  }
}

resource servicePrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: application.appId
}

// Secretless: the managed identity's token for api://AzureADTokenExchange is the app's client assertion. That
// audience is the public cloud's (national clouds use others, as msgraph-bicep-types' msi-as-a-fic-secretless
// quickstart lists); the extension deploys in the public cloud only, and the app requests this one
// (shared/identity/credentials.py TOKEN_EXCHANGE_SCOPE).
resource managedIdentityCredential 'Microsoft.Graph/applications/federatedIdentityCredentials@v1.0' = if (!empty(managedIdentityPrincipalId)) {
  name: '${application.uniqueName}/managed-identity'
  description: 'The Function App\'s user-assigned managed identity'
  audiences: [
    'api://AzureADTokenExchange'
  ]
  issuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
  subject: managedIdentityPrincipalId
}

// An empty loop when grantConsent is false (pycep-parser, which tests/infra uses, lacks `for ... : if`).
resource graphApplicationGrants 'Microsoft.Graph/appRoleAssignedTo@v1.0' = [
  for permission in (grantConsent ? graphApplication : []): {
    principalId: servicePrincipal.id
    resourceId: graphSp.id
    appRoleId: filter(graphSp.appRoles, role => role.value == permission)[0].id
  }
]

resource graphDelegatedGrant 'Microsoft.Graph/oauth2PermissionGrants@v1.0' = if (grantConsent) {
  clientId: servicePrincipal.id
  resourceId: graphSp.id
  consentType: 'AllPrincipals'
  scope: join(graphDelegated, ' ')
}

resource sharePointDelegatedGrant 'Microsoft.Graph/oauth2PermissionGrants@v1.0' = if (grantConsent && sharePoint) {
  clientId: servicePrincipal.id
  resourceId: sharePointSp.id
  consentType: 'AllPrincipals'
  scope: join(sharePointDelegated, ' ')
}

output ENTRA_CLIENT_ID string = application.appId
output ENTRA_APP_ID_URI string = identifierUri.outputs.uri
output ENTRA_TENANT_ID string = tenant().tenantId
output ENTRA_SERVICE_PRINCIPAL_ID string = servicePrincipal.id
