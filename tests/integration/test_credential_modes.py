"""The app's own credential in each supported form, from a cold host: certificate as PFX and as PEM from
Key Vault, and the secretless managed-identity federated assertion (system- and user-assigned).

What the tenant log can show is checked there (which vault entry was read, grant type, how the app
authenticated at the token endpoint, the identity endpoint asked for api://AzureADTokenExchange, no vault
at all in managed-identity mode); what only the app knows (certificate thumbprint) is checked in its log.
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qs

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.integration.checks import call, list_all
from tests.integration.fixtures import FreshHosts
from tests.support.apphost import CERTIFICATE_PEM, CERTIFICATE_PFX, Caller
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.integration


def _app_certificate_thumbprint(tenant: LocalTenant) -> str:
    pem = (tenant.state_dir / "apps" / "graph-functions.pem").read_bytes()
    cert = x509.load_pem_x509_certificates(pem)[0]
    return hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest()  # noqa: S324 - thumbprint


def _token_requests(entries: list[dict[str, object]], client_id: str) -> list[dict[str, object]]:
    return [
        entry
        for entry in entries
        if entry["service"] == "login"
        and entry["method"] == "POST"
        and str(entry["path"]).endswith("/oauth2/v2.0/token")
        and entry["client_id"] == client_id
    ]


@pytest.mark.parametrize("credential_name", [CERTIFICATE_PFX, CERTIFICATE_PEM], ids=["pfx", "pem"])
def test_certificate_from_key_vault(
    fresh_hosts: FreshHosts, local_tenant: LocalTenant, caller: Caller, credential_name: str
) -> None:
    seq = local_tenant.last_seq()
    host = fresh_hosts.start(
        local_tenant, credential_name, overrides={"ENTRA_CREDENTIAL_NAME": credential_name}
    )
    users, _ = list_all(host, caller.token(), {"top": "100"})
    assert len(users) == 250

    entries = local_tenant.requests_since(seq)
    vault_reads = [
        (e["path"], e["status"]) for e in entries if e["service"] == "vault" and e["status"] == 200
    ]
    assert vault_reads == [(f"/secrets/{credential_name}/", 200)]  # that entry, once, and no other
    tokens = _token_requests(entries, local_tenant.env["ENTRA_CLIENT_ID"])
    assert [(t["grant_type"], t["client_auth"], t["status"]) for t in tokens] == [
        ("client_credentials", "private_key_jwt", 200)
    ]
    thumbprint = _app_certificate_thumbprint(local_tenant)
    assert f"certificate thumbprint={thumbprint}" in host.log()


@pytest.mark.parametrize("identity", ["system-assigned", "user-assigned"])
def test_managed_identity_federated_assertion_needs_no_vault(
    fresh_hosts: FreshHosts, local_tenant: LocalTenant, caller: Caller, identity: str
) -> None:
    overrides = {"ENTRA_CREDENTIAL": "managed-identity", "KEY_VAULT_URL": "", "ENTRA_CREDENTIAL_NAME": ""}
    mi_client_id = local_tenant.env["EMULATOR_MANAGED_IDENTITY_CLIENT_ID"]
    if identity == "user-assigned":
        overrides["ENTRA_MANAGED_IDENTITY_CLIENT_ID"] = mi_client_id
    seq = local_tenant.last_seq()
    host = fresh_hosts.start(local_tenant, f"mi-{identity}", overrides=overrides)
    users, _ = list_all(host, caller.token(), {"top": "100"})
    assert len(users) == 250
    assert call(host, f"/api/users/{users[0]['id']}", caller.token()).json() == users[0]

    entries = local_tenant.requests_since(seq)
    assert [e for e in entries if e["service"] == "vault"] == []  # secretless: the vault is never read
    mi = [e for e in entries if e["service"] == "identity"]
    assert len(mi) == 1 and mi[0]["status"] == 200
    query = parse_qs(str(mi[0]["query"]))
    assert query["resource"] == ["api://AzureADTokenExchange"]
    assert query.get("client_id") == ([mi_client_id] if identity == "user-assigned" else None)
    tokens = _token_requests(entries, local_tenant.env["ENTRA_CLIENT_ID"])
    assert [(t["grant_type"], t["client_auth"], t["status"]) for t in tokens] == [
        ("client_credentials", "federated", 200)
    ]
    assert "managed-identity" in host.log()
