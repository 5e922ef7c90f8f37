"""Rich notifications' pure logic: the setting, the certificate's versions from the vault (cached, re-read,
older versions on demand, retired ones), the timer's rich subscriptions (``$select``, lifetime, rotation by
PATCH, switching on and off) and the webhook's verdict on validation tokens (refused, vouched, keys down)."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError
from cryptography.hazmat.primitives import serialization

from shared.app.tenants import graph_config
from shared.core.errors import ConfigurationError, CredentialUnavailable
from shared.core.settings import Settings
from shared.graph.client import GraphClient
from shared.notifications.certificates import NotificationCertificates, parse_pem
from shared.notifications.client_state import ClientStates
from shared.notifications.graph_subscriptions import (
    MAIL_LIFETIME_MINUTES,
    RICH_MAIL_LIFETIME_MINUTES,
    Encryption,
)
from shared.notifications.intake import Intake
from shared.notifications.keeper import SubscriptionKeeper

from .conftest import BASE_ENV, make_settings
from .fakes import FakeClock, FakeTokens
from .test_notification_intake import TENANT as INTAKE_TENANT
from .test_notification_intake import Sent, Signer, body, certificate, item, states
from .test_notification_keeper import ALICE, GROUP, TENANT, FakeGraph, MemoryTable, Wall
from .test_session_keys import Clock, FakeKeys, ring

V1, V2 = "a" * 32, "b" * 32


def pem_secret() -> tuple[str, str]:
    """A vault value (certificate + key, PEM) and its certificate's base64 DER."""
    import base64

    from cryptography import x509

    key_pem, der = certificate()
    cert = x509.load_der_x509_certificate(base64.b64decode(der))
    return cert.public_bytes(serialization.Encoding.PEM).decode() + key_pem.decode(), der


# -- the setting --------------------------------------------------------------------------------------------


def test_the_certificate_setting_is_optional_validated_and_needs_the_vault() -> None:
    assert make_settings().notifications.notification_certificate_name is None
    assert make_settings(NOTIFICATION_CERTIFICATE_NAME="notify-cert").notification_certificate_name == (
        "notify-cert"
    )
    with pytest.raises(ConfigurationError) as bad_name:
        make_settings(NOTIFICATION_CERTIFICATE_NAME="not a name!")
    assert any("NOTIFICATION_CERTIFICATE_NAME" in p and "1-127" in p for p in bad_name.value.problems)
    env = {k: v for k, v in BASE_ENV.items() if k not in ("KEY_VAULT_URL", "ENTRA_CREDENTIAL_NAME")}
    env.update(ENTRA_CREDENTIAL="managed-identity", NOTIFICATION_CERTIFICATE_NAME="notify-cert")
    with pytest.raises(ConfigurationError) as no_vault:
        Settings.from_env(env)
    assert any("KEY_VAULT_URL" in p and "basic notifications" in p for p in no_vault.value.problems)


# -- the certificate's versions -----------------------------------------------------------------------------


class Secret:
    def __init__(self, value: str, version: str) -> None:
        self.value = value
        self.properties = type("P", (), {"version": version})()


class FakeVault:
    """``SecretClient.get_secret``: versions by id, the last one latest; ``failing`` raises."""

    def __init__(self) -> None:
        self.versions: dict[str, str] = {}
        self.failing: Exception | None = None
        self.reads: list[str | None] = []

    def get_secret(self, name: str, version: str | None = None) -> Secret:
        self.reads.append(version)
        if self.failing is not None:
            raise self.failing
        if version is None:
            version = list(self.versions)[-1]
        if version not in self.versions:
            raise ResourceNotFoundError("SecretNotFound")
        return Secret(self.versions[version], version)


def certificates(vault: FakeVault, clock: Clock) -> NotificationCertificates:
    return NotificationCertificates(lambda: vault, "notify-cert", "https://kv/", clock=clock)  # type: ignore[arg-type,return-value]


def test_the_latest_version_is_read_once_then_re_read_when_due_keeping_it_through_a_failure() -> None:
    vault, clock = FakeVault(), Clock()
    first, der = pem_secret()
    vault.versions[V1] = first
    certs = certificates(vault, clock)
    current = certs.current()
    assert (current.version, current.certificate) == (V1, der) and repr(
        current
    ) == f"EncryptionKey(version='{V1}')"
    assert certs.current() is current and vault.reads == [None]
    vault.versions[V2] = pem_secret()[0]
    clock.now += 301
    vault.failing = ServiceRequestError("vault down")
    assert certs.current().version == V1  # a failed re-read keeps the cached version
    vault.failing = None
    clock.now += 61
    assert certs.current().version == V2
    assert certs.private_key(V1) == current.private_key  # the older version stays for in-flight items
    assert vault.reads.count(V1) == 0


