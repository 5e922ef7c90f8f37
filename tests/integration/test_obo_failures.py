"""Callers holding a person's token when Entra refuses or fails the exchange, through the real host, the
app's real MSAL and the local tenant: consent, MFA (a claims challenge for a cp1 client, a 403 for others),
a Conditional Access block, a revoked session, a CAE event; and an Entra outage (5xx, 429 with Retry-After,
a dropped connection, an answer slower than the timeout) with four concurrent callers, then recovery.

Helpers and the evidence of the tokens sent: tests/integration/test_on_behalf_of.py.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.devhost.fixtures import DevHostProcess, wait_until
from tests.integration.checks import assert_error, call
from tests.integration.fixtures import AppHosts
from tests.integration.test_on_behalf_of import (
    GRAPH,
    _issued_tokens_are_evidence,  # noqa: F401 - the module's autouse fixture: tokens sent are evidence
    challenge_params,
    exchanges,
    issue,
    policy,
)
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def refusing_host(app_hosts: AppHosts, local_tenant: LocalTenant) -> Iterator[DevHostProcess]:
    """A host that never obtains a Graph token for the demo member (every exchange in its tests is
    refused), so no cached token hides a refusal."""
    host = app_hosts.start(local_tenant, "obo-refusals")
    yield host
    app_hosts.stop([host])


# -- each refusal of an exchange ------------------------------------------------------------------


def test_missing_consent_is_consent_required_with_the_hint(
    refusing_host: DevHostProcess, tenant: LocalTenant
) -> None:
    response = call(refusing_host, "/api/me/messages", issue(tenant, capabilities=["CP1"]))
    assert_error(response, 403, "consent_required")
    params = challenge_params(response)
    assert params["proposedAction"] == "consent" and params["scopes"].endswith("/Mail.Read")
    assert params["consentUri"].startswith(f"{tenant.authority}/oauth2/v2.0/authorize?client_id=")


@pytest.mark.parametrize("control", ["mfa", "mfaRegistration"])
def test_mfa_is_a_claims_challenge_for_a_cp1_client_and_a_403_for_others(
    refusing_host: DevHostProcess, tenant: LocalTenant, control: str
) -> None:
    policy(tenant, control)
    response = call(refusing_host, "/api/me", issue(tenant, capabilities=["CP1"]))
    assert_error(response, 401, "insufficient_claims")
    params = challenge_params(response)
    assert params["error"] == "insufficient_claims" and params["realm"] == ""
    assert params["authorization_uri"] == f"{tenant.authority}/oauth2/v2.0/authorize"
    claims = json.loads(base64.b64decode(params["claims"]))
    assert claims["access_token"]["capolids"]["essential"] is True  # Entra's claims, handed on as they came
    plain = call(refusing_host, "/api/me", issue(tenant))
    assert_error(plain, 403, "step_up_required")
    assert "claims=" not in plain.headers["WWW-Authenticate"]


def test_a_conditional_access_block(refusing_host: DevHostProcess, tenant: LocalTenant) -> None:
    policy(tenant, "block")
    response = call(refusing_host, "/api/me", issue(tenant, capabilities=["CP1"]))
    assert_error(response, 403, "conditional_access_blocked")


def test_a_revoked_session_and_a_cae_event(refusing_host: DevHostProcess, tenant: LocalTenant) -> None:
    tenant.freeze_clock()
    before = issue(tenant, capabilities=["CP1"])
    tenant.advance_clock(2)
    tenant.control("POST", f"/users/{tenant.env['DEMO_USER_USERNAME']}/refresh-tokens/revoke")
    assert_error(call(refusing_host, "/api/me", before), 401, "token_revoked")
    tenant.advance_clock(2)
    issued = issue(tenant, capabilities=["CP1"])
    tenant.advance_clock(2)
    tenant.control("POST", f"/users/{tenant.env['DEMO_USER_USERNAME']}/cae-event", {})
    response = call(refusing_host, "/api/me", issued)
    assert_error(response, 401, "insufficient_claims")
    claims = json.loads(base64.b64decode(challenge_params(response)["claims"]))
    assert claims["access_token"]["nbf"]["essential"] is True


# -- Entra failing ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def outage_host(app_hosts: AppHosts, local_tenant: LocalTenant) -> Iterator[DevHostProcess]:
    """One host for the outage cases, each on its own person and scope set (so none finds a cached token),
    with a 2 s timeout for the slow case."""
    host = app_hosts.start(local_tenant, "obo-outage", overrides={"GRAPH_TIMEOUT_SECONDS": "2"})
    yield host
    app_hosts.stop([host])


@pytest.mark.parametrize(
    ("fault", "retry_after", "admin", "path"),
    [
        ({"status": 503, "retryAfter": 2}, (1, 2), False, "/api/me"),
        ({"status": 429, "retryAfter": 3}, (1, 3), True, "/api/me"),
        ({"drop": True}, (1, 5), False, "/api/me/messages"),
        ({"latencyMs": 3000, "status": 503}, (1, 5), True, "/api/me/messages"),  # past the 2 s timeout
    ],
    ids=["5xx", "429-retry-after", "dropped", "slow"],
)
def test_four_concurrent_callers_during_an_entra_outage_then_recovery(
    outage_host: DevHostProcess,
    tenant: LocalTenant,
    fault: dict[str, Any],
    retry_after: tuple[int, int],
    admin: bool,
    path: str,
) -> None:
    host = outage_host
    who = "DEMO_ADMIN_USERNAME" if admin else "DEMO_USER_USERNAME"
    tenant.control(
        "POST",
        f"/apps/{tenant.env['ENTRA_CLIENT_ID']}/consent/grant",
        {"resource": GRAPH, "scopes": ["Mail.Read"], "userId": tenant.env[who]},
        expect=201,
    )
    token = issue(tenant, admin=admin)
    seq = tenant.last_seq()
    rule = tenant.control(
        "POST",
        "/faults",
        {
            "service": "login",
            "method": "POST",
            "path": r"/oauth2/v2\.0/token$",
            "clientId": tenant.env["ENTRA_CLIENT_ID"],
            **fault,
        },
        expect=201,
    )
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: call(host, path, token, timeout=60), range(4)))
    for response in answers:
        error = assert_error(response, 503, "credential_unavailable")
        assert retry_after[0] <= int(response.headers["Retry-After"]) <= retry_after[1]
        assert "AADSTS" not in error["message"]
    fired = {f["id"]: f["fired"] for f in tenant.control("GET", "/faults")["value"]}[rule["id"]]
    assert fired == 1  # one exchange for the four callers; the failure is held for the others
    tenant.control("DELETE", "/faults")
    statuses: list[int] = []

    def recovered() -> bool:
        response = call(host, path, token)
        statuses.append(response.status_code)
        if response.status_code != 200:
            assert_error(response, 503, "credential_unavailable")  # held until the hold ends, then served
        return response.status_code == 200

    wait_until(recovered, timeout=30, what="the exchange to work again")
    assert statuses[-1] == 200 and len(exchanges(tenant, seq)) >= 1
