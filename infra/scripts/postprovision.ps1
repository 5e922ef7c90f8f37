# azd postprovision hook for Windows (azure.yaml); the same steps as postprovision.sh (read its header).
# Idempotent; run it again with `azd hooks run postprovision`.
# Needs: az signed in as the same account and tenant as azd (checked first).
$ErrorActionPreference = 'Stop'
if (-not $env:AZURE_KEY_VAULT_NAME -or -not $env:SESSION_KEY_NAME) {
    throw 'Run through azd (azd provision), which sets AZURE_KEY_VAULT_NAME and SESSION_KEY_NAME.'
}
$vault = $env:AZURE_KEY_VAULT_NAME
$name = $env:SESSION_KEY_NAME
$tenantHint = if ($env:AZURE_TENANT_ID) { $env:AZURE_TENANT_ID } else { '<the tenant azd deployed to>' }
# A role assignment usually applies within a minute or two, rarely up to ten: 5+10+20+40+60*5 s ~ 6 minutes.
$maxAttempts = 10

if ($env:PRIVATE_NETWORKING -eq 'true') {
    # The vault accepts only its private endpoint: this machine cannot write to it (docs/deploy.md).
    Write-Host "ACTION: private networking: create the session key '$name' in vault '$vault' from a machine in the VNet."
    exit 0
}

# 0. The same account and tenant as azd: the vault roles were granted to azd's account (AZURE_PRINCIPAL_ID).
if (-not (Get-Command az -ErrorAction SilentlyContinue)) {
    throw 'The Azure CLI (az) is missing; install it (docs/deploy.md), then run: azd hooks run postprovision'
}
$account = az account show --query '{tenant: tenantId, kind: user.type, who: user.name}' --output json 2>$null
if ($LASTEXITCODE -ne 0) {
    throw "az is not signed in. Run: az login --tenant $tenantHint (as the account you ran azd with), then: azd hooks run postprovision"
}
$account = $account | ConvertFrom-Json
if ($env:AZURE_TENANT_ID -and $account.tenant -ne $env:AZURE_TENANT_ID) {
    throw "az is signed in to tenant $($account.tenant), but azd deployed to tenant $($env:AZURE_TENANT_ID). Run: az login --tenant $($env:AZURE_TENANT_ID) (as the account you ran azd with), or: azd config set auth.useAzCliAuth true. Then: azd hooks run postprovision"
}
if ($env:AZURE_PRINCIPAL_ID) {
    $objectId = ''
    if ($account.kind -eq 'user') {
        $objectId = az ad signed-in-user show --query id --output tsv 2>$null
    } elseif ($account.kind -eq 'servicePrincipal') {
        $objectId = az ad sp show --id $account.who --query id --output tsv 2>$null
    }
    if (-not $objectId) {
        Write-Warning "Could not look up the object ID of az's account ($($account.who)); assuming it is azd's."
    } elseif ($objectId -ne $env:AZURE_PRINCIPAL_ID) {
        throw "az is signed in as $($account.who) ($objectId), but azd deployed as $($env:AZURE_PRINCIPAL_ID), who holds the vault roles. Run: az login --tenant $tenantHint as that account, or: azd config set auth.useAzCliAuth true. Then: azd hooks run postprovision"
    }
}

# 'present' or 'absent'. SecretNotFound is the only 'absent'; a 403 (role still propagating) or a transient
# error is retried with back-off; anything else stops the hook.
function Get-SecretState([string] $secretName) {
    # az's error output is read below, not raised: Windows PowerShell would stop on redirected stderr.
    $ErrorActionPreference = 'Continue'
    $delay = 5
    for ($attempt = 1; ; $attempt++) {
        $err = az keyvault secret show --vault-name $vault --name $secretName --query id --output none 2>&1
        if ($LASTEXITCODE -eq 0) { return 'present' }
        $text = ($err | Out-String)
        if ($text -match 'SecretNotFound') { return 'absent' }
        if ($text -match 'deleted but recoverable|ObjectIsDeletedButRecoverable') {
            throw "Secret '$secretName' is soft-deleted in vault '$vault'. Recover it: az keyvault secret recover --vault-name $vault --name $secretName; then: azd hooks run postprovision"
        }
        if ($text -match 'ForbiddenByFirewall|ForbiddenByConnection|public network access') {
            throw "Vault '$vault' refuses this machine's network (firewall or private endpoint only): run the hook from inside the VNet (docs/deploy.md)."
        }
        if ($attempt -ge $maxAttempts) {
            Write-Host $text
            throw "Could not read secret '$secretName' in vault '$vault' after $attempt attempts (above: az's last answer). Nothing was written. Check that $tenantHint is az's tenant and that you hold Key Vault Secrets Officer on the vault, then: azd hooks run postprovision"
        }
        $reason = if ($text -match 'Forbidden') { 'forbidden (the role assignment is probably still propagating)' } else { 'failed' }
        Write-Host "Vault '$vault': reading '$secretName' $reason; retrying in ${delay}s ($attempt/$maxAttempts)."
        Start-Sleep -Seconds $delay
        $delay = [Math]::Min($delay * 2, 60)
    }
}

if ((Get-SecretState $name) -eq 'present') {
    Write-Host "Session key '$name' already in vault '$vault': kept."
} else {
    # 32 random bytes, URL-safe base64 (a Fernet key), through a temporary file: never on the command line.
    $bytes = [System.Security.Cryptography.RandomNumberGenerator]::GetBytes(32)
    $key = [Convert]::ToBase64String($bytes).Replace('+', '-').Replace('/', '_')
    if ($key.Length -ne 44) { throw 'Could not generate the session key; nothing was written.' }
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
    if ((Get-SecretState $credential) -eq 'absent') {
        Write-Host "ACTION: ENTRA_CREDENTIAL=keyvault but vault secret '$credential' is missing: see docs/deploy.md (the credential)."
    }
}
if ($env:ENTRA_APP_REGISTRATION -eq 'existing') {
    Write-Host "ACTION: the app registration $($env:ENTRA_CLIENT_ID) is managed outside azd; an administrator must give it"
    Write-Host "        redirect URIs $($env:APP_BASE_URL)/auth/callback, $($env:APP_BASE_URL)/auth/admin-consent/callback and $($env:APP_BASE_URL)/,"
    Write-Host "        the identifier URI api://$($env:ENTRA_CLIENT_ID) and, for managed-identity, a federated credential for"
    Write-Host "        the managed identity $($env:MANAGED_IDENTITY_PRINCIPAL_ID) (docs/deploy.md, without Entra rights)."
}
if ($env:ENTRA_GRANT_CONSENT -ne 'true') {
    Write-Host "ACTION: admin consent is still needed: a Privileged Role Administrator opens $($env:APP_BASE_URL)/auth/admin-consent,"
    Write-Host "        or runs: az ad app permission admin-consent --id $($env:ENTRA_CLIENT_ID)"
}
Write-Host "App: $($env:APP_BASE_URL)/api/health"
