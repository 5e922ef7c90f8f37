"""The Key Vault secrets data plane of the local tenant (``KEY_VAULT_URL``).

Served to the real ``azure-keyvault-secrets`` ``SecretClient``: the challenge flow (a request without a bearer
token, whatever its path, gets 401 with ``WWW-Authenticate: Bearer authorization="{authority}/{tenant}",
resource="https://vault.azure.net"``), token validation (audience ``https://vault.azure.net``, the tenant's v1
issuer, signature, lifetime), the access-policy check per caller ``oid`` (get/list/set), then the secret
operations: get (latest or a version), set (a new version), update (attributes/contentType/tags), list secrets
and list versions with ``maxresults`` and ``nextLink`` paging. Errors have the service's
``{"error": {"code", "message", "innererror"?}}`` shape and headers. Details, and what is inferred, are in
``emulator/docs/vault-identity-sharepoint.md``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from emulator.clock import CLOCK
from emulator.config import VAULT_AUDIENCE
from emulator.directory.seed import VAULT_APP_ID
from emulator.errors import vault_error
from emulator.request_parsing import bearer_token
from emulator.state import EmulatorState
from emulator.token_service import TokenRejected
from emulator.vault.store import SecretVersion
from emulator.vault.wire import (
    NAME_RE,
    PEM,
    PFX,
    BadParameterError,
    convert_certificate_value,
    decode_skiptoken,
    encode_skiptoken,
    parse_maxresults,
    parse_secret_body,
    secret_bundle,
    secret_item,
)

API_VERSIONS = ("2016-10-01", "7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01", "2026-04-01")
LATEST_API_VERSION = "2026-04-01"
#: api-versions that know ``outContentType`` (added in 2025-07-01); older versions ignore it.
OUT_CONTENT_TYPE_VERSIONS = ("2025-07-01", "2026-04-01")
PAGE_SIZE = 25
LOCATION = "local"
ACCESS_HELP = "https://go.microsoft.com/fwlink/?linkid=2125287"
NOT_FOUND_HELP = "https://go.microsoft.com/fwlink/?linkid=2125182"

_BY_NAME = r"/secrets/(?P<name>[^/]+)"
#: (pattern, route template for the request log, allowed methods -> operation)
ROUTES: list[tuple[re.Pattern[str], str, dict[str, str]]] = [
    (re.compile(r"^/secrets/?$"), "/secrets", {"GET": "list"}),
    (re.compile(rf"^{_BY_NAME}/versions/?$"), "/secrets/{name}/versions", {"GET": "versions"}),
    (re.compile(rf"^{_BY_NAME}/?$"), "/secrets/{name}", {"GET": "get", "PUT": "set", "PATCH": "update"}),
    (
        re.compile(rf"^{_BY_NAME}/(?P<version>[^/]+)/?$"),
        "/secrets/{name}/{version}",
        {"GET": "get", "PATCH": "update"},
    ),
]


Operation = Callable[[Request, dict[str, Any], dict[str, str], bytes, str], Response]


def _unverified(token: str) -> dict[str, Any]:
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return claims if isinstance(claims, dict) else {}


class VaultApp:
    """The ASGI app of the vault origin. Handlers read the body first, then work without awaiting."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.origin = state.config.vault_origin
        self.operations: dict[str, Operation] = {
            "get": self.get_secret,
            "set": self.set_secret,
            "update": self.update_secret,
            "list": self.list_secrets,
            "versions": self.list_versions,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = await request.body()
        response = self.handle(request, body)
        self._decorate(request, response)
        await response(scope, receive, send)

    # --------------------------------------------------------------------------------- pipeline
    def handle(self, request: Request, body: bytes) -> Response:
        path = request.url.path
        match = next(
            ((m, template, methods) for pattern, template, methods in ROUTES if (m := pattern.match(path))),
            None,
        )
        request.state.route = match[1] if match else path
        # Authentication first: the service answers 401 + challenge before routing or validation.
        token = bearer_token(request)
        if token is None:
            return self._challenge("AKV10000: Request is missing a Bearer or PoP token.")
        try:
            claims = self.state.tokens.validate(
                token, [VAULT_AUDIENCE, VAULT_APP_ID], issuers=[self.state.tokens.issuer_v1]
            )
        except TokenRejected as exc:
            return self._challenge(self._rejection(exc, token))
        request.state.client_id = claims.get("appid") or claims.get("azp")
        if match is None:
            return vault_error(
                404, "NotFound", f"No HTTP resource was found that matches the request URI '{request.url}'."
            )
        found, _template, methods = match
        operation = methods.get(request.method)
        if operation is None:
            return vault_error(
                405,
                "MethodNotAllowed",
                f"The requested resource does not support http method '{request.method}'.",
                headers={"Allow": ", ".join(methods)},
            )
        api_version = request.query_params.get("api-version", "")
        if api_version not in API_VERSIONS:
            return vault_error(
                400,
                "BadParameter",
                f"The specified version ({api_version}) is not recognized. Consider using the "
                f"latest supported version ({LATEST_API_VERSION}).",
            )
        params = {k: v for k, v in found.groupdict().items() if v is not None}
        if "name" in params and not NAME_RE.match(params["name"]):
            return vault_error(
                400, "BadParameter", f"The request URI contains an invalid name: {params['name']}"
            )
        try:
            return self.operations[operation](request, claims, params, body, api_version)
        except BadParameterError as exc:
            return vault_error(400, "BadParameter", str(exc))

    def _challenge(self, message: str) -> Response:
        authority = f"{self.state.config.authority_host}/{self.state.directory.tenant_id}"
        return vault_error(
            401,
            "Unauthorized",
            message,
            headers={"WWW-Authenticate": f'Bearer authorization="{authority}", resource="{VAULT_AUDIENCE}"'},
        )

    def _rejection(self, exc: TokenRejected, token: str) -> str:
        unverified = _unverified(token)
        if exc.reason == "wrong_audience":
            return (
                f"AKV10022: Invalid audience. Expected {VAULT_AUDIENCE} or {VAULT_APP_ID}, "
                f"found: {unverified.get('aud')}."
            )
        if exc.reason == "wrong_issuer":
            return (
                f"AKV10032: Invalid issuer. Expected one of {self.state.tokens.issuer_v1}, "
                f"found {unverified.get('iss')}."
            )
        if exc.reason == "expired":
            return "[TokenExpired] Error validating token: 'S2S12086'."
        if exc.reason == "not_yet_valid":
            return "[TokenNotYetValid] Error validating token: 'S2S12085'."
        if exc.reason == "unknown_key":
            return "AKV10046: Unable to resolve the key used for signature validation."
        if exc.reason == "bad_signature":
            return "[InvalidSignature] Error validating token: 'S2S12005'."
        return "AKV10000: Request is missing a Bearer or PoP token."  # not a JWT at all

    def _decorate(self, request: Request, response: Response) -> None:
        """The headers every Key Vault response carries (``vault_error`` already sets three of them)."""
        headers = response.headers
        client = request.client.host if request.client else "127.0.0.1"
        defaults = {
            "Cache-Control": "no-cache",
            "Pragma": "no-cache",
            "Expires": "-1",
            "x-ms-keyvault-region": LOCATION,
            "x-ms-request-id": str(uuid.uuid4()),
            "x-ms-keyvault-service-version": "1.9.0.0",
            "x-ms-keyvault-network-info": f"conn_type=Ipv4;addr={client};act_addr_fam=InterNetwork;",
            "Strict-Transport-Security": "max-age=31536000;includeSubDomains",
            "X-Content-Type-Options": "nosniff",
        }
        for key, value in defaults.items():
            if key.lower() not in headers:
                headers[key] = value
        if "x-ms-client-request-id" in request.headers:
            headers["x-ms-client-request-id"] = request.headers["x-ms-client-request-id"]
        if headers.get("content-type", "").startswith("application/json"):
            headers["content-type"] = "application/json; charset=utf-8"

    # ---------------------------------------------------------------------------------- access
    def _denied(self, claims: dict[str, Any], permission: str) -> Response | None:
        """None when the caller's access policy grants ``permission``, else the real 403."""
        oid = str(claims.get("oid", ""))
        vault = self.state.vault
        if vault.allowed(oid, permission):
            return None
        groups = [g for g in self.state.directory.groups if g.id in vault.access and oid in g.members]
        if any(vault.allowed(g.id, permission) for g in groups):
            return None
        appid = claims.get("appid") or claims.get("azp") or ""
        message = (
            f"The user, group or application 'appid={appid};oid={oid};iss={claims.get('iss')}' "
            f"does not have secrets {permission} permission on key vault "
            f"'{vault.name};location={LOCATION}'. For help resolving this issue, please see "
            f"{ACCESS_HELP}"
        )
        return vault_error(403, "Forbidden", message, inner_code="AccessDenied")

    def _lookup(self, name: str, version: str | None) -> SecretVersion | Response:
        vault = self.state.vault
        item = vault.version(name, version) if version else vault.latest(name)
        if item is None:
            shown = f"{name}/{version}" if version else name
            return vault_error(
                404,
                "SecretNotFound",
                (
                    f"A secret with (name/id) {shown} was not found in this key vault. If you recently "
                    f"deleted this secret you may be able to recover it using the correct recovery command. "
                    f"For help resolving this issue, please see {NOT_FOUND_HELP}"
                ),
            )
        return item

    @staticmethod
    def _certificate_managed(name: str) -> Response:
        return vault_error(
            409,
            "Conflict",
            f"Secret {name} is managed by a certificate and cannot be "
            "changed through the secrets API. Import a new certificate "
            "version instead.",
        )

    # ------------------------------------------------------------------------------ operations
    def get_secret(
        self, request: Request, claims: dict[str, Any], params: dict[str, str], body: bytes, api_version: str
    ) -> Response:
        """Requires secrets/get. Disabled versions answer 403 SecretDisabled; nbf/exp are not enforced on
        get (documented service behaviour: get works for not-yet-valid and expired secrets)."""
        if (denied := self._denied(claims, "get")) is not None:
            return denied
        item = self._lookup(params["name"], params.get("version"))
        if isinstance(item, Response):
            return item
        if not item.enabled:
            return vault_error(
                403,
                "Forbidden",
                "Operation get is not allowed on a disabled secret.",
                inner_code="SecretDisabled",
            )
        value, content_type = item.value, item.content_type
        wanted = request.query_params.get("outContentType")
        if wanted is not None and api_version in OUT_CONTENT_TYPE_VERSIONS:
            if wanted not in (PFX, PEM):
                raise BadParameterError(
                    f"The value '{wanted}' of outContentType is not supported. "
                    f"Supported values: {PFX}, {PEM}."
                )
            if not item.managed:
                raise BadParameterError(
                    "outContentType is only supported for secrets that back a certificate."
                )
            value, content_type = convert_certificate_value(value, content_type, wanted), wanted
        bundle = secret_bundle(self.origin, self.state.vault.display_name(params["name"]), item, value=value)
        if content_type is not None:
            bundle["contentType"] = content_type
        return JSONResponse(bundle)

    def set_secret(
        self, request: Request, claims: dict[str, Any], params: dict[str, str], body: bytes, api_version: str
    ) -> Response:
        """Requires secrets/set. Always creates a new version; earlier versions stay readable."""
        if (denied := self._denied(claims, "set")) is not None:
            return denied
        fields = parse_secret_body(body, require_value=True)
        vault, name = self.state.vault, params["name"]
        current = vault.latest(name)
        if current is not None and current.managed:
            return self._certificate_managed(vault.display_name(name))
        item = vault.set(
            name,
            fields.value or "",
            fields.content_type,
            tags=fields.tags,
            enabled=True if fields.enabled is None else fields.enabled,
            not_before=fields.not_before,
            expires=fields.expires,
        )
        return JSONResponse(secret_bundle(self.origin, vault.display_name(name), item, value=item.value))

    def update_secret(
        self, request: Request, claims: dict[str, Any], params: dict[str, str], body: bytes, api_version: str
    ) -> Response:
        """Requires secrets/set. Updates one version (the latest without a version); returns no value."""
        if (denied := self._denied(claims, "set")) is not None:
            return denied
        fields = parse_secret_body(body, require_value=False)
        item = self._lookup(params["name"], params.get("version"))
        if isinstance(item, Response):
            return item
        name = self.state.vault.display_name(params["name"])
        if item.managed:
            return self._certificate_managed(name)
        if "contentType" in fields.present:
            item.content_type = fields.content_type
        if "tags" in fields.present:
            item.tags = dict(fields.tags or {})
        if "enabled" in fields.present and fields.enabled is not None:
            item.enabled = fields.enabled
        if "nbf" in fields.present:
            item.not_before = fields.not_before
        if "exp" in fields.present:
            item.expires = fields.expires
        item.updated = CLOCK.now().replace(microsecond=0)
        return JSONResponse(secret_bundle(self.origin, name, item, value=None))

    def _page(
        self,
        request: Request,
        keys: list[str],
        build: Callable[[str], dict[str, Any]],
        path: str,
        api_version: str,
    ) -> Response:
        query = request.query_params
        maxresults = parse_maxresults(query.get("maxresults"))
        size = maxresults or PAGE_SIZE
        start = 0
        if "$skiptoken" in query:
            marker = decode_skiptoken(query["$skiptoken"])
            start = next((i for i, key in enumerate(keys) if key >= marker), len(keys))
        page = keys[start : start + size]
        next_link = None
        if start + size < len(keys):
            next_link = (
                f"{self.origin}{path}?api-version={api_version}"
                f"&$skiptoken={encode_skiptoken(keys[start + size])}"
            )
            if maxresults is not None:
                next_link += f"&maxresults={maxresults}"
        return JSONResponse({"value": [build(key) for key in page], "nextLink": next_link})

    def list_secrets(
        self, request: Request, claims: dict[str, Any], params: dict[str, str], body: bytes, api_version: str
    ) -> Response:
        """Requires secrets/list. One SecretItem per secret (its latest version), by name."""
        if (denied := self._denied(claims, "list")) is not None:
            return denied
        vault = self.state.vault
        keys = sorted(k for k, versions in vault.secrets.items() if versions)

        def build(key: str) -> dict[str, Any]:
            latest = vault.secrets[key][-1]
            return secret_item(self.origin, vault.display_name(key), latest, with_version=False)

        return self._page(request, keys, build, "/secrets", api_version)

    def list_versions(
        self, request: Request, claims: dict[str, Any], params: dict[str, str], body: bytes, api_version: str
    ) -> Response:
        """Requires secrets/list. Every version (oldest first); an unknown name gives an empty list."""
        if (denied := self._denied(claims, "list")) is not None:
            return denied
        vault = self.state.vault
        versions = vault.secrets.get(params["name"].lower(), [])
        by_marker = {f"{i:08d}": v for i, v in enumerate(versions)}
        name = vault.display_name(params["name"])

        def build(key: str) -> dict[str, Any]:
            return secret_item(self.origin, name, by_marker[key], with_version=True)

        return self._page(request, sorted(by_marker), build, f"/secrets/{name}/versions", api_version)


def build_app(state: EmulatorState) -> VaultApp:
    return VaultApp(state)
