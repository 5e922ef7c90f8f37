# azd postprovision hook for Windows (azure.yaml); the same steps as postprovision.sh. Idempotent.
# Needs: az (signed in as the deployer, who holds Key Vault Secrets Officer on the vault).
$ErrorActionPreference = 'Stop'
if (-not $env:AZURE_KEY_VAULT_NAME -or -not $env:SESSION_KEY_NAME) {
    throw 'Run through azd (azd provision), which sets AZURE_KEY_VAULT_NAME and SESSION_KEY_NAME.'
}
$vault = $env:AZURE_KEY_VAULT_NAME
$name = $env:SESSION_KEY_NAME

if ($env:PRIVATE_NETWORKING -eq 'true') {
    # The vault accepts only its private endpoint: this machine cannot write to it (docs/deploy.md, step 3).
    Write-Host "ACTION: private networking: create the session key '$name' in vault '$vault' from a machine in the VNet."
    exit 0
}

az keyvault secret show --vault-name $vault --name $name --query id --output none 2>$null
if ($LASTEXITCODE -eq 0) {
    Write-Host "Session key '$name' already in vault '$vault': kept."
} else {
    # 32 random bytes, URL-safe base64 (a Fernet key), through a temporary file: never on the command line.
    $bytes = [System.Security.Cryptography.RandomNumberGenerator]::GetBytes(32)
    $key = [Convert]::ToBase64String($bytes).Replace('+', '-').Replace('/', '_')
    $file = New-TemporaryFile
    try {
        Set-Content -Path $file -Value $key -NoNewline -Encoding ascii
        az keyvault secret set --vault-name $vault --name $name --file $file --encoding utf-8 `
            --content-type 'application/octet-stream; encoding=base64url' --output none
        if ($LASTEXITCODE -ne 0) { throw "Could not create the session key in vault '$vault'." }
    } finally {
        Remove-Item -Force $file
    }
    Write-Host "Session key '$name' created in vault '$vault'."
}

if ($env:ENTRA_CREDENTIAL -eq 'keyvault') {
    $credential = if ($env:ENTRA_CREDENTIAL_NAME) { $env:ENTRA_CREDENTIAL_NAME } else { 'graph-functions-credential' }
    az keyvault secret show --vault-name $vault --name $credential --query id --output none 2>$null
    if ($LASTEXITCODE -ne 0) {
        Write-Host "ACTION: ENTRA_CREDENTIAL=keyvault but vault secret '$credential' is missing: see docs/deploy.md (step 3)."
    }
}
if (-not $env:ENTRA_CLIENT_ID) {
    Write-Host 'ACTION: no ENTRA_CLIENT_ID: deploy infra/app-registration.bicep (docs/deploy.md, step 2), then'
    Write-Host '        azd env set ENTRA_CLIENT_ID <its output> and azd provision.'
}
Write-Host "App: $($env:APP_BASE_URL)/api/health"
