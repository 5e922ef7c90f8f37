"""Who is calling, as one value whatever the credential: :class:`Principal`.

A principal comes from a validated bearer token (:mod:`shared.identity.bearer`: services with app-only
tokens, ``application``; callers with a person's delegated token, ``user``) or from this app's session
cookie (:mod:`shared.signin.people`: a person signed in to the pages, ``person``). The same value names the
caller in access decisions (:mod:`shared.identity.access`), in the audit trail and in logs. It is a plain
value: it holds no session, token or service.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Literal

from shared.core.records import Record

CallerKind = Literal["application", "user", "person"]
#: An endpoint for services only (client-credentials tokens).
APPLICATIONS: frozenset[CallerKind] = frozenset({"application"})
#: Callers holding a person's delegated bearer token.
USERS: frozenset[CallerKind] = frozenset({"user"})
#: People signed in to this app's pages (session cookie).
PEOPLE: frozenset[CallerKind] = frozenset({"person"})
#: The kinds that authenticate with a bearer token.
BEARER_KINDS: frozenset[CallerKind] = frozenset({"application", "user"})
KIND_NAMES: Mapping[CallerKind, str] = {
    "application": "applications (app-only)",
    "user": "signed-in users (delegated)",
    "person": "people signed in to this app (session)",
}


class Principal(Record):
    """An authenticated caller of any kind.

    Attributes:
        kind: ``application`` (app-only token), ``user`` (delegated bearer token) or ``person`` (session).
        app_id: the calling client's app id (``azp``/``appid``); for people, this app's own client id.
        object_id: the service principal's or the user's object id (``oid``).
        tenant_id: the caller's tenant (``tid``).
        roles: app roles of this API the caller holds.
        scopes: delegated scopes of a ``user`` token (empty otherwise).
        user_principal_name: people and delegated callers: the sign-in name (``preferred_username``).
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

    def has_role(self, role: str) -> bool:
        return role in self.roles

    @property
    def is_person(self) -> bool:
        return self.kind == "person"


def describe_kinds(kinds: Collection[CallerKind]) -> str:
    """``kinds`` in words, for refusal messages (sorted, joined with "or")."""
    return " or ".join(sorted(KIND_NAMES[kind] for kind in kinds))
