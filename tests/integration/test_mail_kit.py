"""Helpers of the mail and audit integration tests (no tests here): the seeded directory's mailbox owners by
role in the scope matrix, the audit records of a response, a delegated token.

The directory is read from the tenant's Graph with the app's own credential (real msal, the secret read from
the vault as the app reads it), so the tests follow the seed instead of hard-coding ids.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msal
import pytest
import requests

from tests.devhost.fixtures import DevHostProcess
from tests.integration.checks import call
from tests.integration.fixtures import Evidence, read_vault_secrets
from tests.support.apphost import CLIENT_SECRET_NAME, Caller, forge_token
from tests.support.tenant import LocalTenant


@dataclasses.dataclass(frozen=True)
class Directory:
    """Mailbox owners (lower-case UPNs) by their place in the scope matrix of MAILBOX_SCOPE = Report
    Readers."""

    readers: str  # the Report Readers group id
    member_upn: str  # the demo member: direct member of Report Readers and in Regional Managers
    direct_member: str  # a direct member of Report Readers, not nested
    nested_member: str  # a member of Regional Managers (nested in Report Readers) only
    outsider: str  # in neither
    cache_probe: str  # another direct or nested member, used by the cache test only
    no_mailbox: str  # a member with no mailbox (no licence)


def graph_get(tenant: LocalTenant, token: str, path: str, **params: str) -> Any:
    response = requests.get(
        f"{tenant.env['GRAPH_ENDPOINT']}/v1.0/{path}",
        params=params,
        headers={"Authorization": f"Bearer {token}", "ConsistencyLevel": "eventual"},
        verify=tenant.ca_cert,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()


def app_graph_token(tenant: LocalTenant, evidence: Evidence) -> str:
    secret = read_vault_secrets(tenant, (CLIENT_SECRET_NAME,))[CLIENT_SECRET_NAME]
    app = msal.ConfidentialClientApplication(
        tenant.env["ENTRA_CLIENT_ID"],
        client_credential=secret,
        authority=tenant.authority,
        instance_discovery=False,
    )
    result = app.acquire_token_for_client([f"{tenant.env['GRAPH_ENDPOINT']}/.default"])
    token = str(result["access_token"])
    evidence.tokens.append(token)
    return token


def _members(tenant: LocalTenant, token: str, group_id: str) -> list[dict[str, Any]]:
    body = graph_get(tenant, token, f"groups/{group_id}/members", **{"$top": "999"})
    return [m for m in body["value"] if m.get("@odata.type") == "#microsoft.graph.user"]


def directory_of(tenant: LocalTenant, evidence: Evidence) -> Directory:
    token = app_graph_token(tenant, evidence)
    groups = graph_get(tenant, token, "groups", **{"$top": "999"})["value"]
    by_name = {g["displayName"]: g["id"] for g in groups}
    readers, managers = by_name["Report Readers"], by_name["Regional Managers"]
    users = graph_get(
        tenant, token, "users", **{"$top": "999", "$select": "id,userPrincipalName,userType,mail"}
    )
    upn = {u["id"]: u["userPrincipalName"].lower() for u in users["value"]}
    direct = {m["id"] for m in _members(tenant, token, readers)}
    nested = {m["id"] for m in _members(tenant, token, managers)} - direct
    member = next(u for u in users["value"] if u["userPrincipalName"].startswith("member@"))
    with_mail = [u for u in users["value"] if u["userType"] == "Member" and u["mail"]]
    direct_only = sorted(upn[i] for i in direct if i != member["id"] and i in upn)
    outsiders = sorted(
        upn[u["id"]]
        for u in with_mail
        if u["id"] not in direct | nested | {member["id"]}
        and not upn[u["id"]].startswith(("admin@", "disabled@"))
    )
    return Directory(
        readers=readers,
        member_upn=member["userPrincipalName"].lower(),
        direct_member=direct_only[0],
        nested_member=sorted(upn[i] for i in nested)[0],
        outsider=outsiders[0],
        cache_probe=direct_only[1],
        no_mailbox=next(
            upn[u["id"]] for u in users["value"] if u["userPrincipalName"].startswith("nolicense@")
        ),
    )


def audit_records(host: DevHostProcess, reader: Caller, response: requests.Response) -> list[dict[str, Any]]:
    """The audit records of ``response`` (by its request id), read through ``GET /api/audit/mail``."""
    request_id = response.headers["x-request-id"]
    found: list[dict[str, Any]] = []
    params: dict[str, str] = {"top": "100"}
    for _ in range(10):
        page = call(host, "/api/audit/mail", reader.token(), params)
        assert page.status_code == 200, page.text
        body = page.json()
        found += [record for record in body["value"] if record["requestId"] == request_id]
        if found or body["nextCursor"] is None:
            return found
        params = {"cursor": body["nextCursor"]}
    return found


def forged_delegated_token(tenant: LocalTenant, *, roles: list[str]) -> str:
    """A correctly signed delegated token (``scp``) of a user holding ``roles`` for this API."""
    return forge_token(
        tenant, scp="access_as_user", roles=roles, preferred_username="member@contoso.onmicrosoft.com"
    )


@pytest.fixture(scope="module")
def directory(local_tenant: LocalTenant, evidence: Evidence) -> Directory:
    """The seeded directory's mailbox owners (a module fixture: import it by name)."""
    return directory_of(local_tenant, evidence)


def messages(host: DevHostProcess, token: str, mailbox: str, **params: str) -> requests.Response:
    """``GET /api/users/{mailbox}/messages`` with ``params``."""
    return call(host, f"/api/users/{mailbox}/messages", token, params)
