"""The production-hostnames mode: real host names on 443, resolved through a private hosts file.

The client below runs with the SDKs' defaults: msal with ``https://login.microsoftonline.com/{tenant}``
(no instance-discovery switch), requests to ``https://graph.microsoft.com`` and a SecretClient on a
``*.vault.azure.net`` URL with the challenge-resource check left on. Only REQUESTS_CA_BUNDLE (and the
managed-identity endpoint, which the platform sets in Azure) is given.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import requests

from tests.support.tenant import ROOT, start_tenant

# One test binds 127.0.0.1:443; keep every check on that port in it, so no two can race for the port
# (pytest-xdist's loadgroup cannot pin tests to a worker under pytest 9.2).

CLIENT = r"""
import json, os, msal, requests
from azure.identity import DefaultAzureCredential
from azure.keyvault.secrets import SecretClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes

tenant, client_id, pem = os.environ["T_TENANT"], os.environ["T_CLIENT"], open(os.environ["T_PEM"]).read()
cert = x509.load_pem_x509_certificate(pem.encode())
app = msal.ConfidentialClientApplication(
    client_id, authority=f"https://login.microsoftonline.com/{tenant}",
    client_credential={"private_key": pem, "thumbprint": cert.fingerprint(hashes.SHA1()).hex()})
token = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])["access_token"]
users = requests.get("https://graph.microsoft.com/v1.0/users?$top=3",
                     headers={"Authorization": "Bearer " + token}, timeout=10)
secret = SecretClient("https://kv-graph-functions.vault.azure.net/", DefaultAzureCredential()).get_secret(
    "graph-functions-client-secret")
print(json.dumps({"graph": users.status_code, "users": len(users.json()["value"]),
                  "secret_kind": secret.properties.content_type, "secret_length": len(secret.value)}))
"""


def test_real_host_names_need_no_endpoint_overrides(tmp_path: Path) -> None:
    tenant = start_tenant(tmp_path, users=25, extra_args=("--production-hostnames",))
    try:
        assert tenant.env["ENTRA_AUTHORITY_HOST"] == "https://login.microsoftonline.com"
        assert tenant.env["GRAPH_ENDPOINT"] == "https://graph.microsoft.com"
        assert tenant.env["KEY_VAULT_URL"] == "https://kv-graph-functions.vault.azure.net/"
        script = tmp_path / "client.py"
        script.write_text(CLIENT)
        env = {
            "PATH": os.environ["PATH"],
            "REQUESTS_CA_BUNDLE": tenant.ca_bundle,
            "SSL_CERT_FILE": tenant.ca_bundle,
            "IDENTITY_ENDPOINT": tenant.env["IDENTITY_ENDPOINT"],
            "IDENTITY_HEADER": tenant.env["IDENTITY_HEADER"],
            "T_TENANT": tenant.env["ENTRA_TENANT_ID"],
            "T_CLIENT": tenant.env["ENTRA_CLIENT_ID"],
            "T_PEM": str(tenant.state_dir / "apps" / "graph-functions.pem"),
        }
        proc = subprocess.run(
            [sys.executable, "-m", "emulator.hostsns", "--", sys.executable, str(script)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        assert result == {"graph": 200, "users": 3, "secret_kind": None, "secret_length": 40}
        # The private hosts file never leaked: the real /etc/hosts does not name the production hosts.
        assert "graph.microsoft.com" not in Path("/etc/hosts").read_text()
        # The control API stays reachable on loopback (the identity origin).
        assert tenant.env["EMULATOR_URL"].startswith("https://127.0.0.1:")
        assert tenant.control("GET", "/info")["tenantId"] == tenant.env["ENTRA_TENANT_ID"]
        # A host name the shared port does not serve is refused, not routed to some service.
        stranger = requests.get(
            "https://127.0.0.1:443/", headers={"Host": "example.org"}, verify=tenant.ca_bundle, timeout=10
        )
        assert stranger.status_code == 421
    finally:
        assert tenant.stop() == 0
