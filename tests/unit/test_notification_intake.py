"""The webhook's request path: strict parsing, client states from the key ring, replay and chunking;
and the rich-notification crypto against the local tenant's own encryption (the documented algorithms)."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import os
import uuid
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from shared.core.errors import BadRequest
from shared.notifications.client_state import ClientStates, fingerprint, key_version
from shared.notifications.intake import MAX_WORK_BYTES, Intake, RecentNotifications
from shared.notifications.rich import (
    GRAPH_PUBLISHER_APP_ID,
    RichContent,
    RichContentError,
    check_tokens,
    decrypt,
)
from shared.notifications.wire import (
    PayloadTooLargeError,
    message_of,
    parse_collection,
    user_of,
    validation_reply,
)
from tests.unit.test_session_keys import Clock, FakeKeys, ring

TENANT = "11111111-1111-1111-1111-111111111111"
OTHER_TENANT = "99999999-1111-1111-1111-111111111111"
SUB = "6f3b2b6e-0000-4000-8000-000000000001"


def states() -> tuple[ClientStates, FakeKeys]:
    keys = FakeKeys()
    return ClientStates(ring(keys, Clock())), keys


def item(state: str, **fields: Any) -> dict[str, Any]:
    return {
        "subscriptionId": SUB,
        "tenantId": TENANT,
        "clientState": state,
        "changeType": "created",
        "resource": "Users/50f0fd0a-750c-4b75-8ccc-9bc2a53f8a28/Messages/AAMkAG=",
        "resourceData": {"@odata.etag": 'W/"CQAAAB"', "id": "AAMkAG="},
        **fields,
    }


def body(*items: dict[str, Any], **extra: Any) -> bytes:
    return json.dumps({"value": list(items), **extra}).encode()


class Sent(list[bytes]):
    def __call__(self, body: bytes) -> None:
        self.append(body)


def intake(client_states: ClientStates, sent: Sent, clock: Clock | None = None) -> Intake:
    recent = RecentNotifications(clock=clock or Clock())
    return Intake(client_states, serves=lambda t: t == TENANT, send=sent, recent=recent)


def test_a_client_state_verifies_for_its_tenant_only_and_is_never_stored() -> None:
    client_states, keys = states()
    state = client_states.issue(TENANT)
    assert len(state) <= 128 and state.count(".") == 2
    assert key_version(state) == keys.order[-1]
    assert client_states.verify(TENANT, state)
    assert not client_states.verify(OTHER_TENANT, state)
    nonce, version, mac = state.split(".")
    assert not client_states.verify(TENANT, f"{nonce}x.{version}.{mac}")
    assert not client_states.verify(TENANT, f"{nonce}.{version}.{mac[:-2]}AA")
    assert not client_states.verify(
        TENANT, f"{nonce}.{'0' * 32}.{mac}"
    )  # a version never held: no vault read
    assert not client_states.verify(TENANT, state + "." + "x")
    assert client_states.issue(TENANT) != state  # per subscription
    assert fingerprint(state) != state and len(fingerprint(state)) == 64


def test_genuine_notifications_are_queued_with_a_fingerprint_and_forged_ones_are_dropped() -> None:
    client_states, _ = states()
    good = client_states.issue(TENANT)
    sent = Sent()
    result = intake(client_states, sent).accept(
        body(item(good), item("forged.state.value"), item(good, tenantId=OTHER_TENANT)), lifecycle=False
    )
    assert (result.queued, result.refused, result.replayed) == (1, 2, 0)
    [message] = sent
    work = json.loads(message)
    assert work["kind"] == "notifications" and work["v"] == 1
    [queued] = work["items"]
    assert queued["clientState"] == fingerprint(good) and good not in message.decode()
    assert queued["etag"] == 'W/"CQAAAB"' and queued["changeType"] == "created"


def test_a_post_of_only_forged_items_queues_nothing() -> None:
    client_states, _ = states()
    sent = Sent()
    result = intake(client_states, sent).accept(body(item("a.b.c"), item("")), lifecycle=False)
    assert result.queued == 0 and result.refused == 2 and sent == []


def test_replays_are_dropped_within_the_window_and_taken_after_it() -> None:
    client_states, _ = states()
    good = client_states.issue(TENANT)
    sent, clock = Sent(), Clock()
    taker = intake(client_states, sent, clock)
    assert taker.accept(body(item(good), item(good)), lifecycle=False).replayed == 1  # twice in one post
    assert taker.accept(body(item(good)), lifecycle=False).replayed == 1
    updated = item(good, changeType="updated")
    assert taker.accept(body(updated), lifecycle=False).queued == 1  # another change type is news
    clock.now += 601
    assert taker.accept(body(item(good)), lifecycle=False).queued == 1
    assert len(sent) == 3


def test_lifecycle_posts_in_the_observed_shape_are_taken() -> None:
    client_states, _ = states()
    good = client_states.issue(TENANT)
    observed = {
        "subscriptionId": SUB,
        "organizationId": TENANT,
        "clientState": good,
        "lifecycleEvent": "missed",
        "resource": f"Subscriptions/{SUB}",
        "changeType": None,
        "sequence": None,
        "encryptedContent": None,
    }
    sent = Sent()
    taker = intake(client_states, sent)
    assert taker.accept(body(observed), lifecycle=True).queued == 1
    assert json.loads(sent[0])["items"][0]["lifecycleEvent"] == "missed"
    assert taker.accept(body(observed), lifecycle=True).queued == 1  # no notification id: a new gap
    with_id = {**observed, "id": "lsgTZMr9KwAAA"}
    assert taker.accept(body(with_id), lifecycle=True).queued == 1
    assert taker.accept(body(with_id), lifecycle=True).replayed == 1  # the same notification again
    with pytest.raises(BadRequest):
        parse_collection(body(item(good)), lifecycle=True)  # a change notification on the lifecycle URL


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"value": []}',
        b'{"value": {}}',
        body({"subscriptionId": "nope", "tenantId": TENANT, "clientState": "x", "changeType": "created"}),
        body({"subscriptionId": SUB, "tenantId": TENANT, "clientState": 5, "changeType": "created"}),
        body({"subscriptionId": SUB, "tenantId": TENANT, "clientState": "x", "changeType": "moved"}),
        body({"subscriptionId": SUB, "tenantId": TENANT, "clientState": "x" * 256, "changeType": "created"}),
        body(*[item("x")] * 1001),
        body({"subscriptionId": SUB, "tenantId": TENANT, "clientState": "x", "lifecycleEvent": "renamed"}),
    ],
)
def test_malformed_posts_are_refused_before_any_check(payload: bytes) -> None:
    client_states, _ = states()
    sent = Sent()
    with pytest.raises(BadRequest) as raised:
        intake(client_states, sent).accept(payload, lifecycle=False)
    assert raised.value.code == "invalid_notification" and sent == []


def test_oversized_posts_are_refused() -> None:
    with pytest.raises(PayloadTooLargeError) as raised:
        parse_collection(b" " * (1024 * 1024 + 1))
    assert raised.value.status == 413 and raised.value.code == "payload_too_large"


def test_a_large_batch_is_split_under_the_queue_limit_and_huge_content_is_left_to_graph() -> None:
    client_states, _ = states()
    good = client_states.issue(TENANT)
    sent = Sent()
    items = [
        item(good, resource=f"Users/u/Messages/{n}", encryptedContent={"data": "A" * 2000}) for n in range(60)
    ]
    items.append(item(good, resource="Users/u/Messages/huge", encryptedContent={"data": "A" * 60_000}))
    signer = Signer()
    accepted = Intake(client_states, serves=lambda t: t == TENANT, send=sent, rich=signer.rich()).accept(
        body(*items, validationTokens=[signer.token()]), lifecycle=False
    )
    assert accepted.queued == 61
    assert len(sent) > 1 and all(len(message) <= MAX_WORK_BYTES for message in sent)
    queued = [i for message in sent for i in json.loads(message)["items"]]
    assert len(queued) == 61
    huge = next(i for i in queued if i["resource"].endswith("/huge"))
    assert "encryptedContent" not in huge


class Signer:
    """Validation tokens signed by a key of its own, and the RichContent that trusts that key."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.client_id = str(uuid.uuid4())

    def token(self, **claims: Any) -> str:
        now = int(datetime.datetime.now(datetime.UTC).timestamp())
        base = {
            "aud": self.client_id,
            "iss": f"https://sts.windows.net/{TENANT}/",
            "appid": GRAPH_PUBLISHER_APP_ID,
            "nbf": now - 10,
            "exp": now + 3600,
        }
        return jwt.encode({**base, **claims}, self.key, algorithm="RS256", headers={"kid": "k1"})

    def rich(self, signing_key: Any = None) -> RichContent:
        return RichContent(
            private_key=lambda version: None,
            signing_key=signing_key or (lambda kid: self.key.public_key() if kid == "k1" else None),
            client_id=self.client_id,
            serves=lambda tenant: tenant == TENANT,
        )


