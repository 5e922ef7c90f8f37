"""app-registration.bicep (Microsoft Graph Bicep extension): the single-tenant application with the redirect
URIs, the application ID URI callers use, the app roles the API checks, v2 tokens, the Graph and SharePoint
permissions the features use, its service principal and the secretless federated credential; and main.bicep
deploying it in the same pass as the site."""

from __future__ import annotations

import json
import re

from emulator.directory.seed_apps import API_ROLES
from shared.core.settings import Settings
from shared.web.cookies import CALLBACK_PATH, CONSENT_CALLBACK_PATH
from tests.infra import bicep

GRAPH_DELEGATED = {"openid", "profile", "offline_access", "User.Read", "User.ReadBasic.All"}
GRAPH_APPLICATION_BASE = {"User.Read.All", "AuditLog.Read.All", "GroupMember.Read.All"}
GRAPH_APPLICATION_MAIL = {"Mail.Read", "Mail.Send"}
#: Sign-in scopes every OpenID Connect client requests; no code names them as a Graph permission.
OIDC_SCOPES = {"openid", "profile", "offline_access"}
#: Microsoft Graph / SharePoint permission names as the code's docstrings and messages spell them.
_PERMISSION = re.compile(
    r"\b(?:User|Mail|GroupMember|Group|AuditLog|Directory|Sites|AllSites)\.[A-Za-z]+(?:\.All)?\b"
)


def _resources() -> dict:
    return bicep.resources(bicep.APP_REGISTRATION)


def test_the_extension_is_configured() -> None:
    config = json.loads((bicep.INFRA / "bicepconfig.json").read_text(encoding="utf-8"))
    reference = config["extensions"]["microsoftGraphV1"]
    assert reference.startswith("br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:")
    assert bicep.parse(bicep.APP_REGISTRATION)["extensions"] == {"microsoftGraphV1": {}}


def test_single_tenant_v2_tokens_and_the_sign_in_uris() -> None:
    app = bicep.body(_resources()["application"])
    # The audience is a parameter: single-tenant by default, multi-tenant for ENTRA_TENANCY=multi.
    assert bicep.accessor(app["signInAudience"]) == ["signInAudience"]
    audience = bicep.parse(bicep.APP_REGISTRATION)["parameters"]["signInAudience"]
    assert audience["default"] == "AzureADMyOrg"
    allowed = next(d["argument"] for d in audience["decorators"] if d["type"] == "allowed")
    assert allowed == ["AzureADMyOrg", "AzureADMultipleOrgs"]
    # main.bicep derives it from ENTRA_TENANCY, and only a multi-tenant registration onboards.
    main = bicep.body(bicep.parse(bicep.MAIN)["modules"]["appRegistration"])["params"]
    assert "entraTenancy" in json.dumps(main["signInAudience"])
    assert "/onboard/callback" in json.dumps(app["web"]["redirectUris"])
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
    assert set(names["graphApplicationBase"]) == GRAPH_APPLICATION_BASE
    assert set(names["graphApplicationMail"]) == GRAPH_APPLICATION_MAIL
    # Mail.Read / Mail.Send join only with mailPermissions (default on).
    assert "mailPermissions" in json.dumps(names["graphApplication"])
    assert bicep.parse(bicep.APP_REGISTRATION)["parameters"]["mailPermissions"]["default"] is True
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
    # The name refers to the application's own uniqueName, which orders it after the application
    # (microsoftgraph/msgraph-bicep-types#271: a literal parent name fails with NotFound).
    assert credential["name"] == "${application.uniqueName}/managed-identity"
    assert credential["issuer"].endswith("/v2.0")
    # No client secret can come from a template: none is attempted.
    assert "passwordCredentials" not in json.dumps(bicep.parse(bicep.APP_REGISTRATION))


def _code_permissions() -> set[str]:
    """Every Graph or SharePoint permission the app's code names (docstrings, messages), minus this API's own
    app roles (``Mail.Read.All`` is one of those)."""
    text = "\n".join(
        path.read_text(encoding="utf-8")
        for folder in ("shared", "blueprints")
        for path in sorted((bicep.ROOT / folder).rglob("*.py"))
    )
    return set(_PERMISSION.findall(text)) - set(API_ROLES)


def test_every_permission_the_code_uses_is_requested_and_nothing_else() -> None:
    """The report's sign-in activity (AuditLog.Read.All) was missing: Graph then refuses signInActivity and
    every report says "no sign-in activity"."""
    names = bicep.variables(bicep.APP_REGISTRATION)
    requested = (
        set(names["graphDelegated"])
        | set(names["graphApplicationBase"])
        | set(names["graphApplicationMail"])
        | set(names["sharePointDelegated"])
    )
    used = _code_permissions()
    assert "AuditLog.Read.All" in used
    assert used <= requested, f"used by the code but not requested: {sorted(used - requested)}"
    assert requested - OIDC_SCOPES <= used, (
        f"requested, used nowhere: {sorted(requested - OIDC_SCOPES - used)}"
    )


