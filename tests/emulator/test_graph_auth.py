"""Authentication (401 matrix) and permissions (403 matrix) of the Graph origin, in process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from emulator.config import GRAPH_APP_ID, GRAPH_CLOUD_AUDIENCE, VAULT_AUDIENCE
from emulator.pki.signing_keys import _new_key
from tests.emulator.graph_kit import InProcess, assert_graph_error

WWW = (
    'Bearer realm="", authorization_uri="{authority}/common/oauth2/authorize", '
    'client_id="00000003-0000-0000-c000-000000000000"'
)


@pytest.fixture(scope="module")
def g(tmp_path_factory: pytest.TempPathFactory) -> InProcess:
    return InProcess.create(Path(tmp_path_factory.mktemp("graph-auth")))


@pytest.fixture
def fresh(g: InProcess) -> Iterator[InProcess]:
    yield g
    g.state.reset()


def _claims(g: InProcess, **over: object) -> dict[str, object]:
    tid = g.state.directory.tenant_id
    now = int(time.time())
    claims: dict[str, object] = {
        "aud": g.origin,
        "iss": f"https://sts.windows.net/{tid}/",
        "tid": tid,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "appid": g.state.ids.app.app_id,
        "oid": g.state.ids.app.sp_id,
        "roles": ["User.Read.All"],
    }
    claims.update(over)
    return claims


def _sign(g: InProcess, claims: dict[str, object], key=None) -> str:  # type: ignore[no-untyped-def]
    key = key or g.state.keys.current
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})


def assert_401(g: InProcess, reply, message: str) -> None:  # type: ignore[no-untyped-def]
    assert_graph_error(reply, 401, "InvalidAuthenticationToken", message)
    assert reply.headers["www-authenticate"] == WWW.format(authority=g.state.config.authority_host)


def test_missing_or_empty_token(g: InProcess) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic Zm9vOmJhcg=="},
    ):
        assert_401(g, g.request("GET", "/v1.0/users", headers=headers), "Access token is empty.")


def test_malformed_token(g: InProcess) -> None:
    assert_401(g, g.get("/v1.0/users", "not-a-jwt"), "CompactToken parsing failed with error code: 80049217")


def test_tampered_signature(g: InProcess) -> None:
    token = g.app_token("User.Read.All")
    head, body, sig = token.split(".")
    forged = jwt.encode(_claims(g, roles=["Directory.Read.All"]), "x" * 32, algorithm="HS256").split(".")[1]
    assert_401(g, g.get("/v1.0/users", f"{head}.{forged}.{sig}"), "Access token validation failure.")
    flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    assert_401(g, g.get("/v1.0/users", f"{head}.{body}.{flipped}"), "Access token validation failure.")


def test_unknown_signing_key(g: InProcess) -> None:
    assert_401(
        g, g.get("/v1.0/users", _sign(g, _claims(g), key=_new_key())), "Access token validation failure."
    )


def test_expired_and_not_yet_valid(g: InProcess) -> None:
    now = int(time.time())
    expired = _sign(g, _claims(g, iat=now - 7200, nbf=now - 7200, exp=now - 3600))
    assert_401(g, g.get("/v1.0/users", expired), "Access token has expired or is not yet valid.")
    future = _sign(g, _claims(g, iat=now, nbf=now + 3600, exp=now + 7200))
    assert_401(g, g.get("/v1.0/users", future), "Access token has expired or is not yet valid.")


def test_expired_through_lifetime_override(fresh: InProcess) -> None:
    # A minute, not a second: whole-second iat/exp let a 1 s token expire before its first use on a busy
    # machine; on the tenant's clock the wait past it costs nothing.
    fresh.state.tokens.access_lifetime = 60
    fresh.state.tokens.clock_skew = 0
    token = fresh.app_token("User.Read.All")
    assert fresh.get("/v1.0/users?$top=1", token).status_code == 200
    fresh.advance_clock(61)  # past the lifetime, on the tenant's clock
    assert_401(fresh, fresh.get("/v1.0/users?$top=1", token), "Access token has expired or is not yet valid.")


@pytest.mark.parametrize(
    "audience", ["sharepoint", VAULT_AUDIENCE, "api", "https://graph.microsoft.com.evil"]
)
def test_other_audiences_are_refused(g: InProcess, audience: str) -> None:
    aud = {"sharepoint": g.state.config.sharepoint_origin, "api": g.state.ids.app.app_id}.get(
        audience, audience
    )
    token = g.token(roles=("User.Read.All",), audience=aud)
    assert_401(g, g.get("/v1.0/users", token), "Access token validation failure. Invalid audience.")


@pytest.mark.parametrize(
    "audience", ["origin", GRAPH_CLOUD_AUDIENCE, GRAPH_CLOUD_AUDIENCE + "/", GRAPH_APP_ID]
)
def test_graph_audiences_are_accepted(g: InProcess, audience: str) -> None:
    aud = g.origin if audience == "origin" else audience
    assert g.get("/v1.0/users?$top=1", g.token(roles=("User.Read.All",), audience=aud)).status_code == 200


def test_foreign_issuer_or_tenant(g: InProcess) -> None:
    other = "11111111-2222-3333-4444-555555555555"
    token = _sign(g, _claims(g, iss=f"https://sts.windows.net/{other}/", tid=other))
    assert_401(g, g.get("/v1.0/users", token), "Access token validation failure. Invalid issuer.")


# ------------------------------------------------------------------------------------ permissions
DIR = ("Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
MAIL = ("ErrorAccessDenied", "Access is denied. Check credentials and try again.")


@pytest.mark.parametrize(
    ("roles", "path", "status", "denied"),
    [
        ((), "/v1.0/users", 403, DIR),
        ((), "/v1.0/groups", 403, DIR),
        ((), "/v1.0/users/{admin}/messages", 403, MAIL),
        (("Mail.Read",), "/v1.0/users", 403, DIR),
        (("Mail.Read",), "/v1.0/users/{admin}", 403, DIR),
        (("Mail.Read",), "/v1.0/users/{admin}/messages", 200, None),
        (("User.Read.All",), "/v1.0/users/{admin}/messages", 403, MAIL),
        (("User.Read.All",), "/v1.0/users/{admin}/mailFolders", 403, MAIL),
        (("User.Read.All",), "/v1.0/groups", 403, DIR),
        (("User.Read.All",), "/v1.0/users/{admin}/memberOf", 403, DIR),
        (("GroupMember.Read.All",), "/v1.0/groups", 200, None),
        (("GroupMember.Read.All",), "/v1.0/users", 403, DIR),
        (("Directory.Read.All",), "/v1.0/users", 200, None),
        (("Directory.Read.All",), "/v1.0/groups", 200, None),
        (("User.ReadBasic.All",), "/v1.0/users", 200, None),
        (("User.ReadBasic.All",), "/v1.0/users/delta", 200, None),
        (("Mail.ReadBasic.All",), "/v1.0/users/{admin}/messages", 200, None),
        (("Mail.Send",), "/v1.0/users/{admin}/messages", 403, MAIL),
    ],
)
def test_app_permission_matrix(
    g: InProcess, roles: tuple[str, ...], path: str, status: int, denied: tuple[str, str] | None
) -> None:
    reply = g.get(path.format(admin=g.state.ids.admin.id), g.app_token(*roles))
    if denied is None:
        assert reply.status_code == status, reply.text
    else:
        assert_graph_error(reply, status, *denied)


@pytest.mark.parametrize(
    ("scopes", "path", "status", "denied"),
    [
        (("User.Read",), "/v1.0/me", 200, None),
        (("User.Read",), "/v1.0/users/{me}", 200, None),
        (("User.Read",), "/v1.0/users/{other}", 403, DIR),
        (("User.Read",), "/v1.0/users", 403, DIR),
        (("openid", "profile"), "/v1.0/me", 403, DIR),
        (("User.ReadBasic.All",), "/v1.0/users/{other}", 200, None),
        (("User.Read.All",), "/v1.0/users", 200, None),
        (("Mail.Read",), "/v1.0/me/messages", 200, None),
        (("Mail.Read",), "/v1.0/users/{me}/messages", 200, None),
        (("Mail.Read",), "/v1.0/users/{other}/messages", 403, MAIL),
        (("Mail.Read.Shared",), "/v1.0/users/{other}/messages", 200, None),
        (("Mail.ReadBasic",), "/v1.0/me/messages", 200, None),
        (("User.Read",), "/v1.0/me/messages", 403, MAIL),
        (("Mail.Read",), "/v1.0/me/mailFolders", 200, None),
        (("GroupMember.Read.All",), "/v1.0/me/memberOf", 200, None),
        (("User.Read",), "/v1.0/me/memberOf", 403, DIR),
    ],
)
def test_delegated_permission_matrix(
    g: InProcess, scopes: tuple[str, ...], path: str, status: int, denied: tuple[str, str] | None
) -> None:
    me, other = g.state.ids.member, g.state.ids.admin
    reply = g.get(path.format(me=me.id, other=other.id), g.user_token(me, *scopes))
    if denied is None:
        assert reply.status_code == status, reply.text
    else:
        assert_graph_error(reply, status, *denied)


def test_read_basic_all_hides_other_properties(g: InProcess) -> None:
    token = g.user_token(g.state.ids.member, "User.ReadBasic.All")
    admin = g.get(f"/v1.0/users/{g.state.ids.admin.id}", token).json()
    assert admin["displayName"] == "Alex Admin" and admin["mail"] == g.state.ids.admin.mail
    assert admin["jobTitle"] is None and admin["officeLocation"] is None
    listed = g.get("/v1.0/users?$select=displayName,department&$top=5", token).json()["value"]
    assert all(u["department"] is None and u["displayName"] for u in listed)
    assert g.get("/v1.0/users?$filter=startswith(displayName,'a')", token).status_code == 200
    assert_graph_error(g.get("/v1.0/users?$filter=department eq 'Finance'", token), 403, *DIR)
    me = g.get("/v1.0/me", token).json()
    assert me["jobTitle"] == g.state.ids.member.job_title  # full read of one's own profile


def test_mail_read_basic_has_no_body(g: InProcess) -> None:
    for token in (g.user_token(g.state.ids.admin, "Mail.ReadBasic"), g.app_token("Mail.ReadBasic.All")):
        page = g.get(f"/v1.0/users/{g.state.ids.admin.id}/messages", token).json()["value"]
        assert page and all("body" not in m and "bodyPreview" not in m and "subject" in m for m in page)
        assert_graph_error(
            g.get(f"/v1.0/users/{g.state.ids.admin.id}/messages?$select=subject,body", token), 403, *MAIL
        )


def test_delegated_token_of_a_deleted_user(fresh: InProcess) -> None:
    member = fresh.state.ids.member
    token = fresh.user_token(member, "User.Read", "Mail.Read")
    fresh.state.directory.remove_user(member.id)
    assert_graph_error(fresh.get("/v1.0/me", token), 404, "Request_ResourceNotFound")
    assert_graph_error(fresh.get("/v1.0/me/messages", token), 404, "ErrorInvalidUser")
