"""The App Service / Azure Functions managed-identity endpoint (``IDENTITY_ENDPOINT``) of the local tenant.

``GET /msi/token?api-version=2019-08-01&resource=<uri>[&client_id=|principal_id=|object_id=|mi_res_id=]``
with the ``X-IDENTITY-HEADER`` header, exactly as azure-identity (through ``msal.ManagedIdentityClient``)
sends it, answered with ``{"access_token", "expires_on": "<epoch>", "resource", "token_type", "client_id",
"not_before"}``.
The legacy ``api-version=2017-09-01`` protocol (header ``secret``, parameter ``clientid``, ``expires_on`` as a
date string) is served too. Errors have the endpoint's ``{"statusCode", "message", "correlationId"}`` shape.

The function app has two identities: the system-assigned one (used when no id parameter is given) and the
user-assigned ``id-graph-functions``. Tokens are minted by :class:`emulator.token_service.TokenService`
for any resource the directory knows (Key Vault, Graph, storage, SharePoint, token exchange, the app's own
API). See
``emulator/docs/vault-identity-sharepoint.md`` for the documented and the inferred behaviour.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from emulator.config import TOKEN_EXCHANGE_AUDIENCE
from emulator.directory.model import Application
from emulator.directory.seed import TOKEN_EXCHANGE_APP_ID
from emulator.errors import identity_error
from emulator.state import EmulatorState

API_VERSION = "2019-08-01"
LEGACY_API_VERSION = "2017-09-01"
MSI_PATH = "/msi/token"
#: User-assigned identity parameters of api-version 2019-08-01; ``object_id`` is an alias of ``principal_id``.
ID_PARAMS = ("client_id", "principal_id", "object_id", "mi_res_id")
RESOURCE_GROUP = "rg-graph-functions"
_MI_RES_ID = re.compile(
    r"^/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft\.managedidentity/"
    r"userassignedidentities/([^/]+)$",
    re.IGNORECASE,
)
UNKNOWN_IDENTITY = "Unable to load the proper Managed Identity."


def subscription_id(tenant_id: str) -> str:
    """The (fake, deterministic) subscription the function app and its identities live in."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"local-tenant:{tenant_id}:subscription"))


def user_identity_resource_id(state: EmulatorState) -> str:
    """The ARM id of the user-assigned identity, accepted as ``mi_res_id``."""
    return (
        f"/subscriptions/{subscription_id(state.directory.tenant_id)}/resourcegroups/{RESOURCE_GROUP}"
        f"/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{state.ids.user_identity.display_name}"
    )


def _site_resource_id(state: EmulatorState) -> str:
    return (
        f"/subscriptions/{subscription_id(state.directory.tenant_id)}/resourcegroups/{RESOURCE_GROUP}"
        f"/providers/Microsoft.Web/sites/{state.ids.system_identity.display_name}"
    )


def _error(status: int, message: str) -> Response:
    response = identity_error(status, message)
    response.headers["X-CORRELATION-ID"] = json.loads(bytes(response.body))["correlationId"]
    return response


def _legacy_date(epoch: int) -> str:
    """``expires_on`` of api-version 2017-09-01: ``MM/dd/yyyy hh:mm:ss tt +00:00`` (UTC)."""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%m/%d/%Y %I:%M:%S %p +00:00")