def test_a_cold_failure_is_held_and_configuration_problems_are_actionable() -> None:
    vault, clock = FakeVault(), Clock()
    vault.failing = ServiceRequestError("vault down")
    certs = certificates(vault, clock)
    with pytest.raises(CredentialUnavailable):
        certs.current()
    with pytest.raises(CredentialUnavailable):
        certs.current()
    assert len(vault.reads) == 1  # held: the second caller did not read again
    vault.failing = None
    vault.versions[V1] = "not a certificate"
    clock.now += 6
    with pytest.raises(ConfigurationError, match="PEM certificate"):
        certs.current()
    forbidden = HttpResponseError("Forbidden")
    forbidden.status_code = 403
    vault.failing = forbidden
    with pytest.raises(ConfigurationError, match="Key Vault Secrets User"):
        certificates(vault, Clock()).current()


def test_older_versions_are_read_on_demand_and_retired_ones_answer_none() -> None:
    vault, clock = FakeVault(), Clock()
    old, _ = pem_secret()
    vault.versions[V1] = old
    vault.versions[V2] = pem_secret()[0]
    certs = certificates(vault, clock)
    assert certs.current().version == V2
    key = certs.private_key(V1)
    assert key is not None and b"PRIVATE KEY" in key
    assert certs.private_key(V1) == key and vault.reads.count(V1) == 1
    assert certs.private_key("c" * 32) is None  # not in the vault: retired
    assert certs.private_key("../secrets/other") is None and "../secrets/other" not in vault.reads
    vault.failing = ServiceRequestError("vault down")
    with pytest.raises(CredentialUnavailable):
        certs.private_key("d" * 32)  # unknown now, but not retired: retry later


def test_a_pem_without_its_own_key_or_with_a_small_key_is_refused() -> None:
    value, _ = pem_secret()
    cert_only = value.split("-----BEGIN PRIVATE KEY-----")[0]
    other_key = pem_secret()[0].split("-----END CERTIFICATE-----\n")[1]
    with pytest.raises(ConfigurationError, match="PEM"):
        parse_pem(cert_only, version=V1, what="secret")
    with pytest.raises(ConfigurationError, match="not its certificate's"):
        parse_pem(cert_only + other_key, version=V1, what="secret")


# -- the timer ----------------------------------------------------------------------------------------------


class Switch:
    def __init__(self, encryption: Encryption | None) -> None:
        self.encryption = encryption

    def __call__(self) -> Encryption | None:
        return self.encryption


def rich_keeper(graph: FakeGraph, table: MemoryTable, wall: Wall, switch: Switch) -> SubscriptionKeeper:
    clock = FakeClock()
    client = GraphClient(
        config=graph_config(make_settings()),
        tokens=FakeTokens(),
        transport=graph.transport,
        sleep=clock.sleep,
        clock=clock,
    )
    key_ring = ring(FakeKeys(), Clock())
    return SubscriptionKeeper(
        tenant_id=TENANT,
        graph=client,
        table=table,  # type: ignore[arg-type]
        states=ClientStates(key_ring),
        latest_key_version=key_ring.latest_version,
        send_work=lambda body: None,
        scope=GROUP,
        public_base_url="https://app.example",
        mode="webhook",
        encryption=switch,
        now=wall,
    )


def mail_subscription(graph: FakeGraph) -> dict[str, Any]:
    [sub] = [s for s in graph.live.values() if s["resource"] != "users"]
    return sub


def test_rich_subscriptions_select_the_event_fields_live_a_day_and_rotate_by_patch() -> None:
    graph, table, wall = FakeGraph([ALICE]), MemoryTable(), Wall()
    switch = Switch(Encryption(certificate="MIIC", certificate_id=V1))
    keeper = rich_keeper(graph, table, wall, switch)
    keeper.run()
    sub = mail_subscription(graph)
    assert sub["includeResourceData"] is True
    assert (sub["encryptionCertificate"], sub["encryptionCertificateId"]) == ("MIIC", V1)
    assert sub["resource"] == (
        f"users/{ALICE}/mailFolders('inbox')/messages"
        "?$select=receivedDateTime,from,subject,hasAttachments,webLink"
    )
    expires = datetime.datetime.fromisoformat(sub["expirationDateTime"].replace("Z", "+00:00"))
    assert expires == wall.now + datetime.timedelta(minutes=RICH_MAIL_LIFETIME_MINUTES) and (
        RICH_MAIL_LIFETIME_MINUTES <= 1440
    )
    users = next(s for s in graph.live.values() if s["resource"] == "users")
    assert "includeResourceData" not in users  # Graph has no rich notifications for users
    wall.now += datetime.timedelta(minutes=RICH_MAIL_LIFETIME_MINUTES / 2 + 1)
    assert keeper.run()["renewed"] == 1  # renewed at half the rich lifetime
    switch.encryption = Encryption(certificate="MIID", certificate_id=V2)
    before = set(graph.live)
    assert keeper.run()["renewed"] == 1 and set(graph.live) == before  # PATCHed, not recreated
    patch = json.loads(graph.calls("PATCH")[-1].data)
    assert patch["encryptionCertificate"] == "MIID" and patch["encryptionCertificateId"] == V2
    assert "expirationDateTime" in patch
    assert table.rows[f"mailbox-{ALICE}"]["certificate_id"] == V2


