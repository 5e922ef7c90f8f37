"""SharePoint entities of the local tenant: the site user (``SP.User``) and the user profile
(``SP.UserProfiles.PersonProperties``), as typed :class:`emulator.sharepoint.odata.Entity` values that
:mod:`emulator.sharepoint.odata` renders in every format."""

from __future__ import annotations

import hashlib
import re
import uuid
from urllib.parse import quote

from emulator.config import SHAREPOINT_APP_ID
from emulator.directory.model import Directory, User
from emulator.sharepoint.odata import Complex, Entity, Prop
from emulator.state import EmulatorState

APP_PRINCIPAL_ID = 1073741822
APP_LOGIN = f"i:0i.t|{SHAREPOINT_APP_ID}|app@sharepoint"


def site_user_id(state: EmulatorState, user: User) -> int:
    """A small, stable site user id: 10 + the user's position in the seeded directory."""
    directory: Directory = state.directory
    cached = state.stores.get("sharepoint.site_user_ids")
    if not cached or cached[0] is not directory or user.id not in cached[1]:
        cached = (directory, {u.id: i for i, u in enumerate(directory.users)})
        state.stores["sharepoint.site_user_ids"] = cached
    return 10 + int(cached[1][user.id])


def login_name(user: User) -> str:
    return f"i:0#.f|membership|{user.user_principal_name.lower()}"


def name_id(user: User) -> str:
    """The PUID-like ``NameId`` (16 hex digits), derived from the object id."""
    return "1003" + hashlib.sha256(user.id.encode()).hexdigest()[:12]


def site_user(state: EmulatorState, user: User) -> Entity:
    uid = site_user_id(state, user)
    return Entity(
        "SP.User",
        f"Web/GetUserById({uid})",
        "SP.ApiData.Users",
        [
            Prop("Id", "Edm.Int32", uid),
            Prop("IsHiddenInUI", "Edm.Boolean", False),
            Prop("LoginName", "Edm.String", login_name(user)),
            Prop("Title", "Edm.String", user.display_name),
            Prop("PrincipalType", "Edm.Int32", 1),
            Prop("Email", "Edm.String", user.mail or ""),
            Prop("Expiration", "Edm.String", ""),
            Prop("IsEmailAuthenticationGuestUser", "Edm.Boolean", False),
            Prop("IsShareByEmailGuestUser", "Edm.Boolean", False),
            Prop("IsSiteAdmin", "Edm.Boolean", user.is_admin),
            Prop(
                "UserId",
                "SP.UserIdInfo",
                Complex(
                    "SP.UserIdInfo",
                    [
                        Prop("NameId", "Edm.String", name_id(user)),
                        Prop("NameIdIssuer", "Edm.String", "urn:federation:microsoftonline"),
                    ],
                ),
            ),
            Prop("UserPrincipalName", "Edm.String", user.user_principal_name),
        ],
        navigation=["Alerts", "Groups"],
    )


def app_user() -> Entity:
    return Entity(
        "SP.User",
        f"Web/GetUserById({APP_PRINCIPAL_ID})",
        "SP.ApiData.Users",
        [
            Prop("Id", "Edm.Int32", APP_PRINCIPAL_ID),
            Prop("IsHiddenInUI", "Edm.Boolean", False),
            Prop("LoginName", "Edm.String", APP_LOGIN),
            Prop("Title", "Edm.String", "SharePoint App"),
            Prop("PrincipalType", "Edm.Int32", 1),
            Prop("Email", "Edm.String", ""),
            Prop("Expiration", "Edm.String", ""),
            Prop("IsEmailAuthenticationGuestUser", "Edm.Boolean", False),
            Prop("IsShareByEmailGuestUser", "Edm.Boolean", False),
            Prop("IsSiteAdmin", "Edm.Boolean", False),
            Prop("UserId", "SP.UserIdInfo", None),
            Prop("UserPrincipalName", "Edm.String", None),
        ],
        navigation=["Alerts", "Groups"],
    )


