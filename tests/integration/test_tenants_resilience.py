"""Per-organisation app tokens under failure, through devhost, the local tenant and Azurite: Entra failing
for ONE organisation (a 5xx, a 429 with Retry-After, a dropped connection, latency past the timeout) is a
503 ``credential_unavailable`` with Retry-After for that organisation's callers only, costs Entra one
request however many of them arrive at once (single-flight and the held failure are per tenant), never
touches the home tenant's or another organisation's requests, and recovers when Entra does; and the
secretless mode: one managed-identity assertion serves every organisation's token request.
"""

from __future__ import annotations

import concurrent.futures
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devhost.azurite import Azurite
from tests.devhost.fixtures import DevHostProcess, wait_until
from tests.integration.checks import assert_error, call, wait_for_recovery
from tests.integration.fixtures import FreshHosts
from tests.integration.tenants_kit import browser, multi_tenant, onboard, outcome, register, start_multi_host
from tests.support.apphost import Caller, advance_app_clock, forge_token
from tests.support.tenant import LocalTenant

SETTINGS = {"ENTRA_TENANCY": "multi", "TENANTS_TABLE": "resiliencetenants", "GRAPH_TIMEOUT_SECONDS": "2"}
CONCURRENT = 8


class Orgs:
    def __init__(self, tenant: LocalTenant) -> None:
        env = tenant.env
        self.tenant = tenant
        self.customer = env["CUSTOMER_TENANT_ID"]
        self.other = next(
            str(o["tenantId"])
            for o in tenant.control("GET", "/tenants")["value"]
            if o["origin"] != "home" and o["tenantId"] != self.customer
        )
        self.caller = Caller(tenant)

    def token_of(self, tenant_id: str) -> str:
        oid = str(uuid.uuid4())
        return forge_token(
            self.tenant,
            tid=tenant_id,
            iss=f"{self.tenant.env['ENTRA_AUTHORITY_HOST']}/{tenant_id}/v2.0",
            azp=str(uuid.uuid4()),
            oid=oid,
            sub=oid,
            roles=["Users.Read.All"],
        )


@pytest.fixture(scope="module")
def mt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTenant]:
    with multi_tenant(Path(tmp_path_factory.mktemp("multi-tenant-resilience"))) as tenant:
        yield tenant


@pytest.fixture(scope="module")
def orgs(mt: LocalTenant, azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orgs]:
    """Both organisations onboarded (through the module's host, then stopped: each test starts cold)."""
    host = start_multi_host(
        Path(tmp_path_factory.mktemp("multi-host-resilience")), mt, azurite.connection_string, **SETTINGS
    )
    try:
        found = Orgs(mt)
        register(mt, host)
        for tid in (found.customer, found.other):
            admin = mt.control("GET", f"/tenants/{tid}")["admin"]
            page = onboard(browser(mt, host), str(admin["username"]), str(admin["password"]))
            assert outcome(page) == "onboarded", page.text[:500]
    finally:
        host.stop()
    yield found
    found.caller.close()


def _token_fault(mt: LocalTenant, tenant_id: str, **rule: Any) -> dict[str, Any]:
    body = {
        "service": "login",
        "method": "POST",
        "path": f"^/{tenant_id}/oauth2/v2.0/token$",
        "clientId": mt.env["ENTRA_CLIENT_ID"],
        **rule,
    }
    return dict(mt.control("POST", "/faults", body, expect=201))


def _fired(mt: LocalTenant, rule: dict[str, Any]) -> int:
    return int({r["id"]: r["fired"] for r in mt.control("GET", "/faults")["value"]}[rule["id"]])


