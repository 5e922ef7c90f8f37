"""``/users``, ``/users/$count``, ``/users/{id | userPrincipalName}`` and ``/me``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.responses import Response

from emulator.directory.model import User, iso
from emulator.graph.auth import DIRECTORY_DENIED, USER_READ_SELF, user_read_level
from emulator.graph.collection import count_directory, list_directory
from emulator.graph.entity import EntitySchema
from emulator.graph.filters import Field
from emulator.graph.http import Ctx, GraphError, json_response
from emulator.graph.routing import target_user

STRING_OPS = frozenset({"eq", "ne", "ge", "le", "in", "startswith", "endswith", "null"})


def _nickname(u: User) -> str:
    return u.user_principal_name.split("@", 1)[0]


def _sign_in_activity(u: User) -> dict[str, Any] | None:
    """Deterministic sign-in times (a day or two after creation, from the id) [EMULATOR]; served only to a
    licensed tenant and an app holding AuditLog.Read.All (see :func:`check_sign_in_activity`)."""
    if u.user_type == "Guest" and not u.account_enabled:
        return None
    offset = dt.timedelta(hours=int(u.id[:4], 16) % 72 + 1)
    return {
        "lastSignInDateTime": iso(u.created + offset),
        "lastSignInRequestId": None,
        "lastNonInteractiveSignInDateTime": iso(u.created + offset * 2),
        "lastNonInteractiveSignInRequestId": None,
    }


#: learn.microsoft.com/graph/api/resources/signinactivity: reading it needs AuditLog.Read.All (plus a
#: User.Read.All-level permission) and a Microsoft Entra ID P1/P2 licence.
AUDIT_LOG_READ = frozenset({"AuditLog.Read.All"})
NON_PREMIUM = (
    "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
    "Neither tenant is B2C or tenant doesn't have premium license",
)


def check_sign_in_activity(ctx: Ctx, select: list[str] | None) -> None:
    """Refuse ``$select=signInActivity`` as Graph does: 403 without the licence (GitHub
    microsoftgraph/microsoft-graph-docs#12772, MicrosoftDocs/azure-docs#77948), 403
    ``Authorization_RequestDenied`` without AuditLog.Read.All."""
    if not select or "signInActivity" not in select:
        return
    from emulator.graph.store import graph_store

    if not graph_store(ctx.state).settings.premium_license:
        raise GraphError(403, *NON_PREMIUM)
    if not ctx.principal.has_any(AUDIT_LOG_READ):
        raise GraphError(403, *DIRECTORY_DENIED)


USER_PROPERTIES: dict[str, Any] = {
    "id": lambda u: u.id,
    "accountEnabled": lambda u: u.account_enabled,
    "businessPhones": lambda u: list(u.business_phones),
    "city": lambda u: None,
    "companyName": lambda u: None,
    "country": lambda u: None,
    "createdDateTime": lambda u: iso(u.created),
    "creationType": lambda u: "Invitation" if u.user_type == "Guest" else None,
    "department": lambda u: u.department,
    "displayName": lambda u: u.display_name,
    "employeeId": lambda u: None,
    "externalUserState": lambda u: "Accepted" if u.user_type == "Guest" else None,
    "givenName": lambda u: u.given_name,
    "jobTitle": lambda u: u.job_title,
    "mail": lambda u: u.mail,
    "mailNickname": _nickname,
    "mobilePhone": lambda u: u.mobile_phone,
    "officeLocation": lambda u: u.office_location,
    "onPremisesSyncEnabled": lambda u: None,
    "otherMails": lambda u: [],
    "postalCode": lambda u: None,
    "preferredLanguage": lambda u: u.preferred_language,
    "proxyAddresses": lambda u: [f"SMTP:{u.mail}"] if u.mail and u.has_mailbox else [],
    "state": lambda u: None,
    "streetAddress": lambda u: None,
    "surname": lambda u: u.surname,
    "usageLocation": lambda u: None if u.user_type == "Guest" else "FR",
    "userPrincipalName": lambda u: u.user_principal_name,
    "userType": lambda u: u.user_type,
    "signInActivity": lambda u: _sign_in_activity(u),
    # Only on a single user (a list answers 501): values are not modelled, so null/empty.
    "aboutMe": lambda u: None,
    "birthday": lambda u: "0001-01-01T08:00:00Z",
    "hireDate": lambda u: None,
    "interests": lambda u: [],
    "mySite": lambda u: None,
    "pastProjects": lambda u: [],
    "preferredName": lambda u: None,
    "responsibilities": lambda u: [],
    "schools": lambda u: [],
    "skills": lambda u: [],
}

USER_SCHEMA = EntitySchema(
    type_name="microsoft.graph.user",
    resource="User",
    entity_set="users",
    properties=USER_PROPERTIES,
    default_select=[
        "businessPhones",
        "displayName",
        "givenName",
        "jobTitle",
        "mail",
        "mobilePhone",
        "officeLocation",
        "preferredLanguage",
        "surname",
        "userPrincipalName",
        "id",
    ],
    filters={
        "id": Field("id", "string", lambda u: u.id, frozenset({"eq", "ne", "in"})),
        "userPrincipalName": Field(
            "userPrincipalName", "string", lambda u: u.user_principal_name, STRING_OPS
        ),
        "displayName": Field("displayName", "string", lambda u: u.display_name, STRING_OPS),
        "givenName": Field("givenName", "string", lambda u: u.given_name, STRING_OPS),
        "surname": Field("surname", "string", lambda u: u.surname, STRING_OPS),
        "mail": Field("mail", "string", lambda u: u.mail, STRING_OPS),
        "mailNickname": Field("mailNickname", "string", _nickname, STRING_OPS),
        "jobTitle": Field("jobTitle", "string", lambda u: u.job_title, STRING_OPS),
        "department": Field("department", "string", lambda u: u.department, STRING_OPS),
        "accountEnabled": Field(
            "accountEnabled", "bool", lambda u: u.account_enabled, frozenset({"eq", "ne", "in"})
        ),
        "userType": Field("userType", "enum", lambda u: u.user_type, frozenset({"eq", "ne", "in", "null"})),
        "createdDateTime": Field(
            "createdDateTime",
            "datetime",
            lambda u: u.created,
            frozenset({"eq", "ne", "ge", "le", "in", "null"}),
        ),
        "proxyAddresses": Field(
            "proxyAddresses",
            "strings",
            USER_PROPERTIES["proxyAddresses"],
            frozenset({"any", "eq", "startswith"}),
        ),
    },
    sort_basic=frozenset({"displayName", "userPrincipalName"}),
    sort_advanced=frozenset({"createdDateTime", "mail", "givenName", "surname"}),
    sort_values={
        "id": lambda u: u.id,
        "displayName": lambda u: u.display_name,
        "userPrincipalName": lambda u: u.user_principal_name,
        "createdDateTime": lambda u: u.created,
        "mail": lambda u: u.mail,
        "givenName": lambda u: u.given_name,
        "surname": lambda u: u.surname,
    },
    search_fields={
        "displayname": lambda u: u.display_name,
        "givenname": lambda u: u.given_name,
        "surname": lambda u: u.surname,
        "mail": lambda u: u.mail,
        "userprincipalname": lambda u: u.user_principal_name,
        "mailnickname": _nickname,
    },
    basic=frozenset({"id", "displayName", "givenName", "surname", "mail", "userPrincipalName"}),
    not_in_collections=frozenset(
        {
            "aboutMe",
            "birthday",
            "hireDate",
            "interests",
            "mySite",
            "pastProjects",
            "preferredName",
            "responsibilities",
            "schools",
            "skills",
        }
    ),
)


def _basic_filter_check(used: list[str]) -> None:
    """With User.ReadBasic.All only, filtering on a property it cannot read is refused. [INFERRED]"""
    if any(name not in (USER_SCHEMA.basic or ()) for name in used):
        raise GraphError(403, *DIRECTORY_DENIED)


async def list_users(ctx: Ctx) -> Response:
    basic = user_read_level(ctx.principal, None) == "basic"
    check_sign_in_activity(ctx, USER_SCHEMA.select(ctx.query.get("$select")))
    return list_directory(
        ctx,
        USER_SCHEMA,
        ctx.state.directory.users,
        "/v1.0/users",
        basic_only=basic,
        check_filter=_basic_filter_check if basic else None,
    )


async def count_users(ctx: Ctx) -> Response:
    user_read_level(ctx.principal, None)
    return count_directory(ctx, USER_SCHEMA, ctx.state.directory.users)


async def get_user(ctx: Ctx) -> Response:
    if not ctx.principal.has_any(USER_READ_SELF):
        raise GraphError(403, *DIRECTORY_DENIED)
    user = target_user(ctx)
    basic = user_read_level(ctx.principal, user) == "basic"
    if "$expand" in ctx.query:
        raise USER_SCHEMA.unknown(ctx.query["$expand"].split("(")[0].split(",")[0].strip())
    select = USER_SCHEMA.select(ctx.query.get("$select"))
    check_sign_in_activity(ctx, select)
    body = {
        "@odata.context": USER_SCHEMA.context_url(ctx.origin, select, entity=True),
        **USER_SCHEMA.project(user, select, basic),
    }
    return json_response(body)
