"""Who is calling: bearer token → :class:`Principal`, and the permission checks of each endpoint.

Delegated tokens carry ``scp`` (space-separated scopes) and act for the signed-in user (``oid``);
app-only tokens carry ``roles``. Graph answers a missing permission with ``Authorization_RequestDenied``
for directory data and ``ErrorAccessDenied`` for mail (Exchange).
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass

from starlette.requests import Request

from emulator.config import GRAPH_APP_ID, GRAPH_CLOUD_AUDIENCE
from emulator.directory.model import User
from emulator.graph.http import GraphError
from emulator.request_parsing import bearer_token
from emulator.state import EmulatorState
from emulator.token_service import TokenRejected

# --- permission sets (any one grants the operation) ----------------------------------------------
USER_READ_ALL = frozenset(
    {
        "User.Read.All",
        "User.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
        "Directory.AccessAsUser.All",
    }
)
USER_READ_BASIC = USER_READ_ALL | {"User.ReadBasic.All"}
USER_READ_SELF = USER_READ_BASIC | {"User.Read", "User.ReadWrite"}
GROUP_READ = frozenset(
    {
        "GroupMember.Read.All",
        "Group.Read.All",
        "Group.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
        "Directory.AccessAsUser.All",
    }
)
MAIL_FULL = frozenset({"Mail.Read", "Mail.ReadWrite"})
MAIL_BASIC_DELEGATED = frozenset({"Mail.ReadBasic"})
MAIL_BASIC_APP = frozenset({"Mail.ReadBasic", "Mail.ReadBasic.All"})
MAIL_SHARED = frozenset({"Mail.Read.Shared", "Mail.ReadWrite.Shared"})
MAIL_SEND = frozenset({"Mail.Send"})
MAIL_SEND_SHARED = frozenset({"Mail.Send.Shared"})

DIRECTORY_DENIED = ("Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
MAIL_DENIED = ("ErrorAccessDenied", "Access is denied. Check credentials and try again.")

_REJECTION_MESSAGES = {
    "malformed": "CompactToken parsing failed with error code: 80049217",
    "bad_signature": "Access token validation failure.",
    "unknown_key": "Access token validation failure.",
    "expired": "Access token has expired or is not yet valid.",
    "not_yet_valid": "Access token has expired or is not yet valid.",
    "wrong_audience": "Access token validation failure. Invalid audience.",
    "wrong_issuer": "Access token validation failure. Invalid issuer.",
}


@dataclass(frozen=True)
class Principal:
    app_id: str
    tenant_id: str
    delegated: bool
    user_id: str | None  # the signed-in user (delegated tokens only)
    permissions: frozenset[str]  # scp (delegated) or roles (app-only)

    def has_any(self, wanted: frozenset[str]) -> bool:
        return not self.permissions.isdisjoint(wanted)


def graph_audiences(state: EmulatorState) -> set[str]:
    return {state.config.graph_origin, GRAPH_CLOUD_AUDIENCE, GRAPH_APP_ID}


def www_authenticate(state: EmulatorState) -> str:
    return (
        f'Bearer realm="", authorization_uri="{state.config.authority_host}/common/oauth2/authorize", '
        f'client_id="{GRAPH_APP_ID}"'
    )


def unauthorized(state: EmulatorState, message: str) -> GraphError:
    return GraphError(
        401, "InvalidAuthenticationToken", message, headers={"WWW-Authenticate": www_authenticate(state)}
    )


def authenticate(state: EmulatorState, request: Request) -> Principal:
    """Validate the bearer token for Graph (signature, lifetime, audience, issuer) or raise a 401."""
    token = bearer_token(request)
    if token is None:
        raise unauthorized(state, "Access token is empty.")
    try:
        claims = state.tokens.validate(token, graph_audiences(state), graph_nonce=True)
    except TokenRejected as exc:
        raise unauthorized(
            state, _REJECTION_MESSAGES.get(exc.reason, "Access token validation failure.")
        ) from exc
    _continuous_access_evaluation(state, claims)
    app_id = str(claims.get("appid") or claims.get("azp") or "")
    scp = claims.get("scp")
    if isinstance(scp, str) and scp.strip():
        return Principal(
            app_id, str(claims.get("tid")), True, str(claims.get("oid") or ""), frozenset(scp.split())
        )
    roles = claims.get("roles") or []
    if not isinstance(roles, list):
        roles = []
    return Principal(app_id, str(claims.get("tid")), False, None, frozenset(str(r) for r in roles))


CAE_MESSAGE = (
    "Continuous access evaluation resulted in challenge with result: InteractionRequired and code: "
    "TokenIssuedBeforeRevocationTimestamp"
)


def _continuous_access_evaluation(state: EmulatorState, claims: dict[str, object]) -> None:
    """A CAE token (``xms_cc`` holds ``cp1``) issued before its user's last critical event gets the claims
    challenge (emulator/docs/entra.md, "Conditional Access, MFA and CAE"); other tokens live to expiry."""
    capabilities = claims.get("xms_cc")
    user = state.directory.user(str(claims.get("oid") or "")) if claims.get("scp") else None
    if user is None or not isinstance(capabilities, list) or "cp1" not in capabilities:
        return
    issued = claims.get("iat")
    if not isinstance(issued, int | float) or issued >= user.cae_event_at:
        return
    # The shape of real Graph challenges, as quoted in public SDK tests (the Graph SDKs' auth handlers).
    value = math.ceil(user.cae_event_at)
    challenge = '{"access_token":{"nbf":{"essential":true, "value":"' + str(value) + '"}}}'
    header = (
        f'Bearer realm="", authorization_uri="{state.config.authority_host}/common/oauth2/authorize", '
        f'client_id="{GRAPH_APP_ID}", error_description="{CAE_MESSAGE}", error="insufficient_claims", '
        f'claims="{base64.b64encode(challenge.encode()).decode()}"'
    )
    raise GraphError(
        401,
        "InvalidAuthenticationToken",
        CAE_MESSAGE,
        headers={"WWW-Authenticate": header},
    )


def require(principal: Principal, wanted: frozenset[str], denied: tuple[str, str] = DIRECTORY_DENIED) -> None:
    if not principal.has_any(wanted):
        raise GraphError(403, *denied)


# --- directory reads ------------------------------------------------------------------------------
def user_read_level(principal: Principal, target: User | None) -> str:
    """'full' or 'basic' read of ``target`` (None = a collection of users); raises 403 otherwise."""
    if principal.has_any(USER_READ_ALL):
        return "full"
    if (
        principal.delegated
        and target is not None
        and target.id == principal.user_id
        and principal.has_any(USER_READ_SELF)
    ):
        return "full"
    if principal.has_any(frozenset({"User.ReadBasic.All"})):
        return "basic"
    raise GraphError(403, *DIRECTORY_DENIED)


def require_me(principal: Principal) -> None:
    if not principal.delegated:
        raise GraphError(400, "BadRequest", "/me request is only valid with delegated authentication flow.")


# --- mail -----------------------------------------------------------------------------------------
def mail_read_level(principal: Principal, mailbox_owner: User) -> str:
    """'full' (body included) or 'basic' (no body/bodyPreview); raises 403 ErrorAccessDenied otherwise."""
    if principal.delegated:
        own = mailbox_owner.id == principal.user_id
        if not own and not principal.has_any(MAIL_SHARED):
            raise GraphError(403, *MAIL_DENIED)
        if principal.has_any(MAIL_FULL | MAIL_SHARED):
            return "full"
        if principal.has_any(MAIL_BASIC_DELEGATED):
            return "basic"
        raise GraphError(403, *MAIL_DENIED)
    if principal.has_any(MAIL_FULL):
        return "full"
    if principal.has_any(MAIL_BASIC_APP):
        return "basic"
    raise GraphError(403, *MAIL_DENIED)


def require_send(principal: Principal, sender: User) -> None:
    if principal.delegated:
        if sender.id != principal.user_id:
            if not principal.has_any(MAIL_SEND_SHARED):
                raise GraphError(403, *MAIL_DENIED)
            return
        if not principal.has_any(MAIL_SEND | MAIL_SEND_SHARED):
            raise GraphError(403, *MAIL_DENIED)
        return
    if not principal.has_any(MAIL_SEND):
        raise GraphError(403, *MAIL_DENIED)
