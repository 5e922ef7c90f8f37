"""Who is calling and what they may do: the one :class:`Principal` type, the app roles catalogue
(:mod:`.roles`), endpoints' declared :class:`Access`, bearer-token validation, the tenant directory; and
the app's own identity: its credential, MSAL app, tokens, signing keys and the session key ring."""

from shared.identity.access import Access, refusal, require
from shared.identity.bearer import CallerAuthenticator, TokenValidator, bearer_token, has_authorization
from shared.identity.principal import (
    APPLICATIONS,
    BEARER_KINDS,
    KIND_NAMES,
    PEOPLE,
    USERS,
    CallerKind,
    Principal,
    describe_kinds,
)
from shared.identity.roles import AppRole
from shared.identity.tenancy import Tenant, TenantDirectory
from shared.identity.user_tokens import ACCESS_AS_USER

__all__ = [
    "ACCESS_AS_USER",
    "APPLICATIONS",
    "BEARER_KINDS",
    "KIND_NAMES",
    "PEOPLE",
    "USERS",
    "Access",
    "AppRole",
    "CallerAuthenticator",
    "CallerKind",
    "Principal",
    "Tenant",
    "TenantDirectory",
    "TokenValidator",
    "bearer_token",
    "describe_kinds",
    "has_authorization",
    "refusal",
    "require",
]
