"""Rich notifications (``includeResourceData``): the subscriber decrypts ``encryptedContent`` exactly as
Microsoft documents (RSA-OAEP SHA-1 key, HMAC-SHA256 over the ciphertext, AES-CBC with the key's first 16
bytes as IV) and verifies ``validationTokens`` against the tenant's published keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.padding import PKCS7

from emulator.pki.x509 import self_signed_rsa
from tests.emulator.notify_kit import HTTP, add_message, expiry, flush, member_id, subscribe
from tests.emulator.webhook_receiver import Receiver
from tests.support.tenant import LocalTenant

PUBLISHER = "0bf30f3b-4a52-48df-9a82-234910c4a086"


@pytest.fixture(scope="module")
def encryption() -> tuple[rsa.RSAPrivateKey, str]:
    key, cert = self_signed_rsa("graph-functions-notifications", days=30)
    return key, base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def decrypt(key: rsa.RSAPrivateKey, content: dict[str, str]) -> dict[str, Any]:
    symmetric = key.decrypt(
        base64.b64decode(content["dataKey"]),
        # Graph wraps the key with OAEP over SHA-1, as documented
        asym.OAEP(mgf=asym.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None),  # noqa: S303
    )
    data = base64.b64decode(content["data"])
    signature = base64.b64encode(hmac.new(symmetric, data, hashlib.sha256).digest()).decode()
    assert hmac.compare_digest(signature, content["dataSignature"])
    decryptor = Cipher(algorithms.AES(symmetric), modes.CBC(symmetric[:16])).decryptor()
    unpadder = PKCS7(128).unpadder()
    plain = unpadder.update(decryptor.update(data) + decryptor.finalize()) + unpadder.finalize()
    return dict(json.loads(plain))


def rich(
    tenant: LocalTenant, receiver: Receiver, cert: str, expect: int = 201, **fields: Any
) -> dict[str, Any]:
    base = {
        "changeType": "created",
        "resource": f"users/{member_id(tenant)}/mailFolders('inbox')/messages"
        "?$select=subject,receivedDateTime,from",
        "includeResourceData": True,
        "encryptionCertificate": cert,
        "encryptionCertificateId": "notifications-2026-12",
        "expirationDateTime": expiry(tenant, 1_000),
    }
    return subscribe(tenant, receiver, expect=expect, **{**base, **fields})


def test_encrypted_content_decrypts_with_the_documented_algorithms(
    fresh: LocalTenant, hook: Receiver, encryption: tuple[rsa.RSAPrivateKey, str]
) -> None:
    key, cert = encryption
    sub = rich(fresh, hook, cert)
    assert sub["includeResourceData"] is True and sub["encryptionCertificateId"] == "notifications-2026-12"
    mid = add_message(fresh, fresh.env["DEMO_USER_USERNAME"], subject="Invoice ünïcödé <b>")
    flush(fresh)
    [post] = hook.notifications()
    [item] = post.json()["value"]
    content = item["encryptedContent"]
    assert content["encryptionCertificateId"] == "notifications-2026-12"
    der = base64.b64decode(cert)
    assert content["encryptionCertificateThumbprint"] == hashlib.sha1(der).hexdigest().upper()  # noqa: S324
    resource = decrypt(key, content)
    assert resource["id"] == mid and resource["subject"] == "Invoice ünïcödé <b>"
    assert set(resource) >= {"subject", "receivedDateTime", "from", "@odata.etag"}
    assert "body" not in resource and "bodyPreview" not in resource  # only what $select named
    # SHA-256 OAEP does not unwrap the key (microsoftgraph/microsoft-graph-docs-contrib#5737)
    with pytest.raises(ValueError):
        key.decrypt(
            base64.b64decode(content["dataKey"]),
            asym.OAEP(mgf=asym.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
        )


def test_validation_tokens_verify_against_the_tenants_keys(
    fresh: LocalTenant, hook: Receiver, encryption: tuple[rsa.RSAPrivateKey, str]
) -> None:
    rich(fresh, hook, encryption[1])
    add_message(fresh, fresh.env["DEMO_USER_USERNAME"])
    flush(fresh)
    [post] = hook.notifications()
    [token] = post.json()["validationTokens"]  # one (app, tenant) pair
    jwks = HTTP.get(f"{fresh.env['ENTRA_AUTHORITY_HOST']}/common/discovery/v2.0/keys", timeout=30).json()
    header = jwt.get_unverified_header(token)
    jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    tid = fresh.env["ENTRA_TENANT_ID"]
    claims = jwt.decode(
        token,
        jwt.PyJWK(jwk).key,
        algorithms=["RS256"],
        audience=fresh.env["ENTRA_CLIENT_ID"],
        issuer=f"https://sts.windows.net/{tid}/",
    )
    assert claims["appid"] == PUBLISHER and claims["tid"] == tid and claims["ver"] == "1.0"
    assert claims["exp"] > claims["nbf"]


def test_rich_subscriptions_need_select_a_certificate_and_a_short_lifetime(
    fresh: LocalTenant, hook: Receiver, encryption: tuple[rsa.RSAPrivateKey, str]
) -> None:
    cert = encryption[1]
    plain = f"users/{member_id(fresh)}/mailFolders('inbox')/messages"
    assert "$select" in rich(fresh, hook, cert, expect=400, resource=plain)["error"]["message"]
    err = rich(fresh, hook, cert, expect=400, encryptionCertificate=None)["error"]
    assert "encryptionCertificate" in err["message"]
    err = rich(fresh, hook, cert, expect=400, encryptionCertificate=base64.b64encode(b"nope").decode())[
        "error"
    ]
    assert "encryptionCertificate is not valid" in err["message"]
    err = rich(fresh, hook, cert, expect=400, expirationDateTime=expiry(fresh, 1_441))["error"]
    assert err["message"] == "Subscription expiration can only be 1440 minutes in the future."
    err = rich(fresh, hook, cert, expect=400, resource="users", changeType="updated")["error"]
    assert err["code"] == "InvalidRequest"
    body = plain + "?$select=subject,body"
    assert rich(fresh, hook, cert, expect=400, resource=body)["error"]["code"] == "InvalidRequest"


def test_basic_and_rich_items_in_one_post_carry_tokens_only_for_rich(
    fresh: LocalTenant, hook: Receiver, encryption: tuple[rsa.RSAPrivateKey, str]
) -> None:
    rich(fresh, hook, encryption[1])
    subscribe(fresh, hook, changeType="created", resource=f"users/{member_id(fresh)}/messages")
    add_message(fresh, fresh.env["DEMO_USER_USERNAME"])
    flush(fresh)
    [post] = hook.notifications()
    body = post.json()
    assert len(body["value"]) == 2 and len(body["validationTokens"]) == 1
    assert sorted("encryptedContent" in i for i in body["value"]) == [False, True]


def test_a_rotation_patches_the_certificate_and_include_resource_data_cannot_be_patched(
    fresh: LocalTenant, hook: Receiver, encryption: tuple[rsa.RSAPrivateKey, str]
) -> None:
    from tests.emulator.notify_kit import app_token, bearer, graph

    old_key, old_cert = encryption
    assert (
        "encryptionCertificateId"
        in rich(fresh, hook, old_cert, expect=400, encryptionCertificateId=None)["error"]["message"]
    )
    sub = rich(fresh, hook, old_cert)
    in_flight = add_message(fresh, fresh.env["DEMO_USER_USERNAME"], subject="before")
    new_key, new_der = self_signed_rsa("graph-functions-notifications-2", days=30)
    new_cert = base64.b64encode(new_der.public_bytes(serialization.Encoding.DER)).decode()
    url, headers = graph(fresh, f"/subscriptions/{sub['id']}"), bearer(app_token(fresh))
    refused = HTTP.patch(url, json={"includeResourceData": False, "expirationDateTime": expiry(fresh, 60)},
                         headers=headers, timeout=30)  # fmt: skip
    assert refused.status_code == 400 and "includeResourceData" in refused.json()["error"]["message"]
    body = {
        "encryptionCertificate": new_cert,
        "encryptionCertificateId": "v2",
        "expirationDateTime": expiry(fresh, 60),
    }
    patched = HTTP.patch(url, json=body, headers=headers, timeout=30)
    assert patched.status_code == 200 and patched.json()["encryptionCertificateId"] == "v2"
    after = add_message(fresh, fresh.env["DEMO_USER_USERNAME"], subject="after")
    flush(fresh)
    items = {
        i["resourceData"]["id"]: i["encryptedContent"]
        for p in hook.notifications()
        for i in p.json()["value"]
    }
    # An item queued before the PATCH names (and needs) the old key; later ones the new.
    assert items[in_flight]["encryptionCertificateId"] == "notifications-2026-12"
    assert decrypt(old_key, items[in_flight])["subject"] == "before"
    assert (
        items[after]["encryptionCertificateId"] == "v2"
        and decrypt(new_key, items[after])["subject"] == "after"
    )


def test_the_control_api_shows_queued_items_and_mints_chosen_or_forged_validation_tokens(
    fresh: LocalTenant, hook: Receiver, encryption: tuple[rsa.RSAPrivateKey, str]
) -> None:
    fresh.control("PUT", "/graph/notifications/settings", {"autoDeliver": False})
    rich(fresh, hook, encryption[1])
    mid = add_message(fresh, fresh.env["DEMO_USER_USERNAME"])
    [waiting] = fresh.control("GET", "/graph/notifications/queue?items=true")["value"]
    assert waiting["item"]["resourceData"]["id"] == mid and waiting["item"]["encryptedContent"]["data"]
    assert "item" not in fresh.control("GET", "/graph/notifications/queue")["value"][0]
    app, tid = fresh.env["ENTRA_CLIENT_ID"], fresh.env["ENTRA_TENANT_ID"]
    jwks = HTTP.get(f"{fresh.env['ENTRA_AUTHORITY_HOST']}/common/discovery/v2.0/keys", timeout=30).json()

    def mint(**body: Any) -> str:
        return str(
            fresh.control(
                "POST", "/graph/notifications/validation-token", {"appId": app, "tenantId": tid, **body}
            )["token"]
        )

    def key_of(token: str) -> Any:
        kid = jwt.get_unverified_header(token)["kid"]
        return jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == kid)).key

    chosen = mint(claims={"aud": "someone-else", "uti": None})
    claims = jwt.decode(chosen, key_of(chosen), algorithms=["RS256"], audience="someone-else")
    assert claims["appid"] == PUBLISHER and "uti" not in claims
    forged = mint(foreignKey=True)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(forged, key_of(forged), algorithms=["RS256"], audience=app)
    bad = fresh.control("POST", "/graph/notifications/validation-token", {"appId": app}, expect=400)
    assert bad["error"]["code"] == "BadRequest" and "tenantId" in bad["error"]["message"]
