"""Key Vault secrets through the real, unpatched SecretClient + DefaultAzureCredential (managed identity).

Real sockets, real TLS: the session tenant points REQUESTS_CA_BUNDLE/SSL_CERT_FILE at the combined bundle.
The app must pass ``verify_challenge_resource=False`` on loopback (the last test proves why).
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from typing import Any

import jwt
import msal
import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.identity import DefaultAzureCredential
from azure.keyvault.secrets import SecretClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from tests.emulator.test_identity import FOREIGN_VARS, logged
from tests.support.tenant import LocalTenant

VAULT_SCOPE = "https://vault.azure.net/.default"
PKCS12 = "application/x-pkcs12"


@pytest.fixture
def mi_env(tenant: LocalTenant, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalTenant]:
    for name in FOREIGN_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", tenant.env["IDENTITY_ENDPOINT"])
    monkeypatch.setenv("IDENTITY_HEADER", tenant.env["IDENTITY_HEADER"])
    yield tenant


@pytest.fixture
def credential(mi_env: LocalTenant) -> DefaultAzureCredential:
    return DefaultAzureCredential()


@pytest.fixture
def client(mi_env: LocalTenant, credential: DefaultAzureCredential) -> SecretClient:
    return SecretClient(
        vault_url=mi_env.env["KEY_VAULT_URL"], credential=credential, verify_challenge_resource=False
    )


def app_certificate(tenant: LocalTenant) -> x509.Certificate:
    return x509.load_pem_x509_certificate((tenant.state_dir / "apps" / "graph-functions.pem").read_bytes())


def vault_get(tenant: LocalTenant, path: str, token: str | None, **params: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = tenant.env["KEY_VAULT_URL"].rstrip("/") + path
    return requests.get(url, params=params, headers=headers, timeout=10)


def oid_of(token: str) -> str:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return str(claims["oid"])


def test_client_secret_and_the_challenge_on_first_request(mi_env: LocalTenant, client: SecretClient) -> None:
    seq = mi_env.last_seq()
    secret = client.get_secret(mi_env.env["ENTRA_CREDENTIAL_NAME"])
    assert "8Q~" in (secret.value or "")
    props = secret.properties
    assert props.content_type is None and props.enabled is True and props.managed is None
    assert props.tags == {"app": "graph-functions"}
    assert len(props.version or "") == 32
    assert secret.id == f"{mi_env.env['KEY_VAULT_URL']}secrets/{secret.name}/{props.version}"
    assert props.recoverable_days == 90 and props.recovery_level == "Recoverable+Purgeable"
    vault = logged(mi_env, seq, "vault", 2)
    assert [(e["method"], e["status"]) for e in vault] == [("GET", 401), ("GET", 200)]
    assert vault[0]["path"] == f"/secrets/{secret.name}/"  # the SDK's body-less first try, empty version
    assert "api-version=2026-04-01" in vault[0]["query"]
    assert vault[0]["client_id"] is None and vault[1]["client_id"]  # appid of the managed identity
    assert [e["route"] for e in logged(mi_env, seq, "identity", 1)] == ["/msi/token"]


def test_certificate_as_pfx_secret(mi_env: LocalTenant, client: SecretClient) -> None:
    secret = client.get_secret(mi_env.env["ENTRA_CERTIFICATE_CREDENTIAL_NAME"])
    assert secret.properties.content_type == "application/x-pkcs12"
    assert secret.properties.managed is True
    assert secret.properties.key_id == (
        f"{mi_env.env['KEY_VAULT_URL']}keys/{secret.name}/{secret.properties.version}"
    )
    key, cert, _ = pkcs12.load_key_and_certificates(base64.b64decode(secret.value or ""), None)
    assert cert is not None and key is not None
    assert cert == app_certificate(mi_env)
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki)


def test_certificate_as_pem_secret_and_out_content_type(mi_env: LocalTenant, client: SecretClient) -> None:
    name = mi_env.env["ENTRA_CERTIFICATE_CREDENTIAL_NAME"]
    converted = client.get_secret(name, out_content_type="application/x-pem-file")
    for secret in (client.get_secret(f"{name}-pem"), converted):
        assert secret.properties.content_type == "application/x-pem-file"
        data = (secret.value or "").encode()
        key = serialization.load_pem_private_key(data, None)
        cert = x509.load_pem_x509_certificates(data)[0]
        assert cert == app_certificate(mi_env)
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        assert key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki)
    with pytest.raises(HttpResponseError) as err:  # outContentType is for certificate-backed secrets only
        client.get_secret(mi_env.env["ENTRA_CREDENTIAL_NAME"], out_content_type="application/x-pem-file")
    assert err.value.status_code == 400
    assert err.value.error is not None and err.value.error.code == "BadParameter"


def test_certificate_backed_secrets_carry_the_certificates_validity(
    mi_env: LocalTenant, client: SecretClient
) -> None:
    """Key Vault mirrors a certificate's nbf/exp (its X.509 validity) to the addressable secret."""
    cert = app_certificate(mi_env)
    name = mi_env.env["ENTRA_CERTIFICATE_CREDENTIAL_NAME"]
    listed = {s.name: s for s in client.list_properties_of_secrets()}
    for secret_name in (name, f"{name}-pem"):
        props = client.get_secret(secret_name).properties
        versions = list(client.list_properties_of_secret_versions(secret_name))
        for seen in (props, listed[secret_name], *versions):
            assert seen.not_before == cert.not_valid_before_utc
            assert seen.expires_on == cert.not_valid_after_utc
    plain = client.get_secret(mi_env.env["ENTRA_CREDENTIAL_NAME"]).properties
    assert plain.not_before is None and plain.expires_on is None  # a plain secret has only what was set