def person(state: EmulatorState, user: User | None) -> Entity:
    """PersonProperties of the caller; empty for the app principal (no profile) [INFERRED]."""
    path = "SP.UserProfiles.PeopleManager/GetMyProperties"
    strings = "Collection(Edm.String)"
    if user is None:
        return Entity(
            "SP.UserProfiles.PersonProperties",
            path,
            "SP.UserProfiles.PersonProperties",
            [
                Prop("AccountName", "Edm.String", None),
                Prop("DirectReports", strings, []),
                Prop("DisplayName", "Edm.String", None),
                Prop("Email", "Edm.String", None),
                Prop("ExtendedManagers", strings, []),
                Prop("ExtendedReports", strings, []),
                Prop("IsFollowed", "Edm.Boolean", False),
                Prop("LatestPost", "Edm.String", None),
                Prop("Peers", strings, []),
                Prop("PersonalSiteHostUrl", "Edm.String", None),
                Prop("PersonalUrl", "Edm.String", None),
                Prop("PictureUrl", "Edm.String", None),
                Prop("Title", "Edm.String", None),
                Prop("UserProfileProperties", "Collection(SP.KeyValue)", []),
                Prop("UserUrl", "Edm.String", None),
            ],
        )
    account = login_name(user)
    origin = state.config.sharepoint_origin
    personal = f"{origin}/personal/{re.sub(r'[^a-z0-9]', '_', user.user_principal_name.lower())}/"
    return Entity(
        "SP.UserProfiles.PersonProperties",
        path,
        "SP.UserProfiles.PersonProperties",
        [
            Prop("AccountName", "Edm.String", account),
            Prop("DirectReports", strings, []),
            Prop("DisplayName", "Edm.String", user.display_name),
            Prop("Email", "Edm.String", user.mail),
            Prop("ExtendedManagers", strings, []),
            Prop("ExtendedReports", strings, [account]),
            Prop("IsFollowed", "Edm.Boolean", False),
            Prop("LatestPost", "Edm.String", None),
            Prop("Peers", strings, []),
            Prop("PersonalSiteHostUrl", "Edm.String", f"{state.config.sharepoint_origin}/"),
            Prop("PersonalUrl", "Edm.String", None if user.user_type == "Guest" else personal),
            Prop("PictureUrl", "Edm.String", None),
            Prop("Title", "Edm.String", user.job_title),
            Prop(
                "UserProfileProperties",
                "Collection(SP.KeyValue)",
                profile_properties(state, user, account),
            ),
            Prop(
                "UserUrl",
                "Edm.String",
                f"{state.config.sharepoint_origin}/Person.aspx?accountname={quote(account, safe='')}",
            ),
        ],
    )


def profile_properties(state: EmulatorState, user: User, account: str) -> list[Complex]:
    tid = state.directory.tenant_id
    values = [
        ("UserProfile_GUID", str(uuid.uuid5(uuid.NAMESPACE_URL, f"profile:{user.id}"))),
        ("SID", f"i:0h.f|membership|{name_id(user)}@live.com"),
        ("ADGuid", ""),
        ("AccountName", account),
        ("FirstName", user.given_name or ""),
        ("LastName", user.surname or ""),
        ("PreferredName", user.display_name),
        ("WorkPhone", user.business_phones[0] if user.business_phones else ""),
        ("Department", user.department or ""),
        ("Title", user.job_title or ""),
        ("SPS-Department", user.department or ""),
        ("Manager", ""),
        ("AboutMe", ""),
        ("PictureURL", ""),
        ("UserName", user.user_principal_name),
        ("SPS-JobTitle", user.job_title or ""),
        ("SPS-ClaimID", user.user_principal_name.lower()),
        ("SPS-ClaimProviderID", "membership"),
        ("SPS-ClaimProviderType", "Forms"),
        ("SPS-UserPrincipalName", user.user_principal_name),
        (
            "SPS-DistinguishedName",
            f"CN={user.id},OU={tid},OU=Tenants,OU=MSOnline,DC=SPODS,DC=msft,DC=net",
        ),
        ("WorkEmail", user.mail or ""),
        ("CellPhone", user.mobile_phone or ""),
        ("Fax", ""),
        ("Office", user.office_location or ""),
        ("SPS-Location", user.office_location or ""),
        ("SPS-UserType", "1" if user.user_type == "Guest" else "0"),
        ("SPS-HideFromAddressLists", "False"),
        ("msOnline-ObjectId", user.id),
        ("SPS-TenantInstanceId", tid),
        ("PreferredDataLocation", ""),
    ]
    return [
        Complex(
            "SP.KeyValue",
            [
                Prop("Key", "Edm.String", k),
                Prop("Value", "Edm.String", v),
                Prop("ValueType", "Edm.String", "Edm.String"),
            ],
        )
        for k, v in values
    ]
