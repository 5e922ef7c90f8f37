"""Every role the app's identity gets is one the code needs, on the narrowest scope; nothing broader."""

from __future__ import annotations

from typing import Any

from tests.infra import bicep

RBAC = bicep.MODULES / "rbac.bicep"

#: Azure built-in roles by the key rbac.bicep uses: (name, role definition ID, the same in every cloud).
BUILT_IN_ROLES = {
    "keyVaultSecretsUser": ("Key Vault Secrets User", "4633458b-17de-408a-b874-0445c86b69e6"),
    "keyVaultSecretsOfficer": ("Key Vault Secrets Officer", "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"),
    "keyVaultCertificatesOfficer": ("Key Vault Certificates Officer", "a4417e6f-fecd-4de8-b567-7b0420556985"),
    "storageBlobDataOwner": ("Storage Blob Data Owner", "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"),
    "storageQueueDataContributor": ("Storage Queue Data Contributor", "974c5e8b-45b9-4653-ba55-5f855dd0fb88"),
    "storageTableDataContributor": ("Storage Table Data Contributor", "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"),
    "monitoringMetricsPublisher": ("Monitoring Metrics Publisher", "3913510d-42f4-4e42-8a64-420c390055eb"),
}

#: (role, scope resource type) the app's identity gets, each with the code that needs it.
APP_NEEDS = {
    (
        "keyVaultSecretsUser",
        "Microsoft.KeyVault/vaults",
    ): "shared/identity/credentials.py reads ENTRA_CREDENTIAL_NAME; sign-in reads SESSION_KEY_NAME",
    ("storageBlobDataOwner", "Microsoft.Storage/storageAccounts"): "the host's AzureWebJobsStorage, the Flex "
    "deployment package, the reports (leases, user-delegation SAS)",
    ("storageQueueDataContributor", "Microsoft.Storage/storageAccounts"): "the report-runs queue trigger",
    ("storageTableDataContributor", "Microsoft.Storage/storageAccounts"): "sessions, auth flows, mail audit",
    ("monitoringMetricsPublisher", "Microsoft.Insights/components"): "telemetry with local auth disabled",
}
#: The deployer (AZURE_PRINCIPAL_ID) only writes vault secrets (the session key, a client secret) and, in
#: keyvault mode, the app's certificate (`az keyvault certificate create` needs certificate permissions).
DEPLOYER_NEEDS = {
    ("keyVaultSecretsOfficer", "Microsoft.KeyVault/vaults"),
    ("keyVaultCertificatesOfficer", "Microsoft.KeyVault/vaults"),
}


def _assignments() -> list[tuple[str, str, str]]:
    """(principal parameter, role key, scope type) of every role assignment in rbac.bicep."""
    found = bicep.resources(RBAC)
    out = []
    for resource in found.values():
        if resource["type"] != "Microsoft.Authorization/roleAssignments":
            continue
        config = bicep.body(resource)
        role_definition: Any = config["properties"]["roleDefinitionId"]["function"]
        assert role_definition["type"] == "subscription_resource_id"
        role = bicep.accessor(role_definition["parameters"]["resource_name_1"])
        assert role[0] == "roleIds", f"role given by a literal, not roleIds: {role_definition}"
        scope = found[config["scope"]]
        assert scope["existing"], "scopes are the resources created elsewhere, referenced by name"
        out.append((config["properties"]["principalId"], role[1], scope["type"]))
    return out


def test_role_ids_are_the_builtin_roles() -> None:
    role_ids = bicep.variables(RBAC)["roleIds"]
    assert role_ids == {key: guid for key, (_, guid) in BUILT_IN_ROLES.items()}


def test_the_app_identity_gets_exactly_what_the_code_needs() -> None:
    granted = {(role, scope) for principal, role, scope in _assignments() if principal == "appPrincipalId"}
    assert granted == set(APP_NEEDS)


def test_the_deployer_gets_only_secret_writes() -> None:
    granted = {
        (role, scope) for principal, role, scope in _assignments() if principal == "deployerPrincipalId"
    }
    assert granted == DEPLOYER_NEEDS
    principals = {principal for principal, _, _ in _assignments()}
    assert principals == {"appPrincipalId", "deployerPrincipalId"}


def test_no_role_is_assigned_anywhere_else() -> None:
    for path in bicep.bicep_files():
        if path == RBAC:
            continue
        types = {resource["type"] for resource in bicep.resources(path).values()}
        assert "Microsoft.Authorization/roleAssignments" not in types, path


def test_main_wires_the_identity_and_the_deployer() -> None:
    params = bicep.body(bicep.parse(bicep.MAIN)["modules"]["rbac"])["params"]
    assert bicep.accessor(params["appPrincipalId"]) == ["identity", "outputs", "principalId"]
    assert params["deployerPrincipalId"] == "principalId"


def test_certificates_officer_only_in_keyvault_mode() -> None:
    """The certificate path of docs/deploy.md creates a certificate in the vault: Secrets Officer alone is
    refused. The role is granted in keyvault mode only, to the deployer only."""
    found = bicep.resources(RBAC)
    condition = found["deployerKeyVaultCertificatesOfficer"]["config"]["condition"]
    assert "deployerManagesCertificates" in repr(condition) and "deployerPrincipalId" in repr(condition)
    assert bicep.parse(RBAC)["parameters"]["deployerManagesCertificates"]["default"] is False
    params = bicep.body(bicep.parse(bicep.MAIN)["modules"]["rbac"])["params"]
    operands = params["deployerManagesCertificates"]["operator"]["operands"]
    assert (operands["operand_1"], operands["operand_2"]) == ("entraCredential", "keyvault")