def short_lived_pfx(not_before: dt.datetime, not_after: dt.datetime) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "graph-functions-next")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    data = pkcs12.serialize_key_and_certificates(b"next", key, cert, None, serialization.NoEncryption())
    return base64.b64encode(data).decode()


def test_a_rotated_certificate_brings_its_own_validity(
    fresh: LocalTenant, mi_env: LocalTenant, client: SecretClient
) -> None:
    name = mi_env.env["ENTRA_CERTIFICATE_CREDENTIAL_NAME"]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    not_before, not_after = now - dt.timedelta(days=2), now + dt.timedelta(days=30)
    body = {"value": short_lived_pfx(not_before, not_after), "contentType": PKCS12, "managed": True}
    mi_env.control("PUT", f"/vault/secrets/{name}", body, expect=201)

    props = client.get_secret(name).properties
    assert (props.not_before, props.expires_on) == (not_before, not_after)
    rejected = mi_env.control(
        "PUT", "/vault/secrets/not-a-cert", {"value": "x", "contentType": PKCS12, "managed": True}, expect=400
    )
    assert "X.509 certificate" in rejected["error"]["message"]


def test_disabled_secret_body_is_the_services(
    mi_env: LocalTenant, credential: DefaultAzureCredential
) -> None:
    """The body Key Vault answers for a disabled secret, as quoted in Azure/azure-sdk-for-js#24756 (there
    deserialized: innerError is the wire's innererror)."""
    token = credential.get_token(VAULT_SCOPE).token
    resp = vault_get(mi_env, "/secrets/disabled-secret", token, **{"api-version": "7.6"})
    assert resp.status_code == 403
    assert resp.json() == {
        "error": {
            "code": "Forbidden",
            "message": "Operation get is not allowed on a disabled secret.",
            "innererror": {"code": "SecretDisabled"},
        }
    }


