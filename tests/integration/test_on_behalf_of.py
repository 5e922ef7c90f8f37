"""Callers holding a person's token, through the real host, the app's real MSAL and the local tenant: every
validation rule before an exchange, the exchange's cache and single-flight, Graph's CAE challenge, a
session's own mail. Entra's refusals and outages: tests/integration/test_obo_failures.py.

A person's token is the single-page client's (``SPA_CLIENT_ID``) for ``api://{app}/access_as_user``
(``LocalTenant.person_token``); negative cases change one claim of a token signed with the tenant's own key
(``forge_token``). Exchanges are counted in the tenant's request log (grant type ``jwt-bearer``). A host
keeps the Graph tokens it obtained, so tests whose counts depend on a cold cache start their own host.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.devhost.fixtures import DevHostProcess
from tests.integration.checks import assert_error, call
from tests.integration.fixtures import Evidence, FreshHosts
from tests.integration.test_signin_kit import web_browser
from tests.support.apphost import Caller, forge_token
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.integration

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GRAPH = "https://graph.microsoft.com"


#: Every token these tests send to the app: the session's log scan checks none reaches a log.
ISSUED: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def _issued_tokens_are_evidence(evidence: Evidence) -> Iterator[None]:
    yield
    evidence.tokens.extend(ISSUED)


def issue(tenant: LocalTenant, **options: Any) -> str:
    """A person's token for the API (``LocalTenant.person_token``), recorded for the log scan."""
    token = tenant.person_token(**options)
    ISSUED.append(token)
    return token


def exchanges(tenant: LocalTenant, since: int) -> list[dict[str, Any]]:
    """The app's on-behalf-of requests to the token endpoint since ``since``."""
    return [e for e in tenant.requests_since(since, "login") if e.get("grant_type") == JWT_BEARER]


def graph_calls(tenant: LocalTenant, since: int) -> list[dict[str, Any]]:
    return tenant.requests_since(since, "graph")


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def person_claims(tenant: LocalTenant, **changes: Any) -> dict[str, Any]:
    """The claims of a real person's token with ``changes`` (None removes a claim)."""
    claims = claims_of(issue(tenant, capabilities=["CP1"]))
    claims.update(changes)
    return {key: value for key, value in claims.items() if value is not None}


def forged(tenant: LocalTenant, **changes: Any) -> str:
    token = forge_token(tenant, **{**person_claims(tenant, **changes), "roles": None})
    ISSUED.append(token)
    return token


def challenge_params(response: requests.Response) -> dict[str, str]:
    return dict(re.findall(r'([A-Za-z_]+)="([^"]*)"', response.headers["WWW-Authenticate"]))


def policy(tenant: LocalTenant, control: str) -> None:
    """A Conditional Access policy for the demo member that applies to the app's exchanges only."""
    body = {
        "control": control,
        "userId": tenant.env["DEMO_USER_USERNAME"],
        "clientId": tenant.env["ENTRA_CLIENT_ID"],
    }
    tenant.control("POST", "/entra/conditional-access", body, expect=201)


def grant(tenant: LocalTenant, *scopes: str) -> None:
    """The demo member consents to the app using ``scopes`` on their behalf (the tenant's admin consent
    covers User.Read only)."""
    tenant.control(
        "POST",
        f"/apps/{tenant.env['ENTRA_CLIENT_ID']}/consent/grant",
        {"resource": GRAPH, "scopes": list(scopes), "userId": tenant.env["DEMO_USER_USERNAME"]},
        expect=201,
    )


# -- validation before any exchange ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "status", "code"),
    [
        ({"aud": GRAPH}, 401, "unauthenticated"),  # a token for Graph: rejected, never exchanged
        ({"aud": "SPA"}, 401, "unauthenticated"),  # a token for the client app itself
        ({"iss": "https://login.example.test/{tid}/v2.0"}, 401, "unauthenticated"),
        ({"tid": "99999999-9999-9999-9999-999999999999"}, 401, "unauthenticated"),
        ({"idtyp": "app"}, 401, "unauthenticated"),
        ({"sub": "OID"}, 401, "unauthenticated"),  # oid == sub: not positively a person
        ({"exp": 1}, 401, "unauthenticated"),
        ({"scp": "User.Read"}, 403, "insufficient_scope"),
    ],
    ids=[
        "graph-audience",
        "spa-audience",
        "other-issuer",
        "other-tenant",
        "idtyp-app",
        "sub-is-oid",
        "expired",
        "scope",
    ],
)
def test_each_validation_rule_refuses_before_any_exchange(
    app_host: DevHostProcess, local_tenant: LocalTenant, changes: dict[str, Any], status: int, code: str
) -> None:
    env = local_tenant.env
    resolved = {
        key: (
            env["SPA_CLIENT_ID"]
            if value == "SPA"
            else value.replace("{tid}", env["ENTRA_TENANT_ID"])
            if isinstance(value, str) and "{tid}" in value
            else value
        )
        for key, value in changes.items()
    }
    if resolved.get("sub") == "OID":
        resolved["sub"] = person_claims(local_tenant)["oid"]
    seq = local_tenant.last_seq()
    response = call(app_host, "/api/me", forged(local_tenant, **resolved))
    assert_error(response, status, code)
    assert exchanges(local_tenant, seq) == [] and graph_calls(local_tenant, seq) == []


