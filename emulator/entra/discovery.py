"""Metadata: OpenID configuration (v2 and v1), JWKS, instance discovery, user realm.

The v2 document has the field set (and order) of a recorded real response, with every endpoint on this
origin. For a tenant id or the verified domain, endpoints and issuer name the tenant id; for ``common`` and
``organizations`` the endpoints keep the segment and the issuer holds the literal ``{tenantid}`` placeholder.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulator.entra.context import EntraError, Tenant, fail, host, require_tenant
from emulator.state import EmulatorState

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
AUTH_METHODS = ["client_secret_post", "private_key_jwt", "client_secret_basic"]
_CLOUD_CLAIMS = [
    "sub",
    "iss",
    "cloud_instance_name",
    "cloud_instance_host_name",
    "cloud_graph_host_name",
    "msgraph_host",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "acr",
]
CLAIMS_V2 = [
    *_CLOUD_CLAIMS,
    "nonce",
    "preferred_username",
    "name",
    "tid",
    "ver",
    "at_hash",
    "c_hash",
    "email",
]
CLAIMS_V1 = [*_CLOUD_CLAIMS, "amr", "nonce", "email", "given_name", "family_name", "nickname"]


def metadata_headers() -> dict[str, str]:
    return {
        "Cache-Control": "max-age=86400, private",
        "Access-Control-Allow-Origin": "*",
        "x-ms-request-id": str(uuid.uuid4()),
        "x-ms-ests-server": "local-tenant",
    }


def _json(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, headers=metadata_headers())


def _tenant(state: EmulatorState, request: Request) -> Tenant:
    try:
        return require_tenant(state, request, error="invalid_tenant")
    except EntraError as rejected:
        rejected.response.headers["Access-Control-Allow-Origin"] = "*"
        raise


def openid_v2(state: EmulatorState, tenant: Tenant) -> dict[str, Any]:
    base = f"{host(state)}/{tenant.path}"
    issuer_tid = tenant.tenant_id if tenant.kind == "tenant" else "{tenantid}"
    graph = urlsplit(state.config.graph_origin)
    return {
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "jwks_uri": f"{base}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{host(state)}/{issuer_tid}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{state.config.graph_origin}/oidc/userinfo",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
        "claims_supported": CLAIMS_V2,
        "kerberos_endpoint": f"{base}/kerberos",
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": graph.netloc,
        "rbac_url": "https://pas.windows.net",
    }


def openid_v1(state: EmulatorState, tenant: Tenant) -> dict[str, Any]:
    base = f"{host(state)}/{tenant.path}"
    issuer_tid = tenant.tenant_id if tenant.kind == "tenant" else "{tenantid}"
    return {
        "token_endpoint": f"{base}/oauth2/token",
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "jwks_uri": f"{base}/discovery/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
        "scopes_supported": ["openid"],
        "issuer": f"https://sts.windows.net/{issuer_tid}/",
        "microsoft_multi_refresh_token": True,
        "authorization_endpoint": f"{base}/oauth2/authorize",
        "device_authorization_endpoint": f"{base}/oauth2/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/oauth2/logout",
        "claims_supported": CLAIMS_V1,
        "check_session_iframe": f"{base}/oauth2/checksession",
        "userinfo_endpoint": f"{base}/openid/userinfo",
        "kerberos_endpoint": f"{base}/kerberos",
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": urlsplit(state.config.graph_origin).netloc,
        "rbac_url": "https://pas.windows.net",
    }


def routes(state: EmulatorState) -> list[Route]:
    async def config_v2(request: Request) -> Response:
        try:
            return _json(openid_v2(state, _tenant(state, request)))
        except EntraError as rejected:
            return rejected.response

    async def config_v1(request: Request) -> Response:
        try:
            return _json(openid_v1(state, _tenant(state, request)))
        except EntraError as rejected:
            return rejected.response

    def jwks(request: Request, issuer: Callable[[str], str]) -> Response:
        """The published keys naming the issuer of their version (``{tenantid}`` for multi-tenant names)."""
        try:
            tenant = _tenant(state, request) if "tenant" in request.path_params else None
        except EntraError as rejected:
            return rejected.response
        tid = tenant.tenant_id if tenant is not None and tenant.kind == "tenant" else "{tenantid}"
        return _json(state.keys.jwks(issuer(tid)))

    async def keys_v2(request: Request) -> Response:
        return jwks(request, lambda tid: f"{host(state)}/{tid}/v2.0")

    async def keys_v1(request: Request) -> Response:
        return jwks(request, lambda tid: f"https://sts.windows.net/{tid}/")

    async def instance(request: Request) -> Response:
        endpoint = request.query_params.get("authorization_endpoint")
        version = request.query_params.get("api-version", "1.1")
        if not endpoint:
            return fail(
                50050,
                "invalid_request",
                "The request is malformed: the 'authorization_endpoint' parameter is required.",
            ).response
        parts = urlsplit(endpoint)
        segments = [s for s in parts.path.split("/") if s]
        if parts.scheme != "https" or (parts.hostname or "").lower() not in LOCAL_HOSTS or not segments:
            return fail(50049, "invalid_instance", "Unknown or invalid instance.").response
        here = urlsplit(host(state)).netloc
        aliases = [here, f"localhost:{state.config.port}"]
        discovery = f"{host(state)}/{segments[0]}/v2.0/.well-known/openid-configuration"
        return _json(
            {
                "tenant_discovery_endpoint": discovery,
                "api-version": version,
                "metadata": [{"preferred_network": here, "preferred_cache": here, "aliases": aliases}],
            }
        )

    async def userrealm(request: Request) -> Response:
        username = request.path_params["username"]
        domain = username.rpartition("@")[2].lower()
        body: dict[str, Any] = {
            "ver": "1.0",
            "account_type": "Unknown",
            "cloud_instance_name": "microsoftonline.com",
        }
        if domain == state.directory.domain.lower():
            body.update(
                {
                    "account_type": "Managed",
                    "domain_name": state.directory.domain,
                    "cloud_audience_urn": "urn:federation:MicrosoftOnline",
                }
            )
        return JSONResponse(body, headers={"Cache-Control": "no-store", "x-ms-request-id": str(uuid.uuid4())})

    async def devicecode(request: Request) -> Response:
        return fail(
            70003, "unsupported_grant_type", "The device code flow is not emulated by the local tenant."
        ).response

    return [
        Route("/common/discovery/instance", instance, methods=["GET"]),
        Route("/common/userrealm/{username}", userrealm, methods=["GET", "POST"]),
        Route("/discovery/v2.0/keys", keys_v2, methods=["GET"]),
        Route("/discovery/keys", keys_v1, methods=["GET"]),
        Route("/{tenant}/v2.0/.well-known/openid-configuration", config_v2, methods=["GET"]),
        Route("/{tenant}/.well-known/openid-configuration", config_v1, methods=["GET"]),
        Route("/{tenant}/discovery/v2.0/keys", keys_v2, methods=["GET"]),
        Route("/{tenant}/discovery/keys", keys_v1, methods=["GET"]),
        Route("/{tenant}/oauth2/v2.0/devicecode", devicecode, methods=["POST"]),
    ]