def test_turning_rich_notifications_on_and_off_switches_existing_subscriptions() -> None:
    graph, table, wall = FakeGraph([ALICE]), MemoryTable(), Wall()
    switch = Switch(None)
    keeper = rich_keeper(graph, table, wall, switch)
    keeper.run()
    basic = mail_subscription(graph)
    assert "includeResourceData" not in basic and "$select" not in basic["resource"]
    switch.encryption = Encryption(certificate="MIIC", certificate_id=V1)
    keeper.run()
    rich = mail_subscription(graph)
    assert rich["id"] != basic["id"] and rich["includeResourceData"] is True
    assert table.rows[f"mailbox-{ALICE}"]["catch_up_requested"] is True  # the gap is caught up by delta
    switch.encryption = None
    keeper.run()
    back = mail_subscription(graph)
    assert back["id"] != rich["id"] and "includeResourceData" not in back
    assert "certificate_id" not in table.rows[f"mailbox-{ALICE}"]
    expires = datetime.datetime.fromisoformat(back["expirationDateTime"].replace("Z", "+00:00"))
    assert expires == wall.now + datetime.timedelta(minutes=MAIL_LIFETIME_MINUTES)


# -- the webhook's verdict ----------------------------------------------------------------------------------


def rich_body(good: str, *tokens: str) -> bytes:
    return body(
        item(good, encryptedContent={"data": "AAAA", "encryptionCertificateId": V1}),
        validationTokens=list(tokens),
    )


def test_the_webhook_queues_rich_content_only_when_its_tokens_vouch_for_the_tenant() -> None:
    client_states, _ = states()
    good = client_states.issue(INTAKE_TENANT)
    signer = Signer()
    sent = Sent()
    intake = Intake(client_states, serves=lambda t: t == INTAKE_TENANT, send=sent, rich=signer.rich())
    for tokens in ([], [signer.token(aud="someone-else")], [signer.token(), signer.token(appid="x")]):
        result = intake.accept(rich_body(good, *tokens), lifecycle=False)
        assert (result.queued, result.refused) == (0, 1) and not sent
    assert intake.accept(rich_body(good, signer.token()), lifecycle=False).queued == 1
    [queued] = json.loads(sent[0])["items"]
    assert queued["verified"] is True and queued["encryptedContent"]["encryptionCertificateId"] == V1
    assert "validationTokens" not in json.loads(sent[0])  # verified here: the tokens stay out of the queue
    # The same post again is a replay; the same notification with other content is not (a tampered copy
    # taken first must not make Graph's genuine one look like a replay).
    assert intake.accept(rich_body(good, signer.token()), lifecycle=False).replayed == 1
    other = body(
        item(good, encryptedContent={"data": "BBBB", "encryptionCertificateId": V1}),
        validationTokens=[signer.token()],
    )
    assert intake.accept(other, lifecycle=False).queued == 1


def test_with_the_keys_down_or_no_certificate_the_content_is_dropped_and_graph_read() -> None:
    client_states, _ = states()
    good = client_states.issue(INTAKE_TENANT)
    signer = Signer()

    def keys_down(kid: str) -> Any:
        raise CredentialUnavailable("Microsoft's keys are unreachable")

    for rich in (signer.rich(signing_key=keys_down), None):
        sent = Sent()
        intake = Intake(client_states, serves=lambda t: t == INTAKE_TENANT, send=sent, rich=rich)
        assert intake.accept(rich_body(good, signer.token()), lifecycle=False).queued == 1
        [queued] = json.loads(sent[0])["items"]
        assert "encryptedContent" not in queued and "verified" not in queued


# -- the worker ---------------------------------------------------------------------------------------------


