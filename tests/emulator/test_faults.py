"""The fault API's ``clientId``: a rule fails only the client the service itself sees.

Real clients over real sockets: msal for two apps (the caller with its secret, Graph Functions with a
certificate assertion), requests for HTTP Basic, an assertion-only form and a chunked body, azure-identity
for the two managed identities, requests for the vault. No fault rule here uses the
test header, except the one test that proves it still works.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import jwt
import msal
import pytest
import requests
from azure.identity import ManagedIdentityCredential
from msal.exceptions import MsalServiceError

from tests.emulator.entra_flow import JWT_BEARER, assertion, graph_functions_app
from tests.emulator.test_identity import FOREIGN_VARS
from tests.support.tenant import LocalTenant

TOKEN_PATH = r"/oauth2/v2.0/token$"


def add_fault(tenant: LocalTenant, **rule: Any) -> dict[str, Any]:
    return dict(tenant.control("POST", "/faults", rule, expect=201))


def fired(tenant: LocalTenant, rule: dict[str, Any]) -> int:
    return next(int(r["fired"]) for r in tenant.control("GET", "/faults")["value"] if r["id"] == rule["id"])


def caller_app(tenant: LocalTenant) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        tenant.env["CALLER_CLIENT_ID"],
        client_credential=tenant.env["CALLER_CLIENT_SECRET"],
        authority=tenant.authority,
        instance_discovery=False,
    )


def graph_scope(tenant: LocalTenant) -> list[str]:
    return [f"{tenant.env['GRAPH_ENDPOINT']}/.default"]


def api_scope(tenant: LocalTenant) -> list[str]:
    return [f"api://{tenant.env['ENTRA_CLIENT_ID']}/.default"]


def token_url(tenant: LocalTenant) -> str:
    return f"{tenant.authority}/oauth2/v2.0/token"


def token_posts(tenant: LocalTenant, seq: int) -> list[dict[str, Any]]:
    return [e for e in tenant.requests_since(seq, "login") if e["method"] == "POST"]


def test_token_fault_for_one_client_fails_only_that_clients_requests(fresh: LocalTenant) -> None:
    app_id, caller_id = fresh.env["ENTRA_CLIENT_ID"], fresh.env["CALLER_CLIENT_ID"]
    rule = add_fault(fresh, service="login", path=TOKEN_PATH, status=503, retryAfter=7, clientId=app_id)
    seq = fresh.last_seq()

    with pytest.raises(MsalServiceError, match="HTTP Error: 503"):  # msal raises on a 5xx
        graph_functions_app(fresh).acquire_token_for_client(graph_scope(fresh))  # certificate assertion
    caller = caller_app(fresh).acquire_token_for_client(api_scope(fresh))  # client secret

    assert caller.get("token_type") == "Bearer" and caller.get("access_token")
    posts = token_posts(fresh, seq)
    assert {e["client_id"] for e in posts if e["fault"] == rule["id"]} == {app_id}
    assert [e["status"] for e in posts if e["client_id"] == caller_id] == [200]
    assert fired(fresh, rule) == len([e for e in posts if e["client_id"] == app_id]) >= 1


def test_token_fault_for_the_caller_leaves_the_apps_certificate_flow_alone(fresh: LocalTenant) -> None:
    rule = add_fault(
        fresh,
        service="login",
        path=TOKEN_PATH,
        status=429,
        retryAfter=5,
        clientId=fresh.env["CALLER_CLIENT_ID"],
    )

    caller = caller_app(fresh).acquire_token_for_client(api_scope(fresh))
    own = graph_functions_app(fresh).acquire_token_for_client(graph_scope(fresh))

    assert "access_token" not in caller and caller.get("error") == "temporarily_unavailable"
    assert "AADSTS50196" in caller.get("error_description", "")
    assert own.get("access_token") and fired(fresh, rule) >= 1


def test_client_id_matches_case_insensitively(fresh: LocalTenant) -> None:
    add_fault(fresh, service="login", path=TOKEN_PATH, clientId=fresh.env["CALLER_CLIENT_ID"].upper())
    with pytest.raises(MsalServiceError, match="HTTP Error: 503"):
        caller_app(fresh).acquire_token_for_client(api_scope(fresh))


def test_http_basic_client_is_matched_and_logged(fresh: LocalTenant) -> None:
    caller_id = fresh.env["CALLER_CLIENT_ID"]
    basic = base64.b64encode(f"{caller_id}:{fresh.env['CALLER_CLIENT_SECRET']}".encode()).decode()
    form = {"grant_type": "client_credentials", "scope": api_scope(fresh)[0]}
    headers = {"Authorization": f"Basic {basic}"}
    seq = fresh.last_seq()
    ok = requests.post(token_url(fresh), data=form, headers=headers, timeout=10)
    assert ok.status_code == 200, ok.text

    rule = add_fault(fresh, service="login", path=TOKEN_PATH, status=503, clientId=caller_id)
    failed = requests.post(token_url(fresh), data=form, headers=headers, timeout=10)

    assert failed.status_code == 503 and failed.json()["error"] == "temporarily_unavailable"
    posts = token_posts(fresh, seq)
    assert [(e["client_id"], e["fault"]) for e in posts] == [(caller_id, None), (caller_id, rule["id"])]


def test_assertion_without_client_id_is_matched_by_its_issuer(fresh: LocalTenant) -> None:
    app_id = fresh.env["ENTRA_CLIENT_ID"]
    rule = add_fault(fresh, service="login", path=TOKEN_PATH, status=503, clientId=app_id)
    seq = fresh.last_seq()
    resp = requests.post(
        token_url(fresh),
        data={
            "grant_type": "client_credentials",
            "scope": graph_scope(fresh)[0],
            "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion(fresh),
        },
        timeout=10,
    )
    assert resp.status_code == 503, resp.text
    (entry,) = token_posts(fresh, seq)
    assert entry["client_id"] == app_id and entry["fault"] == rule["id"]


def test_a_chunked_token_request_body_reaches_the_endpoint_whole(fresh: LocalTenant) -> None:
    """The middleware reads every body message to find the client, then replays them to Entra."""
    caller_id = fresh.env["CALLER_CLIENT_ID"]
    body = urlencode(
        {
            "client_id": caller_id,
            "client_secret": fresh.env["CALLER_CLIENT_SECRET"],
            "grant_type": "client_credentials",
            "scope": api_scope(fresh)[0],
        }
    ).encode()
    pieces = [body[i : i + 7] for i in range(0, len(body), 7)]  # no Content-Length: chunked encoding
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    seq = fresh.last_seq()

    ok = requests.post(token_url(fresh), data=iter(pieces), headers=headers, timeout=10)
    rule = add_fault(fresh, service="login", path=TOKEN_PATH, status=503, clientId=caller_id)
    failed = requests.post(token_url(fresh), data=iter(pieces), headers=headers, timeout=10)

    assert ok.status_code == 200 and ok.json()["access_token"], ok.text
    assert ok.request.headers.get("Transfer-Encoding") == "chunked"
    assert failed.status_code == 503
    posts = token_posts(fresh, seq)
    assert [(e["client_id"], e["fault"]) for e in posts] == [(caller_id, None), (caller_id, rule["id"])]


def test_graph_fault_for_one_apps_token_leaves_the_other_apps_calls_alone(fresh: LocalTenant) -> None:
    own = graph_functions_app(fresh).acquire_token_for_client(graph_scope(fresh))["access_token"]
    caller = caller_app(fresh).acquire_token_for_client(graph_scope(fresh))["access_token"]
    users = f"{fresh.env['GRAPH_ENDPOINT']}/v1.0/users"

    def get(token: str) -> requests.Response:
        return requests.get(
            users, params={"$top": "1"}, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

    caller_before = get(caller)  # the caller holds no Graph permission: Graph's own 403
    rule = add_fault(
        fresh,
        service="graph",
        path=r"^/v1\.0/users",
        status=503,
        retryAfter=3,
        clientId=fresh.env["CALLER_CLIENT_ID"],
    )
    seq = fresh.last_seq()
    caller_during, own_during = get(caller), get(own)

    assert caller_before.status_code == 403
    assert caller_during.status_code == 503 and caller_during.headers["Retry-After"] == "3"
    assert own_during.status_code == 200 and len(own_during.json()["value"]) == 1
    graph = fresh.requests_since(seq, "graph")
    assert [(e["client_id"], e["fault"]) for e in graph] == [
        (fresh.env["CALLER_CLIENT_ID"], rule["id"]),
        (fresh.env["ENTRA_CLIENT_ID"], None),
    ]


@pytest.fixture
def mi_env(fresh: LocalTenant, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalTenant]:
    for name in FOREIGN_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", fresh.env["IDENTITY_ENDPOINT"])
    monkeypatch.setenv("IDENTITY_HEADER", fresh.env["IDENTITY_HEADER"])
    yield fresh


def system_identity_id(tenant: LocalTenant) -> str:
    token = ManagedIdentityCredential().get_token("https://vault.azure.net/.default").token
    return str(jwt.decode(token, options={"verify_signature": False})["appid"])


def test_identity_endpoint_fault_for_the_user_assigned_identity_only(mi_env: LocalTenant) -> None:
    user_mi = mi_env.env["EMULATOR_MANAGED_IDENTITY_CLIENT_ID"]
    rule = add_fault(mi_env, service="identity", path="^/msi/token", status=500, clientId=user_mi)
    seq = mi_env.last_seq()

    with pytest.raises(Exception, match="Injected fault"):
        ManagedIdentityCredential(client_id=user_mi).get_token("https://vault.azure.net/.default")
    system = ManagedIdentityCredential().get_token("https://vault.azure.net/.default")

    assert system.token and fired(mi_env, rule) >= 1
    log = mi_env.requests_since(seq, "identity")
    assert {e["client_id"] for e in log if e["fault"] == rule["id"]} == {user_mi}
    assert all(e["fault"] is None for e in log if e["client_id"] != user_mi)


def test_identity_endpoint_fault_for_the_system_identity_by_its_app_id(mi_env: LocalTenant) -> None:
    system_id = system_identity_id(mi_env)
    rule = add_fault(mi_env, service="identity", path="^/msi/token", status=500, clientId=system_id)

    with pytest.raises(Exception, match="Injected fault"):
        ManagedIdentityCredential().get_token("https://graph.microsoft.com/.default")
    user_mi = mi_env.env["EMULATOR_MANAGED_IDENTITY_CLIENT_ID"]
    assert ManagedIdentityCredential(client_id=user_mi).get_token("https://vault.azure.net/.default").token
    assert fired(mi_env, rule) >= 1


def test_vault_fault_for_one_identitys_token(mi_env: LocalTenant) -> None:
    """requests, not SecretClient: the SDK's challenge cache is per process and would change what
    test_vault.py sees first."""
    user_mi = mi_env.env["EMULATOR_MANAGED_IDENTITY_CLIENT_ID"]
    url = f"{mi_env.env['KEY_VAULT_URL']}secrets/{mi_env.env['ENTRA_CREDENTIAL_NAME']}"

    def get_secret(credential: ManagedIdentityCredential) -> requests.Response:
        token = credential.get_token("https://vault.azure.net/.default").token
        return requests.get(
            url, params={"api-version": "7.6"}, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

    rule = add_fault(mi_env, service="vault", path="^/secrets/", status=503, clientId=user_mi)
    seq = mi_env.last_seq()
    failed = get_secret(ManagedIdentityCredential(client_id=user_mi))
    ok = get_secret(ManagedIdentityCredential())

    assert failed.status_code == 503 and failed.json()["error"]["code"] == "ServiceUnavailable"
    assert ok.status_code == 200 and ok.json()["value"]
    vault = mi_env.requests_since(seq, "vault")
    assert [(e["client_id"], e["fault"]) for e in vault] == [
        (user_mi, rule["id"]),
        (system_identity_id(mi_env), None),
    ]


@pytest.mark.parametrize("key", ["clientId", "service", "method"])
def test_a_rule_with_a_non_string_selector_is_refused(fresh: LocalTenant, key: str) -> None:
    body = fresh.control("POST", "/faults", {"path": "/", key: 42}, expect=400)
    assert body["error"]["message"] == f"{key} must be a string"
    assert fresh.control("GET", "/faults")["value"] == []
    token = caller_app(fresh).acquire_token_for_client(api_scope(fresh))  # requests still answered
    assert token.get("access_token")


def test_the_test_header_still_matches(fresh: LocalTenant) -> None:
    add_fault(fresh, service="graph", path="^/v1.0/users", status=503, clientId="header-client")
    token = graph_functions_app(fresh).acquire_token_for_client(graph_scope(fresh))["access_token"]
    users = f"{fresh.env['GRAPH_ENDPOINT']}/v1.0/users"
    plain = requests.get(users, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    tagged = requests.get(
        users,
        headers={"Authorization": f"Bearer {token}", "x-emulator-client-id": "header-client"},
        timeout=10,
    )
    assert plain.status_code == 200 and tagged.status_code == 503


@pytest.mark.parametrize(
    ("rule", "status"),
    [
        ({"latencyMs": 300}, 200),  # a slow service: delayed, then answered
        ({"latencyMs": 300, "status": 503}, 503),  # a slow failure
        ({"latencyMs": 300, "status": 0}, 200),
        ({}, 503),  # no latency, no status: the default failure
    ],
    ids=["latency-only-passes", "latency-and-503", "latency-and-status-0", "bare-rule-fails"],
)
def test_a_latency_rule_without_a_status_lets_the_request_through_after_its_delay(
    fresh: LocalTenant, rule: dict[str, Any], status: int
) -> None:
    """A timeout test posts ``latencyMs`` alone: if that also failed the request (the old default 503), a
    client that never timed out would still see its failure, and the test could not tell."""
    added = add_fault(fresh, service="login", path=r"/v2\.0/\.well-known/openid-configuration$", **rule)
    seq = fresh.last_seq()
    response = requests.get(f"{fresh.authority}/v2.0/.well-known/openid-configuration", timeout=10)
    assert response.status_code == status
    assert fired(fresh, added) == 1
    [entry] = [e for e in fresh.requests_since(seq, "login") if "openid-configuration" in e["path"]]
    assert entry["status"] == status
    if "latencyMs" in rule:
        assert entry["duration_ms"] >= 300  # the tenant held it (its own measure of the request)