def test_services_and_people_keep_their_routes(
    app_host: DevHostProcess, local_tenant: LocalTenant, caller: Caller
) -> None:
    seq = local_tenant.last_seq()
    person = issue(local_tenant)
    assert_error(call(app_host, "/api/me", caller.token()), 403, "caller_kind_not_allowed")
    user_id = claims_of(person)["oid"]
    assert_error(call(app_host, f"/api/users/{user_id}", person), 403, "caller_kind_not_allowed")
    assert_error(call(app_host, "/api/reports/users/latest", person), 403, "caller_kind_not_allowed")
    assert exchanges(local_tenant, seq) == []


def test_the_client_allow_list(fresh_hosts: FreshHosts, tenant: LocalTenant) -> None:
    caller_app = tenant.env["CALLER_CLIENT_ID"]
    host = fresh_hosts.start(tenant, "obo-allow-list", overrides={"API_ALLOWED_CLIENT_APPS": caller_app})
    seq = tenant.last_seq()
    assert_error(call(host, "/api/me", issue(tenant)), 403, "client_app_not_allowed")
    assert exchanges(tenant, seq) == []


# -- the exchange and its cache ---------------------------------------------------------------------


def test_one_exchange_per_person_and_scope_set_shared_by_concurrent_first_calls(
    fresh_hosts: FreshHosts, tenant: LocalTenant
) -> None:
    host = fresh_hosts.start(tenant, "obo-cache")
    token = issue(tenant)
    seq = tenant.last_seq()
    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda _: call(host, "/api/me", token), range(10)))
    assert {a.status_code for a in answers} == {200}, [a.text for a in answers if a.status_code != 200]
    person = claims_of(token)
    assert {a.json()["id"] for a in answers} == {person["oid"]}
    (exchange,) = exchanges(tenant, seq)  # ten first calls, one exchange
    assert str(exchange["client_id"]).lower() == tenant.env["ENTRA_CLIENT_ID"].lower()
    warm = tenant.last_seq()
    assert call(host, "/api/me", token).status_code == 200
    assert exchanges(tenant, warm) == [] and len(graph_calls(tenant, warm)) == 1  # warm: Graph only
    assert call(host, "/api/me", issue(tenant)).status_code == 200  # the person's next token
    assert exchanges(tenant, warm) == []
    grant(tenant, "Mail.Read", "User.ReadBasic.All")
    mail = call(host, "/api/me/messages", token, {"top": "3"})
    assert mail.status_code == 200 and len(mail.json()["value"]) == 3, mail.text
    dates = [m["receivedDateTime"] for m in mail.json()["value"]]
    assert dates == sorted(dates, reverse=True)
    assert len(exchanges(tenant, warm)) == 1  # another scope set: its own token
    users = call(host, "/api/users", token, {"top": "2"})
    assert users.status_code == 200 and len(users.json()["value"]) == 2
    assert len(exchanges(tenant, warm)) == 2
    sharepoint = call(host, "/api/me/sharepoint", token)  # another resource: SharePoint's AllSites.Read
    assert (
        sharepoint.status_code == 200
        and sharepoint.json()["Email"].lower() == tenant.env["DEMO_USER_USERNAME"].lower()
    )
    assert call(host, "/api/me/sharepoint", token).status_code == 200
    assert len(exchanges(tenant, warm)) == 3


def test_graphs_cae_challenge_is_answered_with_a_new_exchange(
    fresh_hosts: FreshHosts, tenant: LocalTenant
) -> None:
    """The app's Graph tokens are CAE tokens (it declares CP1): after a critical event Graph refuses the
    cached one with a claims challenge, and the app exchanges again with the claims, unseen by the caller."""
    host = fresh_hosts.start(tenant, "obo-cae")
    tenant.freeze_clock()
    token = issue(tenant, capabilities=["CP1"])
    assert call(host, "/api/me", token).status_code == 200
    tenant.advance_clock(2)
    tenant.control("POST", f"/users/{tenant.env['DEMO_USER_USERNAME']}/cae-event", {})
    seq = tenant.last_seq()
    again = call(host, "/api/me", token)
    graph = [e["status"] for e in graph_calls(tenant, seq)]
    sent = exchanges(tenant, seq)
    assert again.status_code == 200, again.text
    assert graph == [401, 200] and len(sent) == 1  # the challenge, one exchange with the claims, the retry


def test_own_mail_on_a_session_cookie(app_host: DevHostProcess, tenant: LocalTenant) -> None:
    """The people signed in to the pages read their own mail too: Mail.Read comes from the sign-in's
    refresh token once consented (Entra asks for the consent first). MSAL keeps Entra's refusal of that
    refresh for 60 s (keyed by the request), so the consented read is a new sign-in's."""
    account = (tenant.env["DEMO_USER_USERNAME"], tenant.env["DEMO_USER_PASSWORD"])
    with web_browser(tenant, app_host) as web:
        web.sign_in(*account)
        assert_error(web.get("/api/me/messages"), 401, "interaction_required")
    grant(tenant, "Mail.Read")
    with web_browser(tenant, app_host) as web:
        web.sign_in(*account)
        mail = web.get("/api/me/messages", params={"top": "2"})
        assert mail.status_code == 200 and len(mail.json()["value"]) == 2, mail.text