def test_the_identifier_uri_is_the_one_callers_are_told_to_use() -> None:
    """Callers request `api://{client id}/.default` (README, OpenAPI, errors); without that identifier URI on
    the registration Entra answers AADSTS500011."""
    parsed = bicep.parse(bicep.MODULES / "app-identifier-uri.bicep")
    assert parsed["extensions"] == {"microsoftGraphV1": {}}
    assert parsed["variables"]["uri"]["value"] == "api://${appId}"
    (application,) = parsed["resources"].values()
    assert application["type"] == "Microsoft.Graph/applications"
    assert bicep.body(application)["identifierUris"] == ["uri"]
    assert bicep.body(application)["uniqueName"] == "uniqueName"
    module = bicep.parse(bicep.APP_REGISTRATION)["modules"]["identifierUri"]
    params = bicep.body(module)["params"]
    assert bicep.accessor(params["appId"]) == ["application", "appId"]
    assert bicep.accessor(params["uniqueName"]) == ["application", "uniqueName"]
    # The code accepts exactly that audience, and tells callers to request it.
    client_id = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    settings = Settings(tenant_id="66666666-7777-8888-9999-000000000000", client_id=client_id)
    assert f"api://{client_id}" in settings.api_audiences
    for path in ("README.md", "shared/app/openapi.py", "shared/identity/bearer.py", "docs/errors.md"):
        assert "api://{" in (bicep.ROOT / path).read_text(encoding="utf-8"), path
    main_outputs = bicep.parse(bicep.MAIN)["outputs"]
    assert main_outputs["ENTRA_APP_ID_URI"]["value"] == "api://${entraClientId}"


def test_sharepoint_is_looked_up_only_when_configured() -> None:
    """A tenant without SharePoint Online has no SharePoint service principal: an unconditional `existing`
    lookup failed the whole deployment."""
    found = _resources()
    assert found["sharePointSp"]["existing"] is True
    assert found["sharePointSp"]["config"]["condition"] == "sharePoint"
    assert bicep.parse(bicep.APP_REGISTRATION)["parameters"]["sharePoint"]["default"] is False
    grant = found["sharePointDelegatedGrant"]["config"]["condition"]
    assert "sharePoint" in json.dumps(grant) and "grantConsent" in json.dumps(grant)
    params = bicep.body(bicep.parse(bicep.MAIN)["modules"]["appRegistration"])["params"]
    assert "sharepointSiteUrl" in json.dumps(params["sharePoint"])


def test_main_creates_the_registration_in_the_same_pass() -> None:
    """One `azd up`: the registration is a module of main.bicep after the site and the identity, the app
    settings take its client ID, and ENTRA_CLIENT_ID is an output; an existing client ID is the path for
    deployers without Entra rights, under a name azd never writes back."""
    main = bicep.parse(bicep.MAIN)
    module = main["modules"]["appRegistration"]
    assert module["detail"]["path"] == "app-registration.bicep"
    assert module["config"]["condition"] == "createAppRegistration"
    assert main["variables"]["createAppRegistration"]["value"]["function"]["type"] == "empty"
    params = bicep.body(module)["params"]
    assert "appBaseUrl" in json.dumps(params["appBaseUrl"])
    assert "identity" in json.dumps(params["managedIdentityPrincipalId"])
    assert bicep.accessor(
        main["variables"]["appBaseUrl"]["value"]["operator"]["operands"]["false_value"]
    ) == ["publicBaseUrl"]
    client_id = json.dumps(main["variables"]["entraClientId"]["value"])
    assert "appRegistration" in client_id and "entraExistingClientId" in client_id
    settings = bicep.body(main["modules"]["appSettings"])["params"]
    assert settings["entra"]["clientId"] == "entraClientId"
    assert main["outputs"]["ENTRA_CLIENT_ID"]["value"] == "entraClientId"
    mapped = (bicep.INFRA / "main.parameters.json").read_text(encoding="utf-8")
    # azd writes outputs into the environment; an ENTRA_CLIENT_ID input would feed the first provision's
    # client ID back and silently stop managing the registration.
    inputs = set(re.findall(r"\$\{([A-Z_]+)", mapped))
    assert "ENTRA_CLIENT_ID" not in inputs
    assert "ENTRA_EXISTING_CLIENT_ID" in inputs


def test_an_administrator_can_create_it_before_the_first_azd_up() -> None:
    """Path B (docs/deploy.md): the registration is created without URLs, then updated with azd's outputs."""
    parsed = bicep.parse(bicep.APP_REGISTRATION)
    assert parsed["parameters"]["appBaseUrl"]["default"] == ""
    assert parsed["parameters"]["managedIdentityPrincipalId"]["default"] == ""
    assert "empty" in json.dumps(parsed["variables"]["baseUrls"]["value"])


def test_consent_is_opt_in() -> None:
    parameters = bicep.parse(bicep.APP_REGISTRATION)["parameters"]
    assert parameters["grantConsent"]["default"] is False
    found = _resources()
    assert {r["type"] for r in found.values()} >= {
        "Microsoft.Graph/appRoleAssignedTo",
        "Microsoft.Graph/oauth2PermissionGrants",
    }
