"""Rich notifications end to end (``NOTIFICATION_CERTIFICATE_NAME``): devhost with its HTTPS listener, the
local tenant as Graph, Entra and Key Vault, Azurite; the real SDKs, nothing patched.

The app reads its notification certificate (PEM) from the local vault, subscribes each mailbox with
``includeResourceData`` and that certificate, verifies each post's ``validationTokens`` on the request path
and builds the mail event from the decrypted content, without a Graph read of the message. One host for the
module (devhost's clock, so held failures and re-reads come due without sleeping); the tests run in order:
the signing-key faults first, while the host has never fetched Microsoft's keys.
"""

from __future__ import annotations

import base64
import datetime
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from devhost.azurite import Azurite
from shared.notifications.graph_subscriptions import RICH_MAIL_FIELDS
from tests.integration.ingestion_kit import IngestionHost, add_message, flush, subscriptions, wait_for
from tests.support.apphost import advance_app_clock
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.integration

#: The tenant-independent OpenID configuration the app reads Microsoft's signing keys through.
METADATA = r"/common/v2\.0/\.well-known/openid-configuration$"
KEY_FAULTS = [
    {"status": 503},
    {"status": 429, "retryAfter": 30},
    {"latencyMs": 2500},
    {"drop": True},
]


class Rich(NamedTuple):
    host: IngestionHost
    secret: str
    versions: list[str]  # the certificate's versions, oldest first
    certificates: dict[str, str]  # version -> base64 DER


def new_certificate() -> tuple[str, str]:
    """A PEM certificate + key (what the vault secret holds) and the certificate's base64 DER."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "graph-functions-notifications")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    der = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    return pem.decode(), der


def store_certificate(rich_or_tenant: LocalTenant, name: str) -> tuple[str, str]:
    pem, der = new_certificate()
    reply = rich_or_tenant.control("PUT", f"/vault/secrets/{name}", {"value": pem}, expect=201)
    return str(reply["version"]["version"]).lower(), der


@pytest.fixture(scope="module")
def rich(
    local_tenant: LocalTenant, azurite: Azurite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Rich]:
    local_tenant.reset()
    # Only flushes deliver: a test can take an item from the tenant's queue before Graph would post it.
    local_tenant.control("PUT", "/graph/notifications/settings", {"autoDeliver": False})
    name = f"notify-cert-{uuid.uuid4().hex[:8]}"
    version, der = store_certificate(local_tenant, name)
    host = IngestionHost(
        local_tenant,
        azurite,
        Path(tmp_path_factory.mktemp("ingestion-rich")),
        overrides={"NOTIFICATION_CERTIFICATE_NAME": name, "GRAPH_TIMEOUT_SECONDS": "2"},
        dev_clock=True,
    )
    try:
        yield Rich(host, name, [version], {version: der})
    finally:
        host.stop()
        local_tenant.reset()


@pytest.fixture
def clean(rich: Rich) -> Iterator[Rich]:
    yield rich
    rich.host.tenant.control("DELETE", "/faults")


def member(tenant: LocalTenant) -> str:
    return tenant.env["DEMO_USER_USERNAME"]


def mailbox_subscriptions(host: IngestionHost) -> list[dict[str, Any]]:
    return [
        s
        for s in subscriptions(host.tenant)
        if host.https_url in str(s.get("notificationUrl")) and "/messages" in str(s.get("resource"))
    ]


def work_done(host: IngestionHost) -> bool:
    from azure.storage.queue import QueueClient

    queue = QueueClient.from_connection_string(host.azurite.connection_string, host.work_queue)
    try:
        return queue.get_queue_properties().approximate_message_count == 0
    except Exception as error:
        if "QueueNotFound" in str(error):
            return True
        raise


def timer_runs(host: IngestionHost) -> int:
    return len(re.findall(r"Subscriptions timer \(webhook\)", host.host.log()))


def run_timer_and_wait(host: IngestionHost) -> None:
    before = timer_runs(host)
    host.run_timer()
    wait_for(lambda: timer_runs(host) > before, "the subscriptions timer's run")


def graph_reads_of(tenant: LocalTenant, seq: int, message_id: str) -> list[dict[str, Any]]:
    return [
        r
        for r in tenant.requests_since(seq, "graph")
        if r.get("method") == "GET" and message_id in str(r.get("path", ""))
    ]


def metadata_fetches(tenant: LocalTenant, seq: int) -> list[dict[str, Any]]:
    return [r for r in tenant.requests_since(seq, "login") if "openid-configuration" in str(r.get("path"))]


def events_of(host: IngestionHost, message_id: str) -> list[dict[str, Any]]:
    return [e for e in host.events() if e["messageId"] == message_id]


def queued_item(tenant: LocalTenant, message_id: str) -> dict[str, Any]:
    """The rich item the tenant will post for ``message_id`` (waiting in its delivery queue)."""
    waiting = tenant.control("GET", "/graph/notifications/queue?items=true")["value"]
    return next(dict(p["item"]) for p in waiting if str(p["resource"]).endswith(message_id))


def drop_queued(tenant: LocalTenant) -> None:
    """Let the tenant's own copy go nowhere: a replay of what the test posted is dropped by the app anyway,
    but the flush also waits for the delivery, keeping the next test's log clean."""
    flush(tenant)