def test_set_secret_creates_versions_and_never_overwrites(
    fresh: LocalTenant, mi_env: LocalTenant, client: SecretClient
) -> None:
    first = client.set_secret("Rotating-Secret", "one", content_type="text/plain", tags={"env": "dev"})
    second = client.set_secret("rotating-secret", "two", not_before=None, enabled=True)
    assert first.properties.version != second.properties.version
    assert first.name == second.name == "Rotating-Secret"  # names are case-insensitive; the id keeps the case
    assert client.get_secret("rotating-secret").value == "two"
    assert client.get_secret("ROTATING-SECRET", first.properties.version).value == "one"
    versions = list(client.list_properties_of_secret_versions("rotating-secret"))
    expected = sorted([str(first.properties.version), str(second.properties.version)])
    assert sorted(str(v.version) for v in versions) == expected
    assert all(not hasattr(v, "value") for v in versions)
    assert {v.content_type for v in versions} == {"text/plain", None}


def test_update_properties_then_disabled_get(
    fresh: LocalTenant, mi_env: LocalTenant, client: SecretClient
) -> None:
    created = client.set_secret("to-disable", "v")
    updated = client.update_secret_properties(
        "to-disable",
        created.properties.version,
        enabled=False,
        tags={"state": "off"},
        content_type="text/plain",
    )
    assert updated.enabled is False and updated.tags == {"state": "off"}
    assert updated.content_type == "text/plain"
    with pytest.raises(HttpResponseError) as err:
        client.get_secret("to-disable")
    assert err.value.status_code == 403
    assert err.value.error is not None and err.value.error.code == "Forbidden"
    assert "Operation get is not allowed on a disabled secret." in str(err.value)
    client.update_secret_properties("to-disable", enabled=True)  # no version: the latest
    assert client.get_secret("to-disable").value == "v"


def test_seeded_disabled_secret_and_control_disable(
    fresh: LocalTenant, mi_env: LocalTenant, client: SecretClient
) -> None:
    with pytest.raises(HttpResponseError) as err:
        client.get_secret("disabled-secret")
    assert err.value.status_code == 403
    name = mi_env.env["ENTRA_CREDENTIAL_NAME"]
    mi_env.control("PATCH", f"/vault/secrets/{name}", {"enabled": False})
    with pytest.raises(HttpResponseError) as err2:
        client.get_secret(name)
    assert err2.value.status_code == 403
    listed = {s.name: s.enabled for s in client.list_properties_of_secrets()}
    assert listed[name] is False and listed["disabled-secret"] is False
    mi_env.control("PATCH", f"/vault/secrets/{name}", {"enabled": True})
    assert client.get_secret(name).value
    versions = mi_env.control("GET", f"/vault/secrets/{name}/versions")["versions"]
    assert versions and all("value" not in v for v in versions)


def test_not_found(client: SecretClient) -> None:
    with pytest.raises(ResourceNotFoundError) as err:
        client.get_secret("no-such-secret")
    assert err.value.error is not None and err.value.error.code == "SecretNotFound"
    assert "A secret with (name/id) no-such-secret was not found in this key vault." in str(err.value)
    with pytest.raises(ResourceNotFoundError):
        client.get_secret("graph-functions-client-secret", "0" * 32)


def test_list_paging(fresh: LocalTenant, mi_env: LocalTenant, client: SecretClient) -> None:
    for i in range(5):
        client.set_secret(f"page-{i}", str(i))
    seq = mi_env.last_seq()
    pages = [list(page) for page in client.list_properties_of_secrets(max_page_size=2).by_page()]
    names = [str(s.name) for page in pages for s in page]
    assert all(len(p) <= 2 for p in pages) and len(pages) == (len(names) + 1) // 2
    assert len(names) == len(set(names)) and {f"page-{i}" for i in range(5)} <= set(names)
    assert names == sorted(names, key=str.lower)
    queries = [e["query"] for e in logged(mi_env, seq, "vault", len(pages)) if e["status"] == 200]
    assert all("maxresults=2" in q for q in queries)
    assert sum("skiptoken" in q for q in queries) == len(pages) - 1
    cert = next(s for s in client.list_properties_of_secrets() if s.name == "graph-functions-certificate")
    assert cert.managed is True and cert.content_type == "application/x-pkcs12"
    for i in range(3):
        client.set_secret("many-versions", str(i))
    version_pages = list(
        client.list_properties_of_secret_versions("many-versions", max_page_size=1).by_page()
    )
    assert [len(list(p)) for p in version_pages] == [1, 1, 1]
    assert list(client.list_properties_of_secret_versions("never-created")) == []


