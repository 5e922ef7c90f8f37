"""The SharePoint Online REST API of the local tenant (``SHAREPOINT_SITE_URL`` = ``{origin}/sites/contoso``).

Two resources, under the site and under the root site: ``_api/web/currentuser`` (``SP.User``) and
``_api/SP.UserProfiles.PeopleManager/GetMyProperties`` (``SP.UserProfiles.PersonProperties``), in every format
SharePoint negotiates (see :mod:`emulator.sharepoint.odata`; the entities are built in
:mod:`emulator.sharepoint.people`). Paths are case-insensitive, as in SharePoint.

Authentication as SharePoint Online does it:

* no ``Authorization`` header: 403 ``System.UnauthorizedAccessException`` (an anonymous request);
* a bearer token that is missing, malformed, expired, badly signed, or for another audience (a Graph token):
  401 ``{"error_description": "Invalid issuer or signature."}`` with the ``WWW-Authenticate: Bearer
  realm=...`` challenge and an ``x-ms-diagnostics`` header;
* an app-only token not minted with a certificate (``appidacr`` != "2"): 401 "Unsupported app only token.";
* app-only with a certificate (or a managed identity): the app principal ``SHAREPOINT\\app``; it needs a
  SharePoint application permission (Sites.*), else 403 "Access denied.";
* delegated: the user, who needs a SharePoint delegated scope (AllSites.Read, MyFiles.Read, User.Read.All...).

Inferences are listed in ``emulator/docs/vault-identity-sharepoint.md``.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from emulator.config import SHAREPOINT_APP_ID
from emulator.request_parsing import bearer_token
from emulator.sharepoint.odata import (
    Format,
    NotAcceptableError,
    negotiate,
    not_acceptable,
    odata_error,
    render,
)
from emulator.sharepoint.people import app_user, person, site_user
from emulator.state import EmulatorState
from emulator.token_service import TokenRejected

SITE_PATH = "/sites/contoso"
UNAUTHORIZED = "-2147024891, System.UnauthorizedAccessException"
ACCESS_DENIED = "Access denied. You do not have permission to perform this action or access this resource."
BAD_TOKEN_TEXT = "Invalid issuer or signature."
#: SharePoint delegated scopes (any one lets a user read their own user and profile).
DELEGATED_SCOPES = frozenset(
    {
        "AllSites.Read",
        "AllSites.Write",
        "AllSites.Manage",
        "AllSites.FullControl",
        "MyFiles.Read",
        "MyFiles.Write",
        "Sites.Search.All",
        "Sites.Selected",
        "User.Read.All",
        "User.ReadWrite.All",
        "TermStore.Read.All",
        "TermStore.ReadWrite.All",
    }
)
#: SharePoint application permissions.
APPLICATION_ROLES = frozenset(
    {
        "Sites.Read.All",
        "Sites.ReadWrite.All",
        "Sites.Manage.All",
        "Sites.FullControl.All",
        "Sites.Selected",
        "User.Read.All",
        "User.ReadWrite.All",
        "TermStore.Read.All",
        "TermStore.ReadWrite.All",
    }
)
_DIAGNOSTICS = {
    "wrong_audience": '3000003;reason="Invalid audience Uri \'{aud}\'.";category="invalid_client"',
    "wrong_issuer": '3000005;reason="Invalid issuer or signature.";category="invalid_client"',
    "bad_signature": '3000006;reason="Token contains invalid signature.";category="invalid_client"',
    "unknown_key": '3000006;reason="Token contains invalid signature.";category="invalid_client"',
    "expired": '3000007;reason="Token expired.";category="invalid_client"',
    "not_yet_valid": '3000008;reason="Token is not yet valid.";category="invalid_client"',
    "malformed": '3000001;reason="Invalid JWT token.";category="invalid_client"',
}
_API = re.compile(r"^(?P<site>/sites/contoso)?/_api(?P<rest>/.*)?$", re.IGNORECASE)


class SharePointApp:
    """The ASGI app of the SharePoint origin. Nothing is awaited while the model is read."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.origin = state.config.sharepoint_origin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        await self.handle(request)(scope, receive, send)

    def _headers(self) -> dict[str, str]:
        rid = str(uuid.uuid4())
        return {
            "SPRequestGuid": rid,
            "request-id": rid,
            "X-SharePointHealthScore": "0",
            "MicrosoftSharePointTeamServices": "16.0.0.26421",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, max-age=0",
            "X-MS-InvokeApp": "1; RequireReadOnly",
        }

    # --------------------------------------------------------------------------------- pipeline
    def handle(self, request: Request) -> Response:
        headers = self._headers()
        match = _API.match(request.url.path)
        if match is None:
            return Response("404 NOT FOUND", status_code=404, media_type="text/plain", headers=headers)
        site = match.group("site") or ""
        api_base = f"{self.origin}{SITE_PATH if site else ''}/_api/"
        rest = (match.group("rest") or "/").rstrip("/").lower()
        resource = {
            "/web/currentuser": "currentuser",
            "/sp.userprofiles.peoplemanager/getmyproperties": "getmyproperties",
        }.get(rest)
        request.state.route = f"{SITE_PATH if site else ''}/_api{rest}" if resource else request.url.path
        try:
            fmt: Format | None = negotiate(
                request.headers.get("accept"), request.headers.get("odata-version")
            )
            refusal = None
        except NotAcceptableError as exc:
            fmt, refusal = None, str(exc)
        # Authentication happens in front of the REST handler, so it comes before content negotiation.
        principal = self._authenticate(request, fmt, headers)
        if isinstance(principal, Response):
            return principal
        if fmt is None:
            return not_acceptable(refusal or "", headers)
        if resource is None:
            return self._unknown(rest, fmt, headers)
        if request.method != "GET":
            name = "CurrentUser" if resource == "currentuser" else "GetMyProperties"
            return odata_error(
                405,
                "-1, Microsoft.SharePoint.Client.ClientServiceException",
                f"The HTTP method '{request.method}' cannot be used to access the resource "
                f"'{name}'. The operation type of the resource is specified as 'Default'. "
                "Please use correct HTTP method to invoke the resource.",
                fmt,
                headers,
            )
        user = principal.get("user")
        if resource == "currentuser":
            entity = app_user() if user is None else site_user(self.state, user)
        else:
            entity = person(self.state, user)
        return render(entity, fmt, api_base, headers)

    def _unknown(self, rest: str, fmt: Format, headers: dict[str, str]) -> Response:
        segments = [s for s in rest.split("/") if s]
        if not segments or segments[0] not in ("web", "site", "sp.userprofiles.peoplemanager"):
            first = segments[0] if segments else ""
            return odata_error(
                404,
                "-1, Microsoft.SharePoint.Client.ResourceNotFoundException",
                f"Cannot find resource for the request {first}.",
                fmt,
                headers,
            )
        return odata_error(
            404,
            "-1, Microsoft.SharePoint.Client.InvalidClientQueryException",
            f'The expression "{"/".join(segments)}" is not valid.',
            fmt,
            headers,
        )

    # ----------------------------------------------------------------------------------- tokens
    def _challenge(self) -> str:
        tid = self.state.directory.tenant_id
        authority = self.state.config.authority_host
        issuers = (
            f"00000001-0000-0000-c000-000000000000@*,D3776938-3DBA-481F-A652-4BEDFCAB7CD8@*,"
            f"https://sts.windows.net/*/,{authority}/*/v2.0,"
            f"{SHAREPOINT_APP_ID}@90140122-8516-11e1-8eff-49304924019b"
        )
        return (
            f'Bearer realm="{tid}",client_id="{SHAREPOINT_APP_ID}",trusted_issuers="{issuers}",'
            f'authorization_uri="{authority}/common/oauth2/authorize"'
        )

    def _unauthorized(
        self, description: str, headers: dict[str, str], diagnostics: str | None = None
    ) -> Response:
        extra = {**headers, "WWW-Authenticate": self._challenge()}
        if diagnostics:
            extra["x-ms-diagnostics"] = diagnostics
        return Response(
            json.dumps({"error_description": description}),
            status_code=401,
            media_type="application/json;charset=utf-8",
            headers=extra,
        )

    def _authenticate(
        self, request: Request, fmt: Format | None, headers: dict[str, str]
    ) -> dict[str, Any] | Response:
        """``{"claims", "user"}`` (user None for app-only) or the rejection SharePoint would send."""
        if "authorization" not in request.headers:
            return odata_error(403, UNAUTHORIZED, ACCESS_DENIED, fmt, headers)
        token = bearer_token(request)
        if token is None:
            return self._unauthorized(BAD_TOKEN_TEXT, headers, _DIAGNOSTICS["malformed"])
        try:
            claims = self.state.tokens.validate(token, [self.origin, SHAREPOINT_APP_ID])
        except TokenRejected as exc:
            diagnostics = _DIAGNOSTICS.get(exc.reason, _DIAGNOSTICS["malformed"])
            if exc.reason == "wrong_audience":
                aud = jwt.decode(token, options={"verify_signature": False}).get("aud")
                diagnostics = diagnostics.format(aud=aud)
            return self._unauthorized(BAD_TOKEN_TEXT, headers, diagnostics)
        request.state.client_id = claims.get("appid") or claims.get("azp")
        if "scp" not in claims:  # app-only
            if str(claims.get("appidacr", claims.get("azpacr", ""))) != "2":
                return self._unauthorized("Unsupported app only token.", headers)
            if not APPLICATION_ROLES & set(claims.get("roles") or []):
                return odata_error(403, UNAUTHORIZED, ACCESS_DENIED, fmt, headers)
            return {"claims": claims, "user": None}
        if not DELEGATED_SCOPES & set(str(claims["scp"]).split()):
            return odata_error(403, UNAUTHORIZED, ACCESS_DENIED, fmt, headers)
        user = self.state.directory.user(str(claims.get("oid", "")))
        if user is None or not user.account_enabled:
            return odata_error(403, UNAUTHORIZED, ACCESS_DENIED, fmt, headers)
        return {"claims": claims, "user": user}


def build_app(state: EmulatorState) -> SharePointApp:
    return SharePointApp(state)
