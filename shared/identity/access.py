"""What an endpoint lets in: the :class:`Access` each endpoint declares in its decorator, and the one
decision that compares a :class:`~shared.identity.principal.Principal` with it.

Identification (who is calling) and permission (may they do this) are separate steps: the edge identifies
the caller once (:mod:`shared.edge.identify`), then asks :func:`refusal`. An endpoint that must record
refused callers (the audited mailbox reads) receives the refusal instead of having it raised.
"""

from __future__ import annotations

from shared.core.errors import Forbidden
from shared.core.records import Record
from shared.identity.principal import BEARER_KINDS, KIND_NAMES, CallerKind, Principal, describe_kinds


class Access(Record):
    """Who may call an endpoint.

    Attributes:
        kinds: the caller kinds accepted; a bearer token wins over a session cookie on the same request.
        app_role: the app role a bearer caller (``application``/``user``) must hold; required when
            ``kinds`` admits a bearer kind, unless ``user_scope`` admits the ``user`` kind instead.
        user_scope: the delegated scope (``scp``) of this API a ``user`` token must carry to call the
            endpoint for its person (``access_as_user``); set, it replaces ``app_role`` for that kind.
        person_role: the app role a person must hold (from the ID token's ``roles``); None: any person.
        optional: a person or nobody (the home and sign-out pages): no credential is not an error.
        audited: refusals of an identified caller reach the handler (``Call.refusal``) to be recorded,
            instead of being raised by the edge.

    Raises:
        ValueError: no kind, or bearer kinds without an app role (a mistake in a declaration, caught when
            the blueprint is imported).
    """

    kinds: frozenset[CallerKind]
    app_role: str | None = None
    person_role: str | None = None
    optional: bool = False
    audited: bool = False
    user_scope: str | None = None

    def __post_init__(self) -> None:
        if not self.kinds:
            raise ValueError("An endpoint must accept at least one caller kind")
        needs_role = self.kinds & {"application"} or ("user" in self.kinds and self.user_scope is None)
        if needs_role and self.app_role is None:
            raise ValueError("An endpoint open to bearer callers must name the app role they need")
        object.__setattr__(self, "kinds", frozenset(self.kinds))

    @property
    def accepts_people(self) -> bool:
        return "person" in self.kinds

    @property
    def accepts_bearer(self) -> bool:
        return bool(self.kinds & BEARER_KINDS)


def refusal(principal: Principal, access: Access) -> Forbidden | None:
    """Why ``principal`` may not call an endpoint declaring ``access`` (None: it may).

    A caller of another kind is ``caller_kind_not_allowed``; a caller without the role its kind needs is
    ``forbidden``. Both are 403.
    """
    if principal.kind not in access.kinds:
        accepted = access.kinds - {"person"} if principal.kind in BEARER_KINDS else access.kinds
        return Forbidden(
            f"This endpoint accepts tokens of {describe_kinds(accepted or access.kinds)}, "
            f"not of {KIND_NAMES[principal.kind]}",
            code="caller_kind_not_allowed",
        )
    if principal.kind == "user" and access.user_scope is not None:
        if access.user_scope in principal.scopes:
            return None
        return Forbidden(
            f"This endpoint needs a token for this API's delegated scope '{access.user_scope}'",
            code="insufficient_scope",
        )
    if principal.is_person:
        if access.person_role is not None and not principal.has_role(access.person_role):
            return Forbidden(
                f"Your account lacks this app's role '{access.person_role}', which this page needs. Ask an "
                "administrator to assign it to you.",
            )
        return None
    if not principal.has_role(access.app_role or ""):
        return Forbidden(f"The caller lacks the app role '{access.app_role}' required by this endpoint")
    return None


def require(principal: Principal, access: Access) -> Principal:
    """``principal`` when :func:`refusal` finds nothing, else raises that refusal (Forbidden, 403)."""
    refused = refusal(principal, access)
    if refused is not None:
        raise refused
    return principal