def test_revoked_access_is_the_real_403(
    fresh: LocalTenant, mi_env: LocalTenant, client: SecretClient, credential: DefaultAzureCredential
) -> None:
    token = credential.get_token(VAULT_SCOPE).token
    oid = oid_of(token)
    appid = jwt.decode(token, options={"verify_signature": False})["appid"]
    mi_env.control("PUT", f"/vault/access/{oid}", {"permissions": ["list"]})
    with pytest.raises(HttpResponseError) as err:
        client.get_secret(mi_env.env["ENTRA_CREDENTIAL_NAME"])
    assert err.value.status_code == 403
    assert err.value.error is not None and err.value.error.code == "Forbidden"
    message = str(err.value.error.message)
    assert message.startswith(
        f"The user, group or application 'appid={appid};oid={oid};"
        f"iss=https://sts.windows.net/{mi_env.env['ENTRA_TENANT_ID']}/' does not have "
        "secrets get permission on key vault 'kv-graph-functions;location=local'."
    )
    assert list(client.list_properties_of_secrets())  # list is still granted
    with pytest.raises(HttpResponseError):
        client.set_secret("x", "y")
    mi_env.control("PUT", f"/vault/access/{oid}", {"permissions": []})
    with pytest.raises(HttpResponseError) as err2:
        list(client.list_properties_of_secrets())
    assert err2.value.status_code == 403 and "secrets list permission" in str(err2.value)
    assert (
        mi_env.control(
            "PUT", f"/vault/access/{mi_env.env['CALLER_CLIENT_ID']}", {"permissions": ["get"]}, expect=404
        )["error"]["message"].find("client id")
        > 0
    )


def test_certificate_backed_secret_cannot_be_set(mi_env: LocalTenant, client: SecretClient) -> None:
    with pytest.raises(ResourceExistsError) as err:
        client.set_secret(mi_env.env["ENTRA_CERTIFICATE_CREDENTIAL_NAME"], "overwrite?")
    assert err.value.status_code == 409


def test_graph_token_sent_raw_is_rejected_with_the_challenge(
    mi_env: LocalTenant, credential: DefaultAzureCredential
) -> None:
    graph = credential.get_token("https://graph.microsoft.com/.default").token
    resp = vault_get(mi_env, "/secrets/graph-functions-client-secret", graph, **{"api-version": "7.6"})
    assert resp.status_code == 401
    assert resp.json() == {
        "error": {
            "code": "Unauthorized",
            "message": (
                "AKV10022: Invalid audience. Expected https://vault.azure.net or "
                "cfa8b339-82a2-471a-a3c9-0fc0be7a4093, found: https://graph.microsoft.com."
            ),
        }
    }
    assert resp.headers["WWW-Authenticate"] == (
        f'Bearer authorization="{mi_env.env["ENTRA_AUTHORITY_HOST"]}/{mi_env.env["ENTRA_TENANT_ID"]}", '
        'resource="https://vault.azure.net"'
    )
    for header in ("x-ms-keyvault-region", "x-ms-request-id", "x-ms-keyvault-service-version"):
        assert resp.headers[header]


