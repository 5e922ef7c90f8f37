"""Key Vault handlers and control routes in-process (no sockets): the details the SDK tests don't reach."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator import control
from emulator.config import GRAPH_APP_ID, VAULT_AUDIENCE, EmulatorConfig
from emulator.directory.seed import VAULT_APP_ID
from emulator.state import EmulatorState
from emulator.vault import api as vault
from tests.support.asgi import AsgiResponse, call


@pytest.fixture(scope="module")
def module_state(tmp_path_factory: pytest.TempPathFactory) -> EmulatorState:
    return EmulatorState.create(EmulatorConfig(state_dir=Path(tmp_path_factory.mktemp("vault")), users=12))


@pytest.fixture
def state(module_state: EmulatorState) -> Iterator[EmulatorState]:
    yield module_state
    module_state.reset()


def mi_token(state: EmulatorState, *, audience: str = VAULT_AUDIENCE, lifetime: int | None = None) -> str:
    app = state.directory.resource_for(VAULT_AUDIENCE)
    assert app is not None
    return state.tokens.access_token(
        resource=app, audience=audience, client=state.ids.system_identity, appidacr="2", lifetime=lifetime
    ).token


def get(
    state: EmulatorState,
    target: str,
    token: str | None = None,
    method: str = "GET",
    body: dict[str, object] | str | None = None,
    headers: dict[str, str] | None = None,
) -> AsgiResponse:
    hdrs = dict(headers or {})
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    return call(vault.build_app(state), method, target, headers=hdrs, body=body)


def test_every_response_carries_the_service_headers(state: EmulatorState) -> None:
    resp = get(state, "/secrets?api-version=7.6", mi_token(state), headers={"x-ms-client-request-id": "abc"})
    assert resp.status == 200
    h = resp.headers
    assert h["content-type"] == "application/json; charset=utf-8"
    assert h["x-ms-keyvault-region"] == "local" and h["x-ms-keyvault-service-version"]
    assert h["x-ms-keyvault-network-info"].startswith("conn_type=Ipv4;addr=127.0.0.1;")
    assert h["x-ms-client-request-id"] == "abc" and h["cache-control"] == "no-cache" and h["expires"] == "-1"
    assert resp.json()["nextLink"] is None


def test_token_rejections(state: EmulatorState) -> None:
    graph = state.directory.app(GRAPH_APP_ID)
    assert graph is not None
    other = state.tokens.access_token(
        resource=graph, audience="https://graph.microsoft.com", client=state.ids.app, appidacr="2"
    ).token
    assert "AKV10022" in get(state, "/secrets?api-version=7.6", other).json()["error"]["message"]
    by_app_id = mi_token(state, audience=VAULT_APP_ID)  # the vault's app id is an accepted audience too
    assert get(state, "/secrets?api-version=7.6", by_app_id).status == 200
    with_slash = mi_token(state, audience="https://vault.azure.net/")
    assert get(state, "/secrets?api-version=7.6", with_slash).status == 200
    garbage = get(state, "/secrets?api-version=7.6", "not-a-jwt")
    assert garbage.status == 401 and "www-authenticate" in garbage.headers
    basic = get(state, "/secrets?api-version=7.6", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.json()["error"]["message"] == "AKV10000: Request is missing a Bearer or PoP token."


def test_foreign_issuer_is_akv10032(state: EmulatorState) -> None:
    token = mi_token(state)
    claims = __import__("jwt").decode(token, options={"verify_signature": False})
    claims["iss"] = "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/"
    forged = state.tokens.sign(claims, x5t=True)
    message = get(state, "/secrets?api-version=7.6", forged).json()["error"]["message"]
    assert message == (
        f"AKV10032: Invalid issuer. Expected one of https://sts.windows.net/"
        f"{state.directory.tenant_id}/, found https://sts.windows.net/"
        "72f988bf-86f1-41af-91ab-2d7cd011db47/."
    )


def test_routing_methods_and_parameters(state: EmulatorState) -> None:
    token = mi_token(state)
    unknown = get(state, "/keys/some-key?api-version=7.6", token)
    assert unknown.status == 404 and unknown.json()["error"]["code"] == "NotFound"
    delete = get(state, "/secrets/graph-functions-client-secret?api-version=7.6", token, method="DELETE")
    assert delete.status == 405 and delete.headers["allow"] == "GET, PUT, PATCH"
    for bad in ("0", "26", "x"):
        resp = get(state, f"/secrets?api-version=7.6&maxresults={bad}", token)
        assert resp.status == 400 and resp.json()["error"]["code"] == "BadParameter"
    assert get(state, "/secrets?api-version=7.6&$skiptoken=%%%", token).status == 400
    assert get(state, "/secrets/" + "a" * 128 + "?api-version=7.6", token).status == 400
    assert get(state, "/secrets/" + "a" * 127 + "?api-version=7.6", token).status == 404
    msg = get(state, "/secrets?api-version=1.0", token).json()["error"]["message"]
    assert msg == (
        "The specified version (1.0) is not recognized. Consider using the latest supported "
        "version (2026-04-01)."
    )


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("", "missing"),
        ("{", "not valid JSON"),
        ("[]", "JSON object"),
        ({"contentType": "x"}, "'value'"),
        ({"value": 3}, "'value'"),
        ({"value": "x" * (25 * 1024 + 1)}, "maximum size"),
        ({"value": "v", "tags": {str(i): "t" for i in range(16)}}, "at most 15 tags"),
        ({"value": "v", "tags": {"k": 1}}, "tags"),
        ({"value": "v", "attributes": {"enabled": "yes"}}, "enabled"),
        ({"value": "v", "attributes": {"exp": "tomorrow"}}, "exp"),
        ({"value": "v", "attributes": {"nbf": 200, "exp": 100}}, "later than"),
    ],
)
def test_set_secret_validation(state: EmulatorState, body: dict[str, object] | str, needle: str) -> None:
    resp = get(state, "/secrets/new-secret?api-version=7.6", mi_token(state), method="PUT", body=body)
    assert resp.status == 400, resp.text
    assert resp.json()["error"]["code"] == "BadParameter" and needle in resp.json()["error"]["message"]
    assert state.vault.latest("new-secret") is None


def test_set_and_update_shapes(state: EmulatorState) -> None:
    token = mi_token(state)
    nbf, exp = int(time.time()) + 3600, int(time.time()) + 7200
    created = get(
        state,
        "/secrets/Shaped?api-version=7.6",
        token,
        method="PUT",
        body={
            "value": "v",
            "contentType": "text/plain",
            "tags": {"a": "b"},
            "attributes": {"enabled": True, "nbf": nbf, "exp": exp, "created": 1},
        },
    ).json()
    assert created["value"] == "v" and created["contentType"] == "text/plain"
    assert created["tags"] == {"a": "b"}
    attrs = created["attributes"]
    assert attrs["nbf"] == nbf and attrs["exp"] == exp and attrs["created"] != 1
    assert list(attrs) == ["enabled", "nbf", "exp", "created", "updated", "recoveryLevel", "recoverableDays"]
    assert "kid" not in created and "managed" not in created
    version = created["id"].rsplit("/", 1)[1]
    # Get works outside the nbf/exp window: the service documents it (the app must check the dates).
    assert get(state, f"/secrets/shaped/{version}?api-version=7.6", token).json()["value"] == "v"
    updated = get(
        state,
        f"/secrets/shaped/{version}?api-version=7.6",
        token,
        method="PATCH",
        body={"attributes": {"exp": None}, "tags": {}},
    ).json()
    assert "value" not in updated and updated["tags"] == {} and "exp" not in updated["attributes"]
    assert updated["id"].endswith(f"/secrets/Shaped/{version}")
    missing = get(
        state, "/secrets/shaped/" + "f" * 32 + "?api-version=7.6", token, method="PATCH", body={"tags": {}}
    )
    assert missing.status == 404 and "(name/id) shaped/" + "f" * 32 in missing.json()["error"]["message"]


def test_group_access_policy_applies_to_members(state: EmulatorState) -> None:
    member = state.ids.member
    state.vault.access.pop(state.ids.admin.id, None)
    app = state.directory.resource_for(VAULT_AUDIENCE)
    assert app is not None
    token = state.tokens.access_token(
        resource=app,
        audience=VAULT_AUDIENCE,
        client=state.ids.app,
        user=member,
        scopes=["user_impersonation"],
    ).token
    assert get(state, "/secrets/graph-functions-client-secret?api-version=7.6", token).status == 403
    group = next(g for g in state.directory.groups if member.id in g.members)
    state.vault.access[group.id] = {"get"}
    assert get(state, "/secrets/graph-functions-client-secret?api-version=7.6", token).status == 200


def test_out_content_type_needs_a_recent_api_version(state: EmulatorState) -> None:
    token = mi_token(state)
    old = get(
        state,
        "/secrets/graph-functions-certificate?api-version=7.6&outContentType=application/x-pem-file",
        token,
    ).json()
    assert old["contentType"] == "application/x-pkcs12"  # ignored before 2025-07-01
    pem_to_pfx = get(
        state,
        "/secrets/graph-functions-certificate-pem?api-version=2025-07-01&outContentType=application/x-pkcs12",
        token,
    ).json()
    assert pem_to_pfx["contentType"] == "application/x-pkcs12"
    bad = get(
        state, "/secrets/graph-functions-certificate?api-version=2026-04-01&outContentType=text/plain", token
    )
    assert bad.status == 400


def ctl(state: EmulatorState, method: str, path: str, body: dict[str, object] | None = None) -> AsgiResponse:
    return call(control.build_app(state), method, path, body=body)


def test_control_routes(state: EmulatorState) -> None:
    name = "graph-functions-client-secret"
    assert ctl(state, "PATCH", f"/vault/secrets/{name}", {"enabled": "no"}).status == 400
    assert ctl(state, "PATCH", "/vault/secrets/nope", {"enabled": False}).status == 404
    added = ctl(state, "PUT", f"/vault/secrets/{name}", {"value": "rotated", "tags": {"by": "test"}})
    assert added.status == 201 and "rotated" not in added.text
    everything = ctl(state, "PATCH", f"/vault/secrets/{name}", {"enabled": False, "allVersions": True}).json()
    assert [v["enabled"] for v in everything["versions"]] == [False, False]
    first = everything["versions"][0]["version"]
    one = ctl(state, "PATCH", f"/vault/secrets/{name}", {"enabled": True, "version": first}).json()
    assert [v["enabled"] for v in one["versions"]] == [True, False]
    assert ctl(state, "PATCH", f"/vault/secrets/{name}", {"enabled": True, "version": "0" * 32}).status == 404
    assert ctl(state, "GET", "/vault/secrets/nope/versions").status == 404
    sp = state.ids.caller.sp_id
    granted = ctl(state, "PUT", f"/vault/access/{sp}", {"permissions": ["GET", "list"]}).json()
    assert granted["permissions"] == ["get", "list"]
    assert ctl(state, "PUT", f"/vault/access/{sp}", {"permissions": ["read"]}).status == 400
    assert ctl(state, "PUT", f"/vault/access/{sp}", {"permissions": "get"}).status == 400
    listing = ctl(state, "GET", "/vault/access").json()["value"]
    assert {"principalId": sp, "permissions": ["get", "list"]} in listing
    assert ctl(state, "PUT", f"/vault/access/{sp}", {"permissions": []}).json()["permissions"] == []
    assert sp not in state.vault.access
    not_a_cert = ctl(state, "PUT", "/vault/secrets/new-cert", {"value": "x", "managed": True})
    assert not_a_cert.status == 400 and state.vault.latest("new-cert") is None
    pfx = state.app_certificate.pfx_base64()
    managed = ctl(state, "PUT", "/vault/secrets/new-cert", {"value": pfx, "managed": True}).json()
    assert managed["version"]["managed"] is True
    assert managed["version"]["exp"] is not None and managed["version"]["nbf"] is not None
    key_id = state.vault.latest("new-cert").key_id  # type: ignore[union-attr]
    assert str(key_id).endswith(f"/keys/new-cert/{managed['version']['version']}")


def test_reset_restores_the_seeded_vault(state: EmulatorState) -> None:
    state.vault.set("transient", "x")
    state.vault.access.clear()
    state.reset()
    assert state.vault.latest("transient") is None
    assert state.vault.allowed(state.ids.system_identity.sp_id, "get")
    assert state.vault.latest("disabled-secret").enabled is False  # type: ignore[union-attr]
    assert state.vault.latest("graph-functions-certificate").created <= dt.datetime.now(dt.UTC)  # type: ignore[union-attr]
