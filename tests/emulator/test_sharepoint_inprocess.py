"""SharePoint REST handlers in-process, with tokens minted by the tenant's TokenService (no token
endpoint involved)."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from emulator.config import GRAPH_APP_ID, SHAREPOINT_APP_ID, EmulatorConfig
from emulator.directory.model import User
from emulator.sharepoint import api as sharepoint
from emulator.sharepoint import people as sharepoint_people
from emulator.state import EmulatorState
from tests.support.asgi import AsgiResponse, call

CURRENT_USER = "/sites/contoso/_api/web/currentuser"
MY_PROPERTIES = "/sites/contoso/_api/SP.UserProfiles.PeopleManager/GetMyProperties"
VERBOSE = "application/json;odata=verbose"
NOMETADATA = "application/json;odata=nometadata"
ATOM_NS = {
    "a": "http://www.w3.org/2005/Atom",
    "m": "http://schemas.microsoft.com/ado/2007/08/dataservices/metadata",
    "d": "http://schemas.microsoft.com/ado/2007/08/dataservices",
}


@pytest.fixture(scope="module")
def module_state(tmp_path_factory: pytest.TempPathFactory) -> EmulatorState:
    return EmulatorState.create(EmulatorConfig(state_dir=Path(tmp_path_factory.mktemp("spo")), users=12))


@pytest.fixture
def state(module_state: EmulatorState) -> Iterator[EmulatorState]:
    yield module_state
    module_state.reset()


def spo_token(
    state: EmulatorState,
    *,
    user: User | None = None,
    scopes: tuple[str, ...] = ("AllSites.Read",),
    roles: tuple[str, ...] = ("Sites.Read.All",),
    appidacr: str = "2",
    audience: str | None = None,
    lifetime: int | None = None,
) -> str:
    spo = state.directory.app(SHAREPOINT_APP_ID)
    assert spo is not None
    return state.tokens.access_token(
        resource=spo,
        audience=audience or state.config.sharepoint_origin,
        client=state.ids.app,
        user=user,
        scopes=scopes if user else (),
        roles=() if user else roles,
        appidacr=appidacr,
        lifetime=lifetime,
    ).token


def get(
    state: EmulatorState,
    path: str,
    token: str | None,
    accept: str | None = NOMETADATA,
    method: str = "GET",
    **headers: str,
) -> AsgiResponse:
    hdrs = {k.replace("_", "-"): v for k, v in headers.items()}
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    if accept is not None:
        hdrs["Accept"] = accept
    return call(sharepoint.build_app(state), method, path, headers=hdrs)


def test_current_user_delegated_nometadata(state: EmulatorState) -> None:
    admin = state.ids.admin
    resp = get(state, CURRENT_USER, spo_token(state, user=admin))
    assert resp.status == 200
    assert resp.headers["content-type"] == "application/json;odata=nometadata;streaming=true;charset=utf-8"
    body = resp.json()
    assert not any(k.startswith("odata.") or k.startswith("__") for k in body)
    assert body["LoginName"] == f"i:0#.f|membership|{admin.user_principal_name.lower()}"
    assert body["Title"] == admin.display_name and body["Email"] == admin.mail
    assert body["IsSiteAdmin"] is True and body["PrincipalType"] == 1 and isinstance(body["Id"], int)
    assert body["UserId"] == {
        "NameId": sharepoint_people.name_id(admin),
        "NameIdIssuer": "urn:federation:microsoftonline",
    }
    assert len(body["UserId"]["NameId"]) == 16 and int(body["UserId"]["NameId"], 16)
    member = get(state, CURRENT_USER, spo_token(state, user=state.ids.member)).json()
    assert member["IsSiteAdmin"] is False and member["Id"] != body["Id"]
    again = get(state, CURRENT_USER, spo_token(state, user=state.ids.member)).json()
    assert again["Id"] == member["Id"]  # stable


def test_current_user_verbose_shape(state: EmulatorState) -> None:
    resp = get(state, CURRENT_USER, spo_token(state, user=state.ids.member), VERBOSE)
    assert resp.headers["content-type"].startswith("application/json;odata=verbose")
    d = resp.json()["d"]
    uid = d["Id"]
    api = f"{state.config.sharepoint_origin}/sites/contoso/_api/"
    assert d["__metadata"] == {
        "id": f"{api}Web/GetUserById({uid})",
        "uri": f"{api}Web/GetUserById({uid})",
        "type": "SP.User",
    }
    assert d["Groups"] == {"__deferred": {"uri": f"{api}Web/GetUserById({uid})/Groups"}}
    assert d["UserId"]["__metadata"] == {"type": "SP.UserIdInfo"}


@pytest.mark.parametrize(
    ("accept", "odata_version", "keys", "ctype"),
    [
        (
            "application/json",
            None,
            ["odata.metadata", "odata.type", "odata.id", "odata.editLink"],
            "minimalmetadata",
        ),
        ("application/json;odata=minimalmetadata", None, ["odata.metadata", "odata.type"], "minimalmetadata"),
        (
            "application/json;odata=fullmetadata",
            None,
            ["odata.metadata", "Groups@odata.navigationLinkUrl"],
            "fullmetadata",
        ),
        ("application/json;odata.metadata=none", None, [], "odata.metadata=none"),
        ("application/json;odata.metadata=none", "4.0", [], "odata.metadata=none"),
        ("application/json", "4.0", ["@odata.context", "@odata.type", "@odata.id"], "odata.metadata=minimal"),
        (
            "application/json;odata.metadata=full",
            None,
            ["@odata.context", "Groups@odata.navigationLink"],
            "odata.metadata=full",
        ),
        ("text/html, application/json;odata=nometadata;q=0.9", None, [], "nometadata"),
        ("application/json;q=0.5, application/json;odata=nometadata", None, [], "nometadata"),
    ],
)
def test_json_format_negotiation(
    state: EmulatorState, accept: str, odata_version: str | None, keys: list[str], ctype: str
) -> None:
    extra = {"odata_version": odata_version} if odata_version else {}
    resp = get(state, CURRENT_USER, spo_token(state, user=state.ids.admin), accept, **extra)
    assert resp.status == 200, resp.text
    assert ctype in resp.headers["content-type"]
    body = resp.json()
    for key in keys:
        assert key in body, key
    if not keys:
        assert not any("odata" in k for k in body)
    assert body["Title"] == state.ids.admin.display_name


@pytest.mark.parametrize("accept", [VERBOSE, NOMETADATA, "application/json;odata=minimalmetadata"])
def test_odata_version_4_with_v3_parameter_is_406(state: EmulatorState, accept: str) -> None:
    resp = get(state, CURRENT_USER, spo_token(state, user=state.ids.admin), accept, odata_version="4.0")
    assert resp.status == 406
    message = resp.json()["error"]["message"]["value"]
    assert message == "The HTTP header ACCEPT is missing or its value is invalid."


def test_atom_is_the_default_and_unknown_types_are_406(state: EmulatorState) -> None:
    token = spo_token(state, user=state.ids.admin)
    for accept in (None, "*/*", "application/atom+xml", "application/xml"):
        resp = get(state, CURRENT_USER, token, accept)
        assert resp.status == 200 and resp.headers["content-type"].startswith("application/atom+xml")
        entry = ET.fromstring(resp.body)  # noqa: S314 - our own response
        assert entry.find("a:category", ATOM_NS).get("term") == "SP.User"  # type: ignore[union-attr]
        props = entry.find("a:content/m:properties", ATOM_NS)
        assert props is not None
        assert props.find("d:Title", ATOM_NS).text == state.ids.admin.display_name  # type: ignore[union-attr]
        assert props.find("d:Id", ATOM_NS).get(f"{{{ATOM_NS['m']}}}type") == "Edm.Int32"  # type: ignore[union-attr]
        assert props.find("d:IsSiteAdmin", ATOM_NS).text == "true"  # type: ignore[union-attr]
        assert props.find("d:UserId/d:NameIdIssuer", ATOM_NS) is not None
    assert get(state, CURRENT_USER, token, "text/plain").status == 406


def test_app_only_certificate_is_the_app_principal(state: EmulatorState) -> None:
    body = get(state, "/_api/web/currentuser", spo_token(state)).json()  # root site too
    assert body["Id"] == 1073741822 and body["Title"] == "SharePoint App" and body["PrincipalType"] == 1
    assert body["LoginName"] == "i:0i.t|00000003-0000-0ff1-ce00-000000000000|app@sharepoint"
    assert body["UserId"] is None and body["IsSiteAdmin"] is False
    by_guid = get(state, CURRENT_USER, spo_token(state, audience=SHAREPOINT_APP_ID))
    assert by_guid.status == 200  # the SharePoint app id is an accepted audience too


def test_app_only_secret_is_unsupported(state: EmulatorState) -> None:
    resp = get(state, CURRENT_USER, spo_token(state, appidacr="1"))
    assert resp.status == 401 and resp.json() == {"error_description": "Unsupported app only token."}
    assert resp.headers["www-authenticate"].startswith(
        f'Bearer realm="{state.directory.tenant_id}",client_id="00000003-0000-0ff1-ce00-000000000000"'
    )


def test_app_only_without_a_sharepoint_role_is_denied(state: EmulatorState) -> None:
    resp = get(state, CURRENT_USER, spo_token(state, roles=()), VERBOSE)
    assert resp.status == 403
    assert resp.json() == {
        "error": {
            "code": "-2147024891, System.UnauthorizedAccessException",
            "message": {"lang": "en-US", "value": sharepoint.ACCESS_DENIED},
        }
    }


def test_invalid_tokens(state: EmulatorState) -> None:
    graph = state.directory.app(GRAPH_APP_ID)
    assert graph is not None
    graph_token = state.tokens.access_token(
        resource=graph,
        audience="https://graph.microsoft.com",
        client=state.ids.app,
        appidacr="2",
        roles=["User.Read.All"],
    ).token
    good = spo_token(state, user=state.ids.admin)
    head, _payload, sig = good.split(".")
    forged = (
        base64.urlsafe_b64encode(
            json.dumps(
                {**jwt.decode(good, options={"verify_signature": False}), "IsSiteAdmin": True}
            ).encode()
        )
        .decode()
        .rstrip("=")
    )
    cases = {
        "graph": (graph_token, "3000003"),
        "tampered": (f"{head}.{forged}.{sig}", "3000006"),
        "not a jwt": ("abc", "3000001"),
        "empty": ("", "3000001"),
    }
    for name, (token, diag) in cases.items():
        resp = get(state, CURRENT_USER, token)
        assert resp.status == 401, name
        assert resp.json() == {"error_description": "Invalid issuer or signature."}, name
        assert resp.headers["x-ms-diagnostics"].startswith(diag), name
        assert 'realm="' in resp.headers["www-authenticate"]
    assert "https://graph.microsoft.com" in get(state, CURRENT_USER, graph_token).headers["x-ms-diagnostics"]


def test_expired_token(state: EmulatorState) -> None:
    state.tokens.clock_skew = 0
    expired = spo_token(state, user=state.ids.admin, lifetime=-10)
    resp = get(state, CURRENT_USER, expired)
    assert resp.status == 401 and resp.json()["error_description"] == "Invalid issuer or signature."


def test_anonymous_request_is_403(state: EmulatorState) -> None:
    resp = get(state, CURRENT_USER, None, VERBOSE)
    assert resp.status == 403
    assert resp.json()["error"]["code"] == "-2147024891, System.UnauthorizedAccessException"
    light = get(state, CURRENT_USER, None)
    assert "odata.error" in light.json()
    atom = get(state, CURRENT_USER, None, None)
    error = ET.fromstring(atom.body)  # noqa: S314 - our own response
    assert error.tag == f"{{{ATOM_NS['m']}}}error"


def test_delegated_scope_is_required(state: EmulatorState) -> None:
    resp = get(state, CURRENT_USER, spo_token(state, user=state.ids.admin, scopes=("Unrelated.Scope",)))
    assert resp.status == 403 and resp.json()["odata.error"]["message"]["value"].startswith("Access denied.")
    for scope in ("MyFiles.Read", "User.Read.All", "AllSites.FullControl"):
        assert get(state, CURRENT_USER, spo_token(state, user=state.ids.admin, scopes=(scope,))).status == 200


def test_disabled_user_is_denied(state: EmulatorState) -> None:
    disabled = next(u for u in state.directory.users if not u.account_enabled)
    assert get(state, CURRENT_USER, spo_token(state, user=disabled)).status == 403


def test_guest_login_name_is_lower_case(state: EmulatorState) -> None:
    guest = next(u for u in state.directory.users if u.user_type == "Guest")
    body = get(state, CURRENT_USER, spo_token(state, user=guest)).json()
    assert body["LoginName"] == f"i:0#.f|membership|{guest.user_principal_name.lower()}"
    assert "#ext#" in body["LoginName"]


def _kv(props: list[dict[str, Any]]) -> dict[str, str]:
    return {p["Key"]: p["Value"] for p in props}


def test_get_my_properties(state: EmulatorState) -> None:
    member = state.ids.member
    token = spo_token(state, user=member)
    light = get(state, MY_PROPERTIES.lower(), token).json()  # paths are case-insensitive
    account = f"i:0#.f|membership|{member.user_principal_name.lower()}"
    assert light["AccountName"] == account and light["DisplayName"] == member.display_name
    assert light["Email"] == member.mail and light["Title"] == member.job_title
    assert light["PictureUrl"] is None
    assert light["DirectReports"] == [] and light["ExtendedManagers"] == [] and light["Peers"] == []
    assert light["PersonalUrl"].startswith(state.config.sharepoint_origin + "/personal/")
    props = _kv(light["UserProfileProperties"])
    assert props["AccountName"] == account and props["FirstName"] == member.given_name
    assert props["LastName"] == member.surname and props["Department"] == member.department
    assert props["SPS-Department"] == member.department and props["Title"] == member.job_title
    assert props["WorkEmail"] == member.mail and props["UserName"] == member.user_principal_name
    assert props["Office"] == member.office_location and props["msOnline-ObjectId"] == member.id
    assert all(p["ValueType"] == "Edm.String" for p in light["UserProfileProperties"])
    verbose = get(state, MY_PROPERTIES, token, VERBOSE).json()["d"]
    assert verbose["__metadata"]["type"] == "SP.UserProfiles.PersonProperties"
    assert verbose["DirectReports"] == {"__metadata": {"type": "Collection(Edm.String)"}, "results": []}
    first = verbose["UserProfileProperties"]["results"][0]
    assert first["__metadata"] == {"type": "SP.KeyValue"} and first["ValueType"] == "Edm.String"
    atom = ET.fromstring(get(state, MY_PROPERTIES, token, None).body)  # noqa: S314
    elements = atom.findall("a:content/m:properties/d:UserProfileProperties/d:element", ATOM_NS)
    assert len(elements) == len(props)


def test_get_my_properties_app_only_is_empty(state: EmulatorState) -> None:
    body = get(state, MY_PROPERTIES, spo_token(state)).json()
    assert body["AccountName"] is None and body["UserProfileProperties"] == [] and body["DisplayName"] is None


def test_unknown_paths_methods_and_sites(state: EmulatorState) -> None:
    token = spo_token(state, user=state.ids.admin)
    unknown = get(state, "/sites/contoso/_api/nothing/here", token)
    assert unknown.status == 404
    error = unknown.json()["odata.error"]
    assert error["code"] == "-1, Microsoft.SharePoint.Client.ResourceNotFoundException"
    assert error["message"]["value"] == "Cannot find resource for the request nothing."
    member = get(state, "/sites/contoso/_api/web/nope", token, VERBOSE)
    assert member.status == 404 and "InvalidClientQueryException" in member.json()["error"]["code"]
    assert get(state, "/sites/other/_api/web/currentuser", token).status == 404
    post = get(state, CURRENT_USER, token, method="POST")
    assert post.status == 405 and "cannot be used to access the resource 'CurrentUser'" in post.text
    assert get(state, "/sites/contoso/_API/Web/CurrentUser", token).status == 200