class IdentityApp:
    """The ASGI app of the identity origin. Every handler is synchronous: nothing is awaited."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        await self.handle(request)(scope, receive, send)

    def handle(self, request: Request) -> Response:
        if request.url.path.rstrip("/").lower() != MSI_PATH:  # Kestrel routes case-insensitively
            return Response(status_code=404)
        request.state.route = MSI_PATH
        if request.method != "GET":
            return Response(status_code=405, headers={"Allow": "GET"})
        query = request.query_params
        api_version = query.get("api-version")
        if not api_version:
            return _error(400, "The api-version query parameter is required. Use api-version=2019-08-01.")
        if api_version not in (API_VERSION, LEGACY_API_VERSION):
            return _error(
                400,
                f"The api-version '{api_version}' is not supported. "
                f"Supported versions: {API_VERSION}, {LEGACY_API_VERSION}.",
            )
        legacy = api_version == LEGACY_API_VERSION
        header_name = "secret" if legacy else "X-IDENTITY-HEADER"
        presented = request.headers.get(header_name)
        if presented is None:
            return _error(400, f"Required header {header_name} not specified.")
        if not secrets.compare_digest(presented.encode(), self.state.identity_header.encode()):
            return _error(401, f"The {header_name} header value is invalid.")
        resource = query.get("resource")
        if not resource:
            return _error(400, "The resource query parameter is required.")
        identity = self._identity(request, legacy)
        if isinstance(identity, Response):
            return identity
        request.state.client_id = identity.app_id
        if not identity.enabled:
            return _error(
                400, f"AADSTS7000112: Application '{identity.app_id}'({identity.display_name}) is disabled."
            )
        return self._token(identity, resource, legacy)

    def _identity(self, request: Request, legacy: bool) -> Application | Response:
        """The identity named by the query (system-assigned when none is), or an error response."""
        ids = self.state.ids
        assigned = (ids.system_identity, ids.user_identity)
        query = request.query_params
        if legacy:  # 2017-09-01 knows only ``clientid``; other parameters are ignored
            given = [("client_id", query["clientid"])] if "clientid" in query else []
        else:
            given = [(name, query[name]) for name in ID_PARAMS if name in query]
            if len(given) > 1:
                return _error(
                    400, "Only one of client_id, principal_id (object_id) or mi_res_id may be specified."
                )
        if not given:
            return ids.system_identity
        kind, value = given[0]
        wanted = value.strip().lower()
        for mi in assigned:
            if kind == "client_id" and mi.app_id.lower() == wanted:
                return mi
            if kind in ("principal_id", "object_id") and mi.sp_id.lower() == wanted:
                return mi
        match = _MI_RES_ID.match(value.strip()) if kind == "mi_res_id" else None
        if match and match.group(1).lower() == ids.user_identity.display_name.lower():
            return ids.user_identity
        return _error(400, UNKNOWN_IDENTITY)

    def _token(self, identity: Application, resource: str, legacy: bool) -> Response:
        state = self.state
        app = state.directory.resource_for(resource)
        if app is None or app.is_managed_identity:
            d = state.directory
            return _error(
                400,
                (
                    f"AADSTS500011: The resource principal named {resource} was not found in the tenant "
                    f"named {d.display_name}. This can happen if the application has not been installed by "
                    f"the administrator of the tenant or consented to by any user in the tenant. You might "
                    f"have sent your authentication request to the wrong tenant. Tenant: {d.tenant_id}"
                ),
            )
        if app.access_token_version == 2:
            # v2 tokens name the resource by its client id, except the token-exchange audience that
            # federated identity credentials list (api://AzureADTokenExchange).
            audience = TOKEN_EXCHANGE_AUDIENCE if app.app_id == TOKEN_EXCHANGE_APP_ID else app.app_id
        else:
            audience = resource  # v1: ``aud`` is the resource exactly as requested
        user_assigned = identity is state.ids.user_identity
        mirid = user_identity_resource_id(state) if user_assigned else _site_resource_id(state)
        minted = state.tokens.access_token(
            resource=app,
            audience=audience,
            client=identity,
            roles=state.directory.roles_of(identity.sp_id, app.app_id),
            appidacr="2",
            lifetime=state.tokens.access_lifetime or state.config.lifetimes.managed_identity,
            extra={"xms_mirid": mirid, "idtyp": "app"},
        )
        claims = minted.claims
        if legacy:
            return JSONResponse(
                {
                    "access_token": minted.token,
                    "expires_on": _legacy_date(claims["exp"]),
                    "resource": resource,
                    "token_type": "Bearer",
                }
            )
        return JSONResponse(
            {
                "access_token": minted.token,
                "expires_on": str(claims["exp"]),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": identity.app_id,
                "not_before": str(claims["nbf"]),
            }
        )


def build_app(state: EmulatorState) -> IdentityApp:
    return IdentityApp(state)