def token(tenant: LocalTenant, **claims: Any) -> str:
    foreign = bool(claims.pop("foreign", False))
    body = {
        "appId": tenant.env["ENTRA_CLIENT_ID"],
        "tenantId": tenant.env["ENTRA_TENANT_ID"],
        "claims": claims,
        "foreignKey": foreign,
    }
    return str(tenant.control("POST", "/graph/notifications/validation-token", body)["token"])


def post(host: IngestionHost, body: dict[str, Any]) -> requests.Response:
    session = requests.Session()
    session.verify = host.tenant.ca_cert
    return session.post(f"{host.https_url}/api/graph/notifications", json=body, timeout=10)


def new_message(host: IngestionHost, subject: str) -> str:
    return add_message(host.tenant, member(host.tenant), subject=subject)


def delivered(host: IngestionHost, message_id: str) -> dict[str, Any]:
    flush(host.tenant)
    [event] = wait_for(lambda: events_of(host, message_id), f"the event of {message_id[:12]}")
    wait_for(lambda: work_done(host), "the work queue to drain")
    return event


# -- subscriptions -----------------------------------------------------------------------------------------


def test_the_timer_creates_rich_mail_subscriptions_with_the_certificate(rich: Rich) -> None:
    host, tenant = rich.host, rich.host.tenant
    run_timer_and_wait(host)
    ours = wait_for(lambda: mailbox_subscriptions(host), "the mailbox subscriptions")
    version = rich.versions[0]
    now = time.time()
    for sub in ours:
        assert sub["includeResourceData"] is True
        assert sub["encryptionCertificateId"] == version
        assert sub["encryptionCertificate"] == rich.certificates[version]
        assert str(sub["resource"]).endswith(f"?$select={','.join(RICH_MAIL_FIELDS)}")
        expires = datetime.datetime.fromisoformat(str(sub["expirationDateTime"]).replace("Z", "+00:00"))
        assert expires.timestamp() <= now + 1440 * 60  # Outlook's rich ceiling (the tenant refuses more)
    rows = [t for t in host.targets() if str(t["RowKey"]).startswith("mailbox-")]
    assert rows and all(t.get("CertificateId") == version for t in rows)
    wait_for(lambda: work_done(host), "the first catch-ups")
    assert tenant.control("GET", "/graph/notifications/settings")["outlookRichMaxMinutes"] == 1440


# -- Microsoft's signing keys unavailable (before the host ever fetched them) -------------------------------


@pytest.mark.parametrize("rule", KEY_FAULTS, ids=["503", "429", "timeout", "drop"])
def test_without_signing_keys_a_rich_item_is_read_from_graph_and_the_post_answered_in_time(
    clean: Rich, rule: dict[str, Any]
) -> None:
    host, tenant = clean.host, clean.host.tenant
    tenant.control("POST", "/faults", {"service": "login", "path": METADATA, **rule}, expect=201)
    advance_app_clock(host.host, 6)  # past the failure the previous case left held
    seq = tenant.last_seq()
    message_id = new_message(host, f"Outage {rule}")
    log_seq = int(tenant.control("GET", "/graph/notifications/log?since=0")["last"])
    event = delivered(host, message_id)
    assert event["channel"] == "notification" and event["subject"] == f"Outage {rule}"
    # The content could not be trusted: the message was read from Graph instead (once).
    assert len(graph_reads_of(tenant, seq, message_id)) == 1
    attempts = [
        e
        for e in tenant.control("GET", f"/graph/notifications/log?since={log_seq}")["value"]
        if e.get("event") == "attempt"
    ]
    assert attempts and all(a["status"] == 202 and a["ms"] < 3000 for a in attempts)
    # One bounded attempt per post, not a pile-up (a held request is logged when the tenant answers it).
    fetches = wait_for(lambda: metadata_fetches(tenant, seq), "the tenant's log of the fetch")
    assert len(fetches) <= 2


