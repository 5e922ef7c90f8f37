// Sets the application ID URI `api://{appId}` on the app registration app-registration.bicep created: a second
// declaration of the same application (same uniqueName), because an application cannot name its own appId in
// its body. Graph upserts uniquely named resources with PATCH, so the other properties stay as they are.
extension microsoftGraphV1

@description('uniqueName of the application to update.')
param uniqueName string

@description('Its display name (a required property of every application declaration; unchanged).')
param displayName string

@description('Its application (client) ID.')
param appId string

var uri = 'api://${appId}'

resource application 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: uniqueName
  displayName: displayName
  identifierUris: [
    uri
  ]
}

output uri string = application.identifierUris[0]