@pytest.mark.parametrize(
    ("fault", "retry_after"),
    [
        ({"status": 503}, (1, 5)),
        ({"status": 429, "retryAfter": 7}, (6, 7)),
        ({"drop": True}, (1, 5)),
        ({"status": 503, "latencyMs": 4000}, (1, 10)),  # twice the 2 s attempt timeout
    ],
    ids=["5xx", "429-retry-after", "dropped", "latency"],
)
def test_entra_failing_for_one_organisation_fails_only_its_callers_then_recovers(
    mt: LocalTenant,
    orgs: Orgs,
    fresh_hosts: FreshHosts,
    fault: dict[str, Any],
    retry_after: tuple[int, int],
) -> None:
    seq = mt.last_seq()
    rule = _token_fault(mt, orgs.customer, **fault)
    try:
        host = fresh_hosts.start(mt, "tenant-outage", overrides=SETTINGS, dev_clock=True)
        customer = orgs.token_of(orgs.customer)
        with concurrent.futures.ThreadPoolExecutor(max_workers=CONCURRENT + 2) as pool:
            failing = [
                pool.submit(call, host, "/api/users", customer, {"top": "1"}) for _ in range(CONCURRENT)
            ]
            home = pool.submit(call, host, "/api/users", orgs.caller.token(), {"top": "1"})
            other = pool.submit(call, host, "/api/users", orgs.token_of(orgs.other), {"top": "1"})
            answers = [f.result() for f in failing]
            assert home.result().status_code == 200 and other.result().status_code == 200
        for response in answers:
            assert_error(response, 503, "credential_unavailable")
            low, high = retry_after
            assert low <= int(response.headers["Retry-After"]) <= high, response.headers["Retry-After"]
        assert _fired(mt, rule) == 1  # one token request for every caller of the organisation
        # The home tenant and the other organisation keep being served while the failure is held.
        assert call(host, "/api/users", orgs.token_of(orgs.other), {"top": "1"}).status_code == 200
    finally:
        mt.control("DELETE", "/faults")
    if "drop" in fault or "latencyMs" in fault:
        # No answer reached MSAL, so only the app holds the failure, for the Retry-After it answered and on
        # its clock: move that clock past it rather than sit through it. (MSAL holds an answered 5xx or 429
        # itself, on real time: a call in that hold would be refused again and held anew, so those cases
        # wait in real time as before.)
        advance_app_clock(host, max(int(response.headers["Retry-After"]) for response in answers))
    wait_for_recovery(host, orgs.token_of(orgs.customer), what="the customer's token again")
    # The tenant logs a request it held (latency) when it ends, after the app gave up on it: let it end
    # here, so that it is not logged inside the next test's window.
    wait_until(
        lambda: any(entry.get("fault") == rule["id"] for entry in mt.requests_since(seq, "login")),
        timeout=30,
        what="the tenant to finish the failed token request",
    )


def test_one_managed_identity_assertion_serves_every_organisation(
    mt: LocalTenant, orgs: Orgs, fresh_hosts: FreshHosts
) -> None:
    seq = mt.last_seq()
    host: DevHostProcess = fresh_hosts.start(
        mt,
        "tenant-mi",
        overrides={
            **SETTINGS,
            "ENTRA_CREDENTIAL": "managed-identity",
            "KEY_VAULT_URL": "",
            "ENTRA_CREDENTIAL_NAME": "",
            "ENTRA_MANAGED_IDENTITY_CLIENT_ID": mt.env["EMULATOR_MANAGED_IDENTITY_CLIENT_ID"],
        },
    )
    for token in (orgs.caller.token(), orgs.token_of(orgs.customer), orgs.token_of(orgs.other)):
        response = call(host, "/api/users", token, {"top": "1"})
        assert response.status_code == 200, response.text[:300]
    entries = mt.requests_since(seq)
    assert [e for e in entries if e["service"] == "vault"] == []
    assert len([e for e in entries if e["service"] == "identity"]) == 1  # one assertion for all three
    app_id = mt.env["ENTRA_CLIENT_ID"].lower()
    tokens = [
        e
        for e in entries
        if e["service"] == "login"
        and str(e["path"]).endswith("/oauth2/v2.0/token")
        and str(e.get("client_id") or "").lower() == app_id
    ]
    realms = sorted(str(e["path"]).split("/")[1] for e in tokens)
    assert realms == sorted([mt.env["ENTRA_TENANT_ID"], orgs.customer, orgs.other])
    assert {(e["client_auth"], e["status"]) for e in tokens} == {("federated", 200)}