def test_concurrent_posts_during_the_outage_are_answered_and_make_one_event(clean: Rich) -> None:
    host, tenant = clean.host, clean.host.tenant
    tenant.control("POST", "/faults", {"service": "login", "path": METADATA, "status": 503}, expect=201)
    advance_app_clock(host.host, 6)
    seq = tenant.last_seq()
    message_id = new_message(host, "Concurrent")
    body = {"value": [queued_item(tenant, message_id)], "validationTokens": [token(tenant)]}
    replies: list[int] = []

    def send() -> None:
        replies.append(post(host, body).status_code)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert replies == [202] * 8
    [event] = wait_for(lambda: events_of(host, message_id), "the event")
    wait_for(lambda: work_done(host), "the work queue to drain")
    drop_queued(tenant)
    wait_for(lambda: work_done(host), "the work queue to drain")
    assert len(events_of(host, message_id)) == 1 and event["subject"] == "Concurrent"
    fetches = wait_for(lambda: metadata_fetches(tenant, seq), "the tenant's log of the fetch")
    assert len(fetches) <= 2  # a failed fetch is answered from memory, not repeated per post


def test_when_the_keys_come_back_rich_items_need_no_graph_read(clean: Rich) -> None:
    host, tenant = clean.host, clean.host.tenant
    advance_app_clock(host.host, 6)
    seq = tenant.last_seq()
    message_id = new_message(host, "Recovered")
    event = delivered(host, message_id)
    assert event["subject"] == "Recovered"
    assert graph_reads_of(tenant, seq, message_id) == []


# -- the rich path ------------------------------------------------------------------------------------------


def test_a_new_message_becomes_exactly_one_event_without_a_graph_read(clean: Rich) -> None:
    host, tenant = clean.host, clean.host.tenant
    seq = tenant.last_seq()
    message_id = new_message(host, "Invoice 77")
    event = delivered(host, message_id)
    assert event["type"] == "mail.received" and event["channel"] == "notification"
    assert event["subject"] == "Invoice 77"
    assert event["from"] == {"name": "Ann", "address": "ann@example.com"}
    assert event["mailbox"]["userPrincipalName"] == member(tenant).lower()
    assert event["hasAttachments"] is False and event["webLink"] and event["receivedDateTime"]
    flush(tenant)  # Graph's duplicates and retries
    wait_for(lambda: work_done(host), "the work queue to drain")
    assert len(events_of(host, message_id)) == 1
    assert graph_reads_of(tenant, seq, message_id) == []
    # Still the mail read's scope check and audit: one record, the app as reader, channel notification.
    reads = [r for r in host.audit_records() if r.get("MessageId") == message_id]
    assert len(reads) == 1 and reads[0]["Channel"] == "notification" and reads[0]["Outcome"] == "allowed"


def forged_tokens(tenant: LocalTenant) -> dict[str, list[str]]:
    now = int(time.time())
    other = str(uuid.uuid4())
    return {
        "none": [],
        "foreign-key": [token(tenant, foreign=True)],
        "expired": [token(tenant, iat=now - 7200, nbf=now - 7200, exp=now - 3600)],
        "not-yet": [token(tenant, nbf=now + 3600, exp=now + 7200)],
        "audience": [token(tenant, aud=other)],
        "appid": [token(tenant, appid=other)],
        "issuer": [token(tenant, iss=f"https://sts.windows.net/{other}/")],
        "unsigned": [token(tenant).rsplit(".", 1)[0] + "."],
        "one-bad-of-two": [token(tenant), token(tenant, aud=other)],
    }


