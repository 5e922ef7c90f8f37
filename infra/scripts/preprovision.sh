#!/bin/sh
# azd preprovision hook (azure.yaml): runs before `azd provision` / `azd up` with the azd environment's values.
# With PRIVATE_NETWORKING=true, registers the Microsoft.App resource provider in the subscription: Flex
# Consumption's VNet integration delegates the app's subnet to Microsoft.App/environments, and no resource in
# the template registers that provider (ARM registers only the providers of the resources it deploys).
# Without private networking it does nothing (and needs nothing, not even az).
set -eu

if [ "${PRIVATE_NETWORKING:-false}" != "true" ]; then
  exit 0
fi

fail() {
  echo "ERROR: $*" >&2
  exit 1
}

command -v az >/dev/null 2>&1 || fail "PRIVATE_NETWORKING=true needs the Microsoft.App resource provider; install the Azure CLI (az) to let this hook register it, or register it yourself (docs/deploy.md, before you start)"
subscription="${AZURE_SUBSCRIPTION_ID:-}"
if [ -z "$subscription" ]; then
  subscription=$(az account show --query id --output tsv 2>/dev/null) || fail "az is not signed in: run az login (as the account you run azd with), then azd provision again"
fi
state=$(az provider show --namespace Microsoft.App --subscription "$subscription" \
  --query registrationState --output tsv 2>/dev/null) || fail "could not read the Microsoft.App provider's state in subscription $subscription: sign az in as the account you run azd with (az login), then azd provision again"
if [ "$state" = "Registered" ]; then
  echo "Resource provider Microsoft.App: registered."
  exit 0
fi
echo "Resource provider Microsoft.App: $state; registering it (needs Contributor or Owner on the subscription)..."
az provider register --namespace Microsoft.App --subscription "$subscription" --wait --output none \
  || fail "could not register Microsoft.App: ask a subscription Owner or Contributor to run: az provider register --namespace Microsoft.App --subscription $subscription --wait"
echo "Resource provider Microsoft.App: registered."