def test_missing_token_and_tampered_token(mi_env: LocalTenant, credential: DefaultAzureCredential) -> None:
    anonymous = vault_get(mi_env, "/anything/at/all", None)
    assert anonymous.status_code == 401  # the front door answers before routing
    assert anonymous.json()["error"]["message"] == "AKV10000: Request is missing a Bearer or PoP token."
    token = credential.get_token(VAULT_SCOPE).token
    head, payload, sig = token.split(".")
    tampered = f"{head}.{payload}.{sig[:-4]}{'AAAA' if not sig.endswith('AAAA') else 'BBBB'}"
    resp = vault_get(mi_env, "/secrets", tampered, **{"api-version": "7.6"})
    assert resp.status_code == 401 and "WWW-Authenticate" in resp.headers


def test_expired_token(fresh: LocalTenant, mi_env: LocalTenant) -> None:
    fresh.control("PUT", "/lifetimes", {"accessToken": 60, "clockSkew": 0})
    token = requests.get(
        fresh.env["IDENTITY_ENDPOINT"],
        params={"api-version": "2019-08-01", "resource": "https://vault.azure.net"},
        headers={"X-IDENTITY-HEADER": fresh.env["IDENTITY_HEADER"]},
        timeout=10,
    ).json()["access_token"]
    fresh.advance_clock(61)  # past the lifetime, on the tenant's clock
    resp = vault_get(fresh, "/secrets", token, **{"api-version": "7.6"})
    assert resp.status_code == 401
    assert resp.json()["error"]["message"] == "[TokenExpired] Error validating token: 'S2S12086'."


def test_api_version_is_required(mi_env: LocalTenant, credential: DefaultAzureCredential) -> None:
    token = credential.get_token(VAULT_SCOPE).token
    missing = vault_get(mi_env, "/secrets/graph-functions-client-secret", token)
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "BadParameter"
    assert vault_get(mi_env, "/secrets", token, **{"api-version": "7.9"}).status_code == 400
    for version in ("2016-10-01", "7.0", "7.4", "7.6", "2025-07-01", "2026-04-01"):
        assert vault_get(mi_env, "/secrets", token, **{"api-version": version}).status_code == 200
    bad_name = vault_get(mi_env, "/secrets/bad_name", token, **{"api-version": "7.6"})
    assert bad_name.status_code == 400
    assert bad_name.json()["error"]["message"] == "The request URI contains an invalid name: bad_name"


def test_challenge_resource_verification_rejects_loopback(
    mi_env: LocalTenant, credential: DefaultAzureCredential
) -> None:
    """With the default verify_challenge_resource=True the SDK refuses a vault that is not *.vault.azure.net:
    the app must pass verify_challenge_resource=False against the local tenant."""
    strict = SecretClient(vault_url=mi_env.env["KEY_VAULT_URL"], credential=credential)
    with pytest.raises(ValueError, match="does not match the requested domain"):
        strict.get_secret(mi_env.env["ENTRA_CREDENTIAL_NAME"])


def test_vault_credentials_authenticate_the_app(mi_env: LocalTenant, client: SecretClient) -> None:
    """What the app does at start-up: read its secret and certificate from the vault, then get a Graph token
    with each."""
    authority = mi_env.authority
    client_id = mi_env.env["ENTRA_CLIENT_ID"]
    secret = client.get_secret(mi_env.env["ENTRA_CREDENTIAL_NAME"]).value
    pfx = client.get_secret(mi_env.env["ENTRA_CERTIFICATE_CREDENTIAL_NAME"]).value
    key, cert, _ = pkcs12.load_key_and_certificates(base64.b64decode(pfx or ""), None)
    assert key is not None and cert is not None
    certificate = {
        "private_key": key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        "thumbprint": cert.fingerprint(hashes.SHA1()).hex(),  # noqa: S303 - thumbprints are SHA-1
        "public_certificate": cert.public_bytes(serialization.Encoding.PEM).decode(),
    }
    for credential in (secret, certificate):
        app = msal.ConfidentialClientApplication(
            client_id, client_credential=credential, authority=authority, instance_discovery=False
        )
        result = app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])
        assert "access_token" in result, result
