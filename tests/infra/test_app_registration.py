"""app-registration.bicep (Microsoft Graph Bicep extension): the single-tenant application with the redirect
URIs, the app roles the API checks, v2 tokens, the Graph and SharePoint permissions the features use, its
service principal and the secretless federated credential."""

from __future__ import annotations

import json

from emulator.directory.seed_apps import API_ROLES
from shared.signin.web import CALLBACK_PATH, CONSENT_CALLBACK_PATH
from tests.infra import bicep

GRAPH_DELEGATED = {"openid", "profile", "offline_access", "User.Read", "User.ReadBasic.All"}
GRAPH_APPLICATION = {"User.Read.All", "Mail.Read", "Mail.Send", "GroupMember.Read.All"}


def _resources() -> dict:
    return bicep.resources(bicep.APP_REGISTRATION)


def test_the_extension_is_configured() -> None:
    config = json.loads((bicep.INFRA / "bicepconfig.json").read_text(encoding="utf-8"))
    reference = config["extensions"]["microsoftGraphV1"]
    assert reference.startswith("br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:")
    assert bicep.parse(bicep.APP_REGISTRATION)["extensions"] == {"microsoftGraphV1": {}}


def test_single_tenant_v2_tokens_and_the_sign_in_uris() -> None:
    app = bicep.body(_resources()["application"])
    assert app["signInAudience"] == "AzureADMyOrg"
    assert app["api"]["requestedAccessTokenVersion"] == 2
    uris = json.dumps(app["web"]["redirectUris"])
    # The callback paths the code serves, and the post-logout URI.
    assert "${origin}" + CALLBACK_PATH in uris
    assert "${origin}" + CONSENT_CALLBACK_PATH in uris
    assert '"${origin}/"' in uris, "the post-logout URI must be a registered redirect URI"
    implicit = app["web"]["implicitGrantSettings"]
    assert implicit == {"enableAccessTokenIssuance": False, "enableIdTokenIssuance": False}


def test_the_app_roles_are_the_ones_the_api_checks() -> None:
    roles = bicep.variables(bicep.APP_REGISTRATION)["apiRoles"]
    assert sorted(role["value"] for role in roles) == sorted(API_ROLES)
    app_roles = bicep.body(_resources()["application"])["appRoles"]
    assert app_roles["loop_type"]["detail"]["array_name"] == "apiRoles"
    role = app_roles["config"]
    # Services (client credentials) and signed-in people alike; the id is stable across redeployments.
    assert role["allowedMemberTypes"] == ["Application", "User"]
    assert role["isEnabled"] is True
    assert role["id"]["function"]["type"] == "guid"
    assert bicep.accessor(role["value"]) == ["role", "value"]


def test_the_permissions_are_the_ones_the_features_use() -> None:
    names = bicep.variables(bicep.APP_REGISTRATION)
    assert set(names["graphDelegated"]) == GRAPH_DELEGATED
    assert set(names["graphApplication"]) == GRAPH_APPLICATION
    assert names["sharePointDelegated"] == ["AllSites.Read"]
    assert names["graphAppId"] == "00000003-0000-0000-c000-000000000000"
    assert names["sharePointAppId"] == "00000003-0000-0ff1-ce00-000000000000"
    # Permission IDs are looked up by name on the resource's service principal, never hard-coded.
    access = json.dumps(bicep.body(_resources()["application"])["requiredResourceAccess"])
    assert "graphSp" in access and "sharePointSp" in access


def test_service_principal_and_the_secretless_credential() -> None:
    found = _resources()
    assert found["servicePrincipal"]["type"] == "Microsoft.Graph/servicePrincipals"
    fic = found["managedIdentityCredential"]
    assert fic["type"] == "Microsoft.Graph/applications/federatedIdentityCredentials"
    credential = bicep.body(fic)
    assert credential["audiences"] == ["api://AzureADTokenExchange"]
    assert credential["subject"] == "managedIdentityPrincipalId"
    assert credential["issuer"].endswith("/v2.0")
    # No client secret can come from a template: none is attempted.
    assert "passwordCredentials" not in json.dumps(bicep.parse(bicep.APP_REGISTRATION))


def test_consent_is_opt_in() -> None:
    parameters = bicep.parse(bicep.APP_REGISTRATION)["parameters"]
    assert parameters["grantConsent"]["default"] is False
    found = _resources()
    assert {r["type"] for r in found.values()} >= {
        "Microsoft.Graph/appRoleAssignedTo",
        "Microsoft.Graph/oauth2PermissionGrants",
    }