def test_resources_and_the_handshake_token() -> None:
    mailbox = "50f0fd0a-750c-4b75-8ccc-9bc2a53f8a28"
    assert message_of(f"Users/{mailbox.upper()}/Messages/AAMk=") == (mailbox, "AAMk=")
    assert message_of(f"users/{mailbox}@{TENANT}/messages/AAMk=") == (mailbox, "AAMk=")
    assert message_of(f"Users/{mailbox}/mailFolders('inbox')/Messages/AAMk=") == (mailbox, "AAMk=")
    assert message_of(f"Users/{mailbox}") is None and message_of("Users/a/Events/b") is None
    assert user_of(f"Users/{mailbox}") == mailbox and user_of("Users/not-a-guid") is None
    token = "Validation: Testing client application reachability for subscription Request-Id: 1"
    assert validation_reply(token) == token and validation_reply(None) is None
    for bad in ("x" * 1025, "line\nbreak", "tab\there"):
        with pytest.raises(BadRequest):
            validation_reply(bad)


# -- rich notifications --------------------------------------------------------------------------------


def encrypt_content(resource: dict[str, Any], certificate_b64: str, certificate_id: str) -> dict[str, str]:
    """What Graph sends, written from its documentation (the local tenant's own implementation is tested
    against the app in tests/integration): a fresh 32-byte key, AES-256-CBC with PKCS7 and the key's first
    16 bytes as IV, HMAC-SHA256 over the ciphertext, the key wrapped with RSA-OAEP SHA-1."""
    from cryptography.hazmat.primitives import padding as symmetric_padding
    from cryptography.hazmat.primitives.asymmetric import padding as asymmetric
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = os.urandom(32)
    padder = symmetric_padding.PKCS7(128).padder()
    plain = padder.update(json.dumps(resource).encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    data = encryptor.update(plain) + encryptor.finalize()
    cert = x509.load_der_x509_certificate(base64.b64decode(certificate_b64))
    public = cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    sha1 = hashes.SHA1()  # noqa: S303 - Graph's documented OAEP parameters
    wrapped = public.encrypt(
        key, asymmetric.OAEP(mgf=asymmetric.MGF1(algorithm=sha1), algorithm=sha1, label=None)
    )
    return {
        "data": base64.b64encode(data).decode(),
        "dataKey": base64.b64encode(wrapped).decode(),
        "dataSignature": base64.b64encode(hmac.new(key, data, hashlib.sha256).digest()).decode(),
        "encryptionCertificateId": certificate_id,
    }


def certificate() -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "graph-functions-notifications")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem, base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def test_rich_content_the_local_tenant_encrypts_decrypts_and_tampering_is_refused() -> None:
    pem, cert = certificate()
    resource = {"id": "AAMk=", "subject": "Invoice", "hasAttachments": False}
    encrypted = encrypt_content(resource, cert, "cert-1")
    assert decrypt(encrypted, pem) == resource
    data = bytearray(base64.b64decode(encrypted["data"]))
    data[0] ^= 1
    with pytest.raises(RichContentError, match="signature"):
        decrypt({**encrypted, "data": base64.b64encode(bytes(data)).decode()}, pem)
    other_pem, _ = certificate()
    with pytest.raises(RichContentError, match="unwrap"):
        decrypt(encrypted, other_pem)
    with pytest.raises(RichContentError):
        decrypt({**encrypted, "dataKey": "***"}, pem)


