#!/bin/sh
# azd postprovision hook (azure.yaml): runs after `azd provision` / `azd up` with the azd environment's
# values (main.bicep outputs) in its environment. Idempotent; run it again with `azd hooks run postprovision`.
#  0. Checks that `az` is signed in as the same account and tenant as azd: the vault roles were granted to
#     azd's account (AZURE_PRINCIPAL_ID), and any other sign-in is refused by the vault.
#  1. Creates the session encryption key (SESSION_KEY_NAME) in the vault when it does not exist yet: 32 random
#     bytes, URL-safe base64 (a Fernet key). Never replaced here; rotation is a new version (docs/operations.md).
#     "Does not exist" means the vault said SecretNotFound: a 403 (the Secrets Officer role granted seconds
#     ago is still propagating) or a network error is retried with back-off, never taken for "absent".
#  2. Reports what is still manual: the credential upload (keyvault mode), an existing registration's
#     settings, admin consent.
# Needs: az and openssl. Secret values never reach the terminal or the process list (written through a
# private temporary file).
set -eu

: "${AZURE_KEY_VAULT_NAME:?run through azd (azd provision), which sets AZURE_KEY_VAULT_NAME}"
: "${SESSION_KEY_NAME:?run through azd (azd provision), which sets SESSION_KEY_NAME}"

# A role assignment usually applies within a minute or two, rarely up to ten: 5+10+20+40+60*5 s ~ 6 minutes.
MAX_ATTEMPTS=10

umask 077
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT INT TERM

fail() {
  echo "ERROR: $*" >&2
  exit 1
}

tenant_hint="${AZURE_TENANT_ID:-<the tenant azd deployed to>}"

# 0. The same account and tenant as azd.
check_az_account() {
  command -v az >/dev/null 2>&1 || fail "the Azure CLI (az) is missing; install it (docs/deploy.md, before you start), then run: azd hooks run postprovision"
  if ! account=$(az account show --query "[tenantId, user.type, user.name]" --output tsv 2>/dev/null); then
    fail "az is not signed in. Run: az login --tenant $tenant_hint (as the account you ran azd with), then: azd hooks run postprovision"
  fi
  tenant=$(printf '%s\n' "$account" | cut -f1)
  kind=$(printf '%s\n' "$account" | cut -f2)
  who=$(printf '%s\n' "$account" | cut -f3)
  if [ -n "${AZURE_TENANT_ID:-}" ] && [ "$tenant" != "${AZURE_TENANT_ID:-}" ]; then
    fail "az is signed in to tenant $tenant, but azd deployed to tenant ${AZURE_TENANT_ID:-}. Run: az login --tenant ${AZURE_TENANT_ID:-} (as the account you ran azd with), or let azd use az's sign-in: azd config set auth.useAzCliAuth true. Then: azd hooks run postprovision"
  fi
  if [ -z "${AZURE_PRINCIPAL_ID:-}" ]; then
    return 0
  fi
  case "$kind" in
    user) object_id=$(az ad signed-in-user show --query id --output tsv 2>/dev/null || true) ;;
    servicePrincipal) object_id=$(az ad sp show --id "$who" --query id --output tsv 2>/dev/null || true) ;;
    *) object_id="" ;;
  esac
  if [ -z "$object_id" ]; then
    echo "Note: could not look up the object ID of az's account ($who); assuming it is azd's." >&2
  elif [ "$object_id" != "${AZURE_PRINCIPAL_ID:-}" ]; then
    fail "az is signed in as $who ($object_id), but azd deployed as ${AZURE_PRINCIPAL_ID:-}, who holds the vault roles. Run: az login --tenant $tenant_hint as that account, or: azd config set auth.useAzCliAuth true (azd then uses az's sign-in). Then: azd hooks run postprovision"
  fi
}

