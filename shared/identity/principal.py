"""Who is calling, whatever the credential: a bearer token (services, delegated callers) or this app's
session cookie (a person signed in to the pages). Every endpoint calls :func:`identify` with the caller
kinds it accepts.

Rules:

* **A bearer token wins.** When a request carries ``Authorization``, the cookie is not looked at: the token
  alone decides (a valid token of a kind the endpoint refuses is a 403, never a fall-back to the cookie).
  Services therefore never act with a person's session by accident, and a browser's cookie cannot upgrade a
  bad token.
* **Roles.** ``required_role`` is the app role a bearer caller (``application`` / ``user`` kinds) must hold;
  ``person_role`` the app role a person must hold (from the ID token's ``roles`` at sign-in), None meaning
  any signed-in person of the tenant. An endpoint open to bearer kinds must name a ``required_role``.
* **People.** The session cookie names a session in Table Storage (:mod:`shared.signin.sessions`); no cookie,
  an
  unknown, tampered or expired one → :class:`SignInRequired` (pages redirect to sign-in, the JSON API answers
  401). A person's :class:`Principal` carries a delegated token source (:meth:`Principal.delegated`) for
  Graph and SharePoint calls, and a per-session CSRF token for the pages' forms.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

import azure.functions as func

from shared.core.errors import Forbidden, SignInRequired
from shared.identity.bearer import KIND_NAMES, CallerKind

if TYPE_CHECKING:
    from shared.signin.delegated import DelegatedTokens
    from shared.signin.sessions import Session

#: The purpose under which the session key ring signs CSRF tokens.
CSRF_PURPOSE = "csrf"
_BEARER_KINDS: frozenset[CallerKind] = frozenset({"application", "user"})


@dataclasses.dataclass(frozen=True)
class Principal:
    """An authenticated caller of any kind.

    Attributes:
        kind: ``application`` (app-only token), ``user`` (delegated bearer token) or ``person`` (session).
        app_id: the calling client's app id; for people, this app's own client id.
        object_id: the service principal's or the user's object id (``oid``).
        tenant_id: the caller's tenant.
        roles: app roles of this API the caller holds.
        scopes: delegated scopes of a ``user`` token (empty otherwise).
        user_principal_name: people only: the sign-in name (``preferred_username``).
        display_name: people only: the name to greet them with.
    """

    kind: CallerKind
    app_id: str
    object_id: str | None
    tenant_id: str
    roles: frozenset[str]
    scopes: frozenset[str] = frozenset()
    user_principal_name: str | None = None
    display_name: str | None = None
    session: Session | None = dataclasses.field(default=None, repr=False, compare=False)

    def has_role(self, role: str) -> bool:
        return role in self.roles

    @property
    def is_person(self) -> bool:
        return self.kind == "person"

    def delegated(self) -> DelegatedTokens:
        """The person's delegated token source (a :class:`~shared.graph.client.TokenSource`): pass it to
        ``runtime.current().delegated_graph(principal)`` or use it for SharePoint.

        Raises:
            Forbidden: the caller is not a person with a session (``caller_kind_not_allowed``).
        """
        if self.session is None:
            raise Forbidden(
                "Only people signed in to this app act with delegated tokens", code="caller_kind_not_allowed"
            )
        from shared.app import services as runtime
        from shared.signin.delegated import DelegatedTokens

        services = runtime.current()
        return DelegatedTokens(sign_in=services.sign_in(), sessions=services.sessions(), session=self.session)

    @property
    def csrf_token(self) -> str:
        """The CSRF token of this person's forms (empty for bearer callers): an HMAC of the session id
        under a key derived from the session key ring (any cached key version verifies it)."""
        if self.session is None:
            return ""
        from shared.app import services as runtime

        return runtime.current().session_keys().sign(CSRF_PURPOSE, self.session.id.encode())

    def verify_csrf(self, token: str) -> bool:
        if self.session is None or not token or len(token) > 512:
            return False
        from shared.app import services as runtime

        return runtime.current().session_keys().verify(CSRF_PURPOSE, self.session.id.encode(), token)


def identify(
    request: func.HttpRequest,
    *,
    kinds: Collection[CallerKind],
    required_role: str | None = None,
    person_role: str | None = None,
) -> Principal:
    """The caller of ``request``, of one of ``kinds``, holding the role its kind needs (module docstring).

    Raises:
        Unauthenticated: a bearer token that fails validation (401 ``unauthenticated``).
        SignInRequired: no credential (401 ``unauthenticated``), or a missing, unknown or expired session
            (401 ``session_expired``) on an endpoint that accepts people.
        Forbidden: a caller of another kind (403 ``caller_kind_not_allowed``), or without the role (403).
        CredentialUnavailable, StorageUnavailable: the tenant's keys, the vault or Table Storage are
            down (503).
    """
    from shared.app import services as runtime

    accepted = frozenset(kinds)
    if accepted & _BEARER_KINDS and required_role is None:
        raise ValueError("An endpoint open to bearer callers must name the app role they need")
    headers: Mapping[str, str] = request.headers
    services = runtime.current()
    if _has_authorization(headers):
        caller = services.authenticator().authenticate(
            headers, required_role=required_role or "", kinds=accepted - {"person"} or frozenset({"person"})
        )
        return Principal(
            kind=caller.kind,
            app_id=caller.app_id,
            object_id=caller.object_id,
            tenant_id=caller.tenant_id,
            roles=caller.roles,
            scopes=caller.scopes,
        )
    if "person" not in accepted:
        # The authenticator answers the missing token exactly as the endpoints always have.
        services.authenticator().authenticate(headers, required_role=required_role or "", kinds=accepted)
        raise AssertionError("unreachable: no bearer token was authenticated")  # pragma: no cover
    from shared.signin.web import session_id_of

    session_id = session_id_of(request)
    if session_id is None:
        if accepted & _BEARER_KINDS:
            raise SignInRequired("Sign in to this app, or send a bearer token", code="unauthenticated")
        raise SignInRequired("Sign in to this app to continue", code="sign_in_required")
    session = services.sessions().load(session_id)
    if session is None:
        raise SignInRequired("Your session has ended. Sign in again.", code="session_expired")
    saved = services.sessions().save(session)  # refreshes last-seen, coarsened: usually no write at all
    if saved is None:  # signed out (or expired) by another request meanwhile
        raise SignInRequired("Your session has ended. Sign in again.", code="session_expired")
    session = saved
    claims = session.claims
    principal = Principal(
        kind="person",
        app_id=services.settings().client_id,
        object_id=claims.oid,
        tenant_id=claims.tid,
        roles=frozenset(claims.roles),
        user_principal_name=claims.preferred_username,
        display_name=claims.name,
        session=session,
    )
    if person_role is not None and not principal.has_role(person_role):
        raise Forbidden(
            f"Your account lacks this app's role '{person_role}', which this page needs. Ask an "
            "administrator to assign it to you.",
        )
    return principal


def describe_kinds(kinds: Collection[CallerKind]) -> str:
    return " or ".join(sorted(KIND_NAMES[kind] for kind in kinds))


def _has_authorization(headers: Mapping[str, str]) -> bool:
    value = headers.get("authorization")
    return value is not None and bool(value.strip())
