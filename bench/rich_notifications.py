"""Rich notifications' CPU cost, in process (no network): what the webhook adds on its request path for a
post with a rich item (the validationTokens check against cached keys) next to a basic post, and what
the worker spends decrypting an item (RSA-OAEP unwrap, HMAC, AES-CBC) instead of a Graph read.

Writes bench/results/rich_notifications.json. Targets: the request path stays far under Graph's 3 s (a
few milliseconds per post); decrypting costs less than a Graph round trip (tens of milliseconds).
"""

from __future__ import annotations

import base64
import datetime
import json
import time
import uuid
from typing import Any

from bench.common import machine, summary_ms, write_result

ROUNDS = 300


def _certificate() -> tuple[bytes, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem, base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def main() -> dict[str, Any]:
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    from emulator.graph.notify_crypto import encrypt_content
    from shared.notifications.client_state import ClientStates
    from shared.notifications.intake import Intake
    from shared.notifications.rich import GRAPH_PUBLISHER_APP_ID, RichContent
    from tests.unit.test_session_keys import Clock, FakeKeys, ring

    tenant, client_id, version = str(uuid.uuid4()), str(uuid.uuid4()), "a" * 32
    signer = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem, cert = _certificate()
    rich = RichContent(
        private_key=lambda v: pem,
        signing_key=lambda kid: signer.public_key(),
        client_id=client_id,
        serves=lambda t: t == tenant,
    )
    states = ClientStates(ring(FakeKeys(), Clock()))
    state = states.issue(tenant)
    sent: list[bytes] = []
    intake = Intake(states, serves=lambda t: t == tenant, send=sent.append, rich=rich)
    now = int(time.time())
    token = jwt.encode(
        {
            "aud": client_id,
            "iss": f"https://sts.windows.net/{tenant}/",
            "appid": GRAPH_PUBLISHER_APP_ID,
            "nbf": now,
            "exp": now + 3600,
        },
        signer,
        algorithm="RS256",
        headers={"kid": "k"},
    )
    resource = {"id": "AAMk=", "subject": "Invoice", "receivedDateTime": "2026-12-07T08:00:00Z"}
    encrypted = encrypt_content(resource, cert, version)

    def post(n: int, rich_item: bool) -> bytes:
        item: dict[str, Any] = {
            "subscriptionId": str(uuid.uuid4()),
            "tenantId": tenant,
            "clientState": state,
            "changeType": "created",
            "resource": f"Users/{uuid.uuid4()}/Messages/AAMk{n}=",
        }
        body: dict[str, Any] = {"value": [item]}
        if rich_item:
            item["encryptedContent"] = encrypted
            body["validationTokens"] = [token]
        return json.dumps(body).encode()

    def timed(rich_item: bool) -> list[float]:
        bodies = [post(n, rich_item) for n in range(ROUNDS)]
        seconds = []
        for raw in bodies:
            started = time.perf_counter()
            intake.accept(raw, lifecycle=False)
            seconds.append(time.perf_counter() - started)
        return seconds

    timed(True)  # warm-up: imports and first verifications
    basic, with_tokens = timed(False), timed(True)
    decrypts = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        rich.open(encrypted)
        decrypts.append(time.perf_counter() - started)
    result = {
        "machine": machine(),
        "rounds": ROUNDS,
        "request_path_basic_post": summary_ms(basic),
        "request_path_rich_post": summary_ms(with_tokens),
        "worker_decrypt_item": summary_ms(decrypts),
    }
    write_result("rich_notifications", result)
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