# Prints "present" or "absent" for vault secret $1. SecretNotFound is the only "absent"; a 403 (role still
# propagating) or a transient error is retried with back-off; anything else stops the hook.
secret_state() {
  name=$1
  err="$scratch/show.err"
  delay=5
  attempt=1
  while :; do
    if az keyvault secret show --vault-name "$AZURE_KEY_VAULT_NAME" --name "$name" \
        --query id --output none 2>"$err"; then
      echo present
      return 0
    fi
    if grep -q "SecretNotFound" "$err"; then
      echo absent
      return 0
    fi
    if grep -qi "deleted but recoverable\|ObjectIsDeletedButRecoverable" "$err"; then
      fail "secret '$name' is soft-deleted in vault '$AZURE_KEY_VAULT_NAME'. Recover it: az keyvault secret recover --vault-name $AZURE_KEY_VAULT_NAME --name $name; then: azd hooks run postprovision"
    fi
    if grep -qi "ForbiddenByFirewall\|ForbiddenByConnection\|public network access" "$err"; then
      fail "vault '$AZURE_KEY_VAULT_NAME' refuses this machine's network (firewall or private endpoint only): run the hook from inside the VNet (docs/deploy.md)"
    fi
    if [ "$attempt" -ge "$MAX_ATTEMPTS" ]; then
      cat "$err" >&2
      fail "could not read secret '$name' in vault '$AZURE_KEY_VAULT_NAME' after $attempt attempts (above: az's last answer). Nothing was written. Check that $tenant_hint is az's tenant and that you hold Key Vault Secrets Officer on the vault, then: azd hooks run postprovision"
    fi
    if grep -q "Forbidden" "$err"; then
      reason="forbidden (the role assignment is probably still propagating)"
    else
      reason="failed ($(head -n 1 "$err" | cut -c1-120))"
    fi
    echo "Vault '$AZURE_KEY_VAULT_NAME': reading '$name' $reason; retrying in ${delay}s ($attempt/$MAX_ATTEMPTS)." >&2
    sleep "$delay"
    attempt=$((attempt + 1))
    delay=$((delay * 2))
    if [ "$delay" -gt 60 ]; then
      delay=60
    fi
  done
}

if [ "${PRIVATE_NETWORKING:-false}" = "true" ]; then
  # The vault accepts only its private endpoint: this machine cannot write to it (docs/deploy.md).
  echo "ACTION: private networking: create the session key '$SESSION_KEY_NAME' in vault '$AZURE_KEY_VAULT_NAME'"
  echo "        from a machine in the VNet: eval \"\$(azd env get-values)\"; PRIVATE_NETWORKING=false sh $0"
  exit 0
fi

check_az_account

state=$(secret_state "$SESSION_KEY_NAME")
if [ "$state" = "present" ]; then
  echo "Session key '$SESSION_KEY_NAME' already in vault '$AZURE_KEY_VAULT_NAME': kept."
else
  key_file="$scratch/session-key"
  openssl rand 32 | openssl base64 -A | tr '+/' '-_' > "$key_file"
  # A Fernet key is 44 characters. A failed openssl inside the pipe would leave the file short or empty,
  # and an empty secret would break every sign-in: never store one.
  [ "$(wc -c < "$key_file" | tr -d ' ')" -eq 44 ] || fail "could not generate the session key (openssl rand); nothing was written"
  az keyvault secret set --vault-name "$AZURE_KEY_VAULT_NAME" --name "$SESSION_KEY_NAME" \
    --file "$key_file" --encoding utf-8 --content-type "application/octet-stream; encoding=base64url" \
    --output none
  rm -f "$key_file"
  echo "Session key '$SESSION_KEY_NAME' created in vault '$AZURE_KEY_VAULT_NAME'."
fi

if [ "${ENTRA_CREDENTIAL:-managed-identity}" = "keyvault" ]; then
  name="${ENTRA_CREDENTIAL_NAME:-graph-functions-credential}"
  credential_state=$(secret_state "$name")
  if [ "$credential_state" = "absent" ]; then
    echo "ACTION: ENTRA_CREDENTIAL=keyvault but vault secret '$name' is missing: upload the certificate or"
    echo "        client secret as described in docs/deploy.md (the credential)."
  fi
fi

if [ "${ENTRA_APP_REGISTRATION:-created}" = "existing" ]; then
  echo "ACTION: the app registration ${ENTRA_CLIENT_ID:-<ENTRA_EXISTING_CLIENT_ID>} is managed outside azd; an administrator"
  echo "        must give it: redirect URIs ${APP_BASE_URL:-<APP_BASE_URL>}/auth/callback,"
  echo "        ${APP_BASE_URL:-<APP_BASE_URL>}/auth/admin-consent/callback and ${APP_BASE_URL:-<APP_BASE_URL>}/; the identifier URI"
  echo "        api://${ENTRA_CLIENT_ID:-<client id>}; and, for ENTRA_CREDENTIAL=managed-identity, a federated credential"
  echo "        for the managed identity ${MANAGED_IDENTITY_PRINCIPAL_ID:-<id>} (docs/deploy.md, without Entra rights)."
fi
if [ "${ENTRA_GRANT_CONSENT:-false}" != "true" ]; then
  echo "ACTION: admin consent is still needed (docs/deploy.md, admin consent): a Privileged Role Administrator"
  echo "        opens ${APP_BASE_URL:-<APP_BASE_URL>}/auth/admin-consent, or runs:"
  echo "        az ad app permission admin-consent --id ${ENTRA_CLIENT_ID:-<client id>}"
fi
echo "App: ${APP_BASE_URL:-<APP_BASE_URL>}/api/health"