def test_validation_tokens_need_graphs_publisher_this_app_and_a_served_tenant() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    client_id = str(uuid.uuid4())
    now = int(datetime.datetime.now(datetime.UTC).timestamp())

    def token(**claims: Any) -> str:
        base = {
            "aud": client_id,
            "iss": f"https://sts.windows.net/{TENANT}/",
            "appid": GRAPH_PUBLISHER_APP_ID,
            "nbf": now - 10,
            "exp": now + 3600,
            "ver": "1.0",
        }
        return jwt.encode({**base, **claims}, key, algorithm="RS256", headers={"kid": "k1"})

    def check(*tokens: str) -> None:
        check_tokens(
            list(tokens), signing_key=lambda kid: key.public_key(), client_id=client_id, tenant_ids=[TENANT]
        )

    check(token())
    for bad in (
        token(appid=str(uuid.uuid4())),
        token(aud=str(uuid.uuid4())),
        token(iss=f"https://sts.windows.net/{OTHER_TENANT}/"),
        token(exp=now - 600),
        token(nbf=now + 600),
        token()[:-4] + "AAAA",
    ):
        with pytest.raises(RichContentError):
            check(bad)
    with pytest.raises(RichContentError):
        check()


def test_concurrent_posts_share_queue_writes_and_a_failed_write_fails_each_of_them() -> None:
    import threading

    from shared.core.errors import StorageUnavailable
    from shared.notifications.group_commit import GroupCommit

    writes: list[list[dict[str, Any]]] = []
    failing = {"on": False}

    def send(message: bytes) -> None:
        if failing["on"]:
            raise StorageUnavailable("queue down")
        writes.append(json.loads(message)["items"])

    def encode(items: list[dict[str, Any]]) -> list[bytes]:
        return [json.dumps({"items": items}).encode()]

    commit = GroupCommit(encode, send, window=0.05)
    errors: list[BaseException] = []

    def post(n: int) -> None:
        try:
            commit.submit([{"n": n}])
        except StorageUnavailable as error:
            errors.append(error)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stored = sorted(item["n"] for items in writes for item in items)
    assert stored == list(range(20)) and len(writes) < 20 and errors == []  # shared, and all stored
    failing["on"] = True
    threads = [threading.Thread(target=post, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(errors) == 5  # nobody is told 202 for items that were not stored
    failing["on"] = False
    commit.submit([{"n": 99}])  # the next post leads a new gathering
    assert writes[-1] == [{"n": 99}]


@pytest.mark.parametrize("lifecycle", [False, True])
@pytest.mark.parametrize("field", ["changeType", "lifecycleEvent"])
@pytest.mark.parametrize("value", [{}, [], 1])
def test_a_non_string_change_or_event_is_a_400(lifecycle: bool, field: str, value: object) -> None:
    # Found by schemathesis: an object here does not even hash, so a set lookup raised (a 500).
    item = {
        "subscriptionId": "b253d218-6c4a-47ea-8906-17f2747b6dba",
        "tenantId": "e3e70682-c209-1cac-a29f-6fbed82c07cd",
        "clientState": "",
        "resource": "",
        field: value,
    }
    with pytest.raises(BadRequest) as raised:
        parse_collection(json.dumps({"value": [item]}).encode(), lifecycle=lifecycle)
    assert raised.value.code == "invalid_notification"


def test_a_change_without_an_etag_is_never_taken_for_a_replay() -> None:
    # Users notifications carry no ETag: disabled, enabled, disabled again within minutes is three changes.
    client_states, _ = states()
    good = client_states.issue(TENANT)
    sent = Sent()
    taker = intake(client_states, sent)
    user = item(good, changeType="updated", resource="Users/50f0fd0a-750c-4b75-8ccc-9bc2a53f8a28")
    del user["resourceData"]
    for _ in range(3):
        result = taker.accept(body(user), lifecycle=False)
        assert (result.queued, result.replayed) == (1, 0)
    assert len(sent) == 3