def test_forged_expired_or_misdirected_validation_tokens_queue_nothing(clean: Rich) -> None:
    host, tenant = clean.host, clean.host.tenant
    message_id = new_message(host, "Forgery bait")
    item = queued_item(tenant, message_id)
    wait_for(lambda: work_done(host), "an idle work queue")
    for case, tokens in forged_tokens(tenant).items():
        reply = post(host, {"value": [item], "validationTokens": tokens})
        assert reply.status_code == 202, case  # the verdict is never revealed
        assert work_done(host), case  # nothing queued: the post's items were refused before the queue
    assert events_of(host, message_id) == []
    # Refusals are not remembered as taken: Graph's genuine post still makes the one event.
    assert delivered(host, message_id)["subject"] == "Forgery bait"


def test_tampered_content_or_an_unknown_certificate_id_makes_no_event(clean: Rich) -> None:
    host, tenant = clean.host, clean.host.tenant
    tampered: list[str] = []
    for case in ("data", "signature", "certificate-id", "other-message"):
        message_id = new_message(host, f"Tamper {case}")
        tampered.append(message_id)
        item = queued_item(tenant, message_id)
        encrypted = dict(item["encryptedContent"])
        if case == "data":
            data = bytearray(base64.b64decode(encrypted["data"]))
            data[5] ^= 0x01
            encrypted["data"] = base64.b64encode(bytes(data)).decode()
        elif case == "signature":
            encrypted["dataSignature"] = base64.b64encode(b"\0" * 32).decode()
        elif case == "certificate-id":
            encrypted["encryptionCertificateId"] = uuid.uuid4().hex
        else:  # genuine content of another message under this item's resource
            other = queued_item(tenant, new_message(host, "Other"))
            encrypted = dict(other["encryptedContent"])
        item["encryptedContent"] = encrypted
        assert post(host, {"value": [item], "validationTokens": [token(tenant)]}).status_code == 202
        wait_for(lambda: work_done(host), "the worker to finish")
        assert events_of(host, message_id) == [], case
    assert "Tamper" not in host.host.log()  # rejected without logging any content
    assert "rich notification" in host.host.log()
    # A bad copy taken first does not make Graph's genuine post look like a replay: one event each.
    flush(tenant)
    wait_for(lambda: work_done(host), "the work queue to drain")
    for case in tampered:
        assert len(events_of(host, case)) == 1


# -- key rotation and the vault --------------------------------------------------------------------------


def test_a_new_certificate_version_is_patched_on_and_old_items_still_decrypt(clean: Rich) -> None:
    host, tenant = clean.host, clean.host.tenant
    old = clean.versions[-1]
    in_flight = new_message(host, "Encrypted with the old key")
    assert queued_item(tenant, in_flight)["encryptedContent"]["encryptionCertificateId"] == old
    new, der = store_certificate(tenant, clean.secret)
    clean.versions.append(new)
    clean.certificates[new] = der
    seq = tenant.last_seq()
    advance_app_clock(host.host, 301)  # the certificate's re-read comes due
    run_timer_and_wait(host)
    patches = [
        r
        for r in tenant.requests_since(seq, "graph")
        if r.get("method") == "PATCH" and "/subscriptions/" in str(r.get("path"))
    ]
    ours = mailbox_subscriptions(host)
    assert patches and len(patches) >= len(ours)
    assert all(s["encryptionCertificateId"] == new and s["encryptionCertificate"] == der for s in ours)
    assert {t.get("CertificateId") for t in host.targets() if str(t["RowKey"]).startswith("mailbox-")} == {
        new
    }
    assert [s for s in subscriptions(tenant) if host.https_url in str(s.get("notificationUrl"))]
    event = delivered(host, in_flight)  # named the old version: still decrypted
    assert event["subject"] == "Encrypted with the old key"
    fresh = new_message(host, "Encrypted with the new key")
    assert queued_item(tenant, fresh)["encryptedContent"]["encryptionCertificateId"] == new
    assert delivered(host, fresh)["subject"] == "Encrypted with the new key"
    assert graph_reads_of(tenant, seq, in_flight) == [] and graph_reads_of(tenant, seq, fresh) == []


#: Persistent faults exhaust the vault client's retries (the cached version stays); the timeout is a first
#: attempt past GRAPH_TIMEOUT_SECONDS (2 s) that the client's retry absorbs.
VAULT_FAULTS = [
    {"status": 503},
    {"status": 429, "retryAfter": 1},
    {"latencyMs": 2500, "times": 1},
    {"drop": True},
]


