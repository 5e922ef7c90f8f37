#!/bin/sh
# azd postprovision hook (azure.yaml): runs after `azd provision` / `azd up` with the azd environment's
# values (main.bicep outputs) in its environment. Idempotent.
#  1. Creates the session encryption key (SESSION_KEY_NAME) in the vault when it does not exist yet: 32 random
#     bytes, URL-safe base64 (a Fernet key). Never replaced here; rotation is a new version (docs/operations.md).
#  2. Reports what is still manual: the app registration, the credential upload (keyvault mode), consent.
# Needs: az (signed in as the deployer, who holds Key Vault Secrets Officer on the vault) and openssl.
# Secret values never reach the terminal or the process list (written through a private temporary file).
set -eu

: "${AZURE_KEY_VAULT_NAME:?run through azd (azd provision), which sets AZURE_KEY_VAULT_NAME}"
: "${SESSION_KEY_NAME:?run through azd (azd provision), which sets SESSION_KEY_NAME}"

if [ "${PRIVATE_NETWORKING:-false}" = "true" ]; then
  # The vault accepts only its private endpoint: this machine cannot write to it (docs/deploy.md, step 3).
  echo "ACTION: private networking: create the session key '$SESSION_KEY_NAME' in vault '$AZURE_KEY_VAULT_NAME'"
  echo "        from a machine in the VNet: eval \"\$(azd env get-values)\"; PRIVATE_NETWORKING=false sh $0"
  exit 0
fi

if az keyvault secret show --vault-name "$AZURE_KEY_VAULT_NAME" --name "$SESSION_KEY_NAME" \
    --query id --output none 2>/dev/null; then
  echo "Session key '$SESSION_KEY_NAME' already in vault '$AZURE_KEY_VAULT_NAME': kept."
else
  umask 077
  key_file=$(mktemp)
  trap 'rm -f "$key_file"' EXIT INT TERM
  openssl rand 32 | openssl base64 -A | tr '+/' '-_' > "$key_file"
  az keyvault secret set --vault-name "$AZURE_KEY_VAULT_NAME" --name "$SESSION_KEY_NAME" \
    --file "$key_file" --encoding utf-8 --content-type "application/octet-stream; encoding=base64url" \
    --output none
  rm -f "$key_file"
  echo "Session key '$SESSION_KEY_NAME' created in vault '$AZURE_KEY_VAULT_NAME'."
fi

if [ "${ENTRA_CREDENTIAL:-managed-identity}" = "keyvault" ]; then
  name="${ENTRA_CREDENTIAL_NAME:-graph-functions-credential}"
  if ! az keyvault secret show --vault-name "$AZURE_KEY_VAULT_NAME" --name "$name" \
      --query id --output none 2>/dev/null; then
    echo "ACTION: ENTRA_CREDENTIAL=keyvault but vault secret '$name' is missing: upload the client secret or"
    echo "        certificate as described in docs/deploy.md (step 3)."
  fi
fi

if [ -z "${ENTRA_CLIENT_ID:-}" ]; then
  echo "ACTION: no ENTRA_CLIENT_ID: deploy infra/app-registration.bicep (docs/deploy.md, step 2) with"
  echo "        appBaseUrl=${APP_BASE_URL:-<APP_BASE_URL>} managedIdentityPrincipalId=${MANAGED_IDENTITY_PRINCIPAL_ID:-<id>},"
  echo "        then: azd env set ENTRA_CLIENT_ID <its ENTRA_CLIENT_ID output> && azd provision"
fi
echo "App: ${APP_BASE_URL:-<APP_BASE_URL>}/api/health"