class WorkerParts:
    """The worker's table, ledger and ingest, in memory; the ingest records what it was given."""

    def __init__(self) -> None:
        from shared.notifications.store import Target

        self.target = Target(
            tenant_id=TENANT,
            key=f"mailbox-{ALICE}",
            mailbox=ALICE,
            subscription_id="s1",
            client_state_hash="h",
        )
        self.ingested: list[tuple[str, dict[str, Any] | None]] = []
        self.marked: list[str] = []

    def by_subscription(self, tenant_id: str, subscription_id: str) -> Any:
        return self.target

    def update(self, tenant_id: str, key: str, **changes: Any) -> None:
        return None

    def seen(self, tenant_id: str, resource: str, change: str, etag: str | None) -> bool:
        return False

    def mark_seen(self, tenant_id: str, resource: str, change: str, etag: str | None) -> None:
        self.marked.append(resource)

    def ingest(
        self, target: Any, message_id: str, *, channel: str, request_id: str, pushed: Any = None
    ) -> str:
        self.ingested.append((message_id, pushed))
        return "published"


def test_the_worker_uses_verified_content_only_and_drops_what_does_not_decrypt() -> None:
    import base64

    from shared.notifications.rich import RichContent
    from shared.notifications.worker import Worker

    from .test_notification_intake import encrypt_content

    pem, cert = certificate()
    parts = WorkerParts()
    rich = RichContent(
        private_key=lambda version: pem if version == V1 else None,
        signing_key=lambda kid: None,
        client_id="app",
        serves=lambda tenant: tenant == TENANT,
    )
    worker = Worker(
        table=parts,  # type: ignore[arg-type]
        ledger=parts,  # type: ignore[arg-type]
        ingest=parts,  # type: ignore[arg-type]
        tools=lambda tenant: None,  # type: ignore[arg-type,return-value]
        send_work=lambda body: None,
        serves=lambda tenant: tenant == TENANT,
        rich=rich,
    )

    def run(message_id: str, encrypted: dict[str, Any] | None, verified: bool = True) -> dict[str, int]:
        entry: dict[str, Any] = {
            "subscriptionId": "s1",
            "tenantId": TENANT,
            "clientState": "h",
            "changeType": "created",
            "resource": f"Users/{ALICE}/Messages/{message_id}",
            "etag": "W/1",
        }
        if encrypted is not None:
            entry.update(encryptedContent=encrypted, verified=verified)
        work = {"v": 1, "kind": "notifications", "items": [entry]}
        return worker.handle(json.dumps(work).encode(), request_id="r")

    resource = {"id": "AAMk1=", "subject": "Invoice", "receivedDateTime": "2026-12-07T08:00:00Z"}
    assert run("AAMk1=", encrypt_content(resource, cert, V1)) == {"published": 1}
    assert parts.ingested[-1] == ("AAMk1=", resource)  # built from the content: no Graph read
    assert run("AAMk2=", encrypt_content({**resource, "id": "AAMk2="}, cert, V1), verified=False) == {
        "published": 1
    }
    last: Any = parts.ingested[-1]
    assert last == ("AAMk2=", None)  # tokens not verified: read from Graph
    good = encrypt_content({**resource, "id": "AAMk3="}, cert, V1)
    data = bytearray(base64.b64decode(good["data"]))
    data[0] ^= 1
    for bad in (
        {**good, "data": base64.b64encode(bytes(data)).decode()},  # tampered
        {**good, "encryptionCertificateId": V2},  # a version the vault does not have
        encrypt_content(resource, cert, V1),  # genuine content of another message
    ):
        before = len(parts.ingested)
        assert run("AAMk3=", bad) == {"rejected": 1}
        assert len(parts.ingested) == before and f"Users/{ALICE}/Messages/AAMk3=" not in parts.marked


def test_the_token_issuer_is_the_v1_issuer_of_the_apps_cloud() -> None:
    from shared.notifications.rich import RichContentError, check_tokens

    signer = Signer()
    china = signer.token(iss=f"https://sts.chinacloudapi.cn/{INTAKE_TENANT}/")

    def check(token: str, host: str) -> frozenset[str]:
        return check_tokens(
            [token],
            signing_key=lambda kid: signer.key.public_key(),
            client_id=signer.client_id,
            tenant_ids=[INTAKE_TENANT],
            issuer_host=host,
        )

    assert check(china, "sts.chinacloudapi.cn") == {INTAKE_TENANT}
    assert check(signer.token(), "sts.windows.net") == {INTAKE_TENANT}
    with pytest.raises(RichContentError, match="issuer"):
        check(signer.token(), "sts.chinacloudapi.cn")