@pytest.mark.parametrize("rule", VAULT_FAULTS, ids=["503", "429", "timeout", "drop"])
def test_a_vault_outage_at_the_re_read_keeps_the_cached_certificate(
    clean: Rich, rule: dict[str, Any]
) -> None:
    host, tenant = clean.host, clean.host.tenant
    current = clean.versions[-1]
    fault = {"service": "vault", "path": f"/secrets/{clean.secret}", **rule}
    tenant.control("POST", "/faults", fault, expect=201)
    advance_app_clock(host.host, 301)
    seq = tenant.last_seq()
    run_timer_and_wait(host)
    assert [r for r in tenant.requests_since(seq, "vault") if clean.secret in str(r.get("path"))]
    rows = [t for t in host.targets() if str(t["RowKey"]).startswith("mailbox-")]
    assert rows and all(t.get("Status") == "active" and t.get("CertificateId") == current for t in rows)
    assert all(s["encryptionCertificateId"] == current for s in mailbox_subscriptions(host))
    message_id = new_message(host, f"Vault {rule}")
    assert delivered(host, message_id)["subject"] == f"Vault {rule}"


def test_concurrent_rich_posts_during_a_vault_outage_then_recovery(clean: Rich) -> None:
    host, tenant = clean.host, clean.host.tenant
    current = clean.versions[-1]
    tenant.control("POST", "/faults", {"service": "vault", "path": f"/secrets/{clean.secret}", "status": 503})
    advance_app_clock(host.host, 301)  # the re-read is due and fails for the whole test
    message_id = new_message(host, "Vault down")
    body = {"value": [queued_item(tenant, message_id)], "validationTokens": [token(tenant)]}
    replies: list[int] = []
    threads = [
        threading.Thread(target=lambda: replies.append(post(host, body).status_code)) for _ in range(6)
    ]
    host.run_timer()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert replies == [202] * 6  # the request path never reads the vault
    [event] = wait_for(lambda: events_of(host, message_id), "the event")  # the cached version decrypts
    wait_for(lambda: work_done(host), "the work queue to drain")
    drop_queued(tenant)
    wait_for(lambda: work_done(host), "the work queue to drain")
    assert len(events_of(host, message_id)) == 1 and event["subject"] == "Vault down"
    # Recovery: the next re-read succeeds and changes nothing (same version).
    tenant.control("DELETE", "/faults")
    advance_app_clock(host.host, 301)
    seq = tenant.last_seq()
    run_timer_and_wait(host)
    reads = [r for r in tenant.requests_since(seq, "vault") if clean.secret in str(r.get("path"))]
    assert reads and reads[-1].get("status") == 200
    rows = [t for t in host.targets() if str(t["RowKey"]).startswith("mailbox-")]
    assert all(t.get("Status") == "active" and t.get("CertificateId") == current for t in rows)


# -- the setting turned off ---------------------------------------------------------------------------------


def test_turned_off_the_subscriptions_go_back_to_basic_and_messages_are_read_from_graph(
    clean: Rich, tmp_path: Path
) -> None:
    old, tenant = clean.host, clean.host.tenant
    rich_ids = {s["id"] for s in mailbox_subscriptions(old)}
    assert rich_ids
    old.stop()  # the same app restarted without NOTIFICATION_CERTIFICATE_NAME: same table and queues
    host = IngestionHost(tenant, old.azurite, tmp_path, tag=old.tag)
    try:
        run_timer_and_wait(host)
        ours = wait_for(lambda: mailbox_subscriptions(host), "the basic subscriptions")
        assert not rich_ids & {s["id"] for s in ours}  # switched: deleted and created again
        assert all(not s["includeResourceData"] and "$select" not in str(s["resource"]) for s in ours)
        assert not [s for s in subscriptions(tenant) if s["id"] in rich_ids]
        rows = [t for t in host.targets() if str(t["RowKey"]).startswith("mailbox-")]
        assert rows and all(not t.get("CertificateId") for t in rows)
        wait_for(lambda: work_done(host), "the catch-ups after the switch")
        seq = tenant.last_seq()
        message_id = new_message(host, "Basic again")
        assert delivered(host, message_id)["subject"] == "Basic again"
        assert len(graph_reads_of(tenant, seq, message_id)) == 1  # read from Graph, as a basic one is
    finally:
        host.stop()
