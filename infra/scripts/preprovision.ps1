# azd preprovision hook for Windows (azure.yaml); the same step as preprovision.sh (read its header): with
# PRIVATE_NETWORKING=true, registers the Microsoft.App resource provider Flex Consumption's VNet integration needs.
$ErrorActionPreference = 'Stop'
if ($env:PRIVATE_NETWORKING -ne 'true') { exit 0 }
if (-not (Get-Command az -ErrorAction SilentlyContinue)) {
    throw 'PRIVATE_NETWORKING=true needs the Microsoft.App resource provider; install the Azure CLI (az) to let this hook register it, or register it yourself (docs/deploy.md).'
}
$subscription = $env:AZURE_SUBSCRIPTION_ID
if (-not $subscription) {
    $subscription = az account show --query id --output tsv 2>$null
    if ($LASTEXITCODE -ne 0) { throw 'az is not signed in: run az login (as the account you run azd with), then azd provision again.' }
}
$state = az provider show --namespace Microsoft.App --subscription $subscription --query registrationState --output tsv 2>$null
if ($LASTEXITCODE -ne 0) {
    throw "Could not read the Microsoft.App provider's state in subscription ${subscription}: sign az in as the account you run azd with, then azd provision again."
}
if ($state -eq 'Registered') {
    Write-Host 'Resource provider Microsoft.App: registered.'
    exit 0
}
Write-Host "Resource provider Microsoft.App: $state; registering it (needs Contributor or Owner on the subscription)..."
az provider register --namespace Microsoft.App --subscription $subscription --wait --output none
if ($LASTEXITCODE -ne 0) {
    throw "Could not register Microsoft.App: ask a subscription Owner or Contributor to run: az provider register --namespace Microsoft.App --subscription $subscription --wait"
}
Write-Host 'Resource provider Microsoft.App: registered.'
