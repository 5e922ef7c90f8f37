"""Sessions and sign-in flows against real Azurite and the local tenant's vault, through the real SDKs
(azure-data-tables, azure-keyvault-secrets, azure-identity's managed identity): nothing patched.

The stores are built exactly as the app builds them (:class:`shared.app.services.Runtime` from settings), each
module run on its own tables so other suites sharing Azurite are not disturbed.
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableServiceClient, UpdateMode

from devhost.azurite import Azurite
from devhost.clock import DevClock
from shared.app.services import Runtime
from shared.core.errors import (
    AuthFlowMismatch,
    CredentialUnavailable,
    StorageUnavailable,
)
from shared.identity.key_ring import SessionKeyRing
from shared.identity.key_source import VaultKeySource
from shared.signin.flows import FLOW_LIFETIME_SECONDS
from shared.signin.sessions import SessionClaims, SessionStore
from shared.storage.tables import EnsuredTable, hashed_key, partition_of
from tests.devhost.fixtures import wait_until
from tests.integration.fixtures import environment
from tests.support.ports import free_port_range
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.integration

CLAIMS = SessionClaims(
    oid="00000000-0000-0000-0000-00000000a11e", tid="t", name="Adèle Vance", preferred_username="adele@x"
)
APP_KEYS = (
    "ENTRA_TENANT_ID",
    "ENTRA_CLIENT_ID",
    "ENTRA_AUTHORITY_HOST",
    "KEY_VAULT_URL",
    "ENTRA_CREDENTIAL_NAME",
    "GRAPH_ENDPOINT",
    "SESSION_KEY_NAME",
)


def app_env(tenant: LocalTenant, storage: str, **extra: str) -> dict[str, str]:
    """The app's settings for ``tenant`` and ``storage``, on tables of this test's own."""
    suffix = secrets.token_hex(4)
    env = {key: tenant.env[key] for key in APP_KEYS}
    env.update(AzureWebJobsStorage=storage, SESSION_TABLE=f"sess{suffix}", AUTH_FLOW_TABLE=f"flow{suffix}")
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def identity(local_tenant: LocalTenant) -> Iterator[None]:
    """The managed identity the app reads the vault with (azure-identity reads these from os.environ)."""
    with environment({key: local_tenant.env[key] for key in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER")}):
        yield


@pytest.fixture(scope="module")
def app(local_tenant: LocalTenant, azurite: Azurite, identity: None) -> Runtime:
    return Runtime(env=app_env(local_tenant, azurite.connection_string))


def table_entity(runtime: Runtime, table: str, secret: str) -> Any:
    row = hashed_key(secret)
    return runtime.table_service().get_table_client(table).get_entity(row[:2], row)


def cache_with(at: dict[str, Any], rt_secret: str, rt_modified: int) -> str:
    return json.dumps(
        {
            "AccessToken": at,
            "RefreshToken": {"rt": {"secret": rt_secret, "last_modification_time": str(rt_modified)}},
            "Account": {"acct": {"username": "adele@x"}},
        }
    )


def session_key_reads(tenant: LocalTenant, since: int) -> list[dict[str, Any]]:
    name = tenant.env["SESSION_KEY_NAME"]
    return [e for e in tenant.requests_since(since, "vault") if f"/secrets/{name}" in e["path"]]


def test_session_lifecycle_on_azurite_keeps_secrets_out_of_the_table(
    app: Runtime, local_tenant: LocalTenant
) -> None:
    since = local_tenant.last_seq()
    sessions = app.sessions()
    cache = cache_with({"at": {"secret": "AT-SECRET", "cached_at": "1"}}, "RT-SECRET", 1)
    session = sessions.create(CLAIMS, cache)
    entity = table_entity(app, app.settings().session_table, session.id)
    stored = repr(dict(entity))
    for secret in (session.id, "AT-SECRET", "RT-SECRET", "adele@x", "Adèle"):
        assert secret not in stored
    assert entity["RowKey"] == hashed_key(session.id) and isinstance(entity["Data0"], bytes)
    versions = local_tenant.control("GET", f"/vault/secrets/{local_tenant.env['SESSION_KEY_NAME']}/versions")
    assert entity["KeyVersion"] == versions["versions"][-1]["version"] == session.key_version
    loaded = sessions.load(session.id)
    assert loaded is not None and (loaded.claims, loaded.token_cache) == (session.claims, cache)
    assert loaded.claims._replace(roles_checked=0.0) == CLAIMS  # stamped: the sign-in confirmed the roles
    assert sessions.save(loaded) is loaded  # nothing changed, just seen: no write
    newer = cache_with({"at": {"secret": "AT-2", "cached_at": "2"}}, "RT-2", 2)
    saved = sessions.save(loaded, token_cache=newer)
    assert saved is not None and saved.etag != loaded.etag
    reloaded = sessions.load(session.id)
    assert reloaded is not None and reloaded.token_cache == newer
    sessions.delete(session.id)
    assert sessions.load(session.id) is None
    assert sessions.save(reloaded, token_cache=cache) is None  # signed out: never written back
    assert sessions.load(session.id) is None
    assert len([e for e in session_key_reads(local_tenant, since) if e["status"] == 200]) == 1


def test_a_tampered_row_is_no_session_and_is_deleted(app: Runtime) -> None:
    sessions = app.sessions()
    session = sessions.create(CLAIMS, "{}")
    table = app.table_service().get_table_client(app.settings().session_table)
    entity = table_entity(app, app.settings().session_table, session.id)
    flipped = bytearray(entity["Data0"])
    flipped[len(flipped) // 2] ^= 0x01
    entity["Data0"] = bytes(flipped)
    table.update_entity(entity, mode=UpdateMode.REPLACE)
    assert sessions.load(session.id) is None
    assert sessions.load(session.id) is None
    # The session's own row (its person's index row, shared.signin.person_sessions, lives until its expiry)
    row = hashed_key(session.id)
    assert not list(
        table.query_entities(
            "PartitionKey eq @p and RowKey eq @r", parameters={"p": partition_of(row), "r": row}
        )
    )


def test_idle_and_absolute_expiry_and_the_purge(app: Runtime) -> None:
    settings = app.settings()
    clock = {"now": datetime.datetime.now(datetime.UTC)}
    table = EnsuredTable(app.table_service(), settings.session_table)
    sessions = SessionStore(
        table, app.session_keys(), idle_minutes=30, max_age_hours=2, now=lambda: clock["now"]
    )
    start = clock["now"]
    idle = sessions.create(CLAIMS, "{}")
    steady = sessions.create(CLAIMS, "{}")
    clock["now"] = start + datetime.timedelta(minutes=25)
    touched = sessions.load(steady.id)
    assert touched is not None and sessions.save(touched) is not None  # last_seen is due: written
    clock["now"] = start + datetime.timedelta(minutes=31)
    assert sessions.load(idle.id) is None  # idle for 31 minutes: gone
    assert sessions.load(steady.id) is not None  # seen 6 minutes ago
    fresh = sessions.create(CLAIMS, "{}")
    assert sessions.purge_expired(start + datetime.timedelta(minutes=56)) == 1  # steady: idle since 25
    assert sessions.load(fresh.id) is not None
    for minute in range(37, 151, 6):  # used every 6 minutes: only the absolute limit can end it
        clock["now"] = start + datetime.timedelta(minutes=minute)
        current = sessions.load(fresh.id)
        assert current is not None and sessions.save(current) is not None
    clock["now"] = start + datetime.timedelta(minutes=151)  # two hours after its sign-in at minute 31
    assert sessions.load(fresh.id) is None
    client = table.client()
    for gone in (idle, steady, fresh):
        row = hashed_key(gone.id)  # the session's own row (its person's index row ends at its expiry)
        assert not list(
            client.query_entities(
                "PartitionKey eq @p and RowKey eq @r", parameters={"p": partition_of(row), "r": row}
            )
        )
    # Past every absolute expiry the purge also removes the person index rows: nothing of them is left.
    sessions.purge_expired(start + datetime.timedelta(minutes=152))
    for gone in (idle, steady, fresh):
        assert not list(client.query_entities("RowKey eq @r", parameters={"r": hashed_key(gone.id)}))


def test_two_threads_refreshing_one_session_lose_nothing(app: Runtime) -> None:
    sessions = app.sessions()
    base = cache_with({}, "rt-0", 100)
    session = sessions.create(CLAIMS, base)
    first, second = sessions.load(session.id), sessions.load(session.id)
    assert first is not None and second is not None
    graph_at = {"graph": {"secret": "graph-at", "cached_at": "200"}}
    sharepoint_at = {"sharepoint": {"secret": "sp-at", "cached_at": "300"}}
    mine = [(first, cache_with(graph_at, "rt-1", 200)), (second, cache_with(sharepoint_at, "rt-2", 300))]
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def refresh(loaded: Any, cache: str) -> None:
        barrier.wait()
        results.append(sessions.save(loaded, token_cache=cache))

    threads = [threading.Thread(target=refresh, args=pair) for pair in mine]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 2 and all(result is not None for result in results)
    stored = sessions.load(session.id)
    assert stored is not None
    final = json.loads(stored.token_cache)
    assert set(final["AccessToken"]) == {"graph", "sharepoint"}  # both requests' new tokens
    assert final["RefreshToken"]["rt"]["secret"] == "rt-2"  # the newest refresh token, whoever wrote last


def test_key_rotation_keeps_sessions_and_seals_new_records_with_the_new_version(
    app: Runtime, tenant: LocalTenant
) -> None:
    name = tenant.env["SESSION_KEY_NAME"]
    sessions = app.sessions()
    before = sessions.create(CLAIMS, cache_with({}, "rt-before", 1))
    kept = sessions.create(CLAIMS, "{}")  # sealed by the old version, never rewritten
    new_key = base64.b64encode(secrets.token_bytes(32)).decode()
    # Key Vault dates versions in whole seconds, and an instance follows a version only when it is dated
    # later than the one it seals with. A rotation in the same second as the seeding (a fast run) gave both
    # the same date: the app's store kept the old version and the test failed now and then. A real rotation
    # comes later than the version it replaces; on the tenant's clock it now does.
    tenant.advance_clock(1)
    added = tenant.control("PUT", f"/vault/secrets/{name}", {"value": new_key}, expect=201)["version"]
    dated = {
        v["version"]: v["created"]
        for v in tenant.control("GET", f"/vault/secrets/{name}/versions")["versions"]
    }
    assert dated[added["version"]] > dated[before.key_version]
    # An instance that re-reads at once (the 5-minute re-read, made due) seals with the new version.
    eager = SessionKeyRing(
        VaultKeySource(app.secret_client(), name, str(app.settings().key_vault_url)), refresh_seconds=0
    )
    rotated = SessionStore(
        EnsuredTable(app.table_service(), app.settings().session_table),
        eager,
        idle_minutes=60,
        max_age_hours=24,
    )
    old = rotated.load(before.id)
    assert old is not None and old.key_version == before.key_version  # sealed before: still opens
    resaved = rotated.save(old, token_cache=cache_with({}, "rt-after", 2))
    assert resaved is not None and resaved.key_version == added["version"]
    created = rotated.create(CLAIMS, "{}")
    assert created.key_version == added["version"]
    # The app's own store (old version still current for it) opens the new records and follows the rotation.
    assert sessions.load(created.id) is not None
    assert sessions.create(CLAIMS, "{}").key_version == added["version"]
    # Retiring the old version (disabled in the vault) ends the sessions it sealed, within a re-read.
    tenant.control("PATCH", f"/vault/secrets/{name}", {"enabled": False, "version": before.key_version})
    assert eager.latest_version() == added["version"]  # the re-read forgets cached older versions
    assert rotated.load(kept.id) is None
    assert rotated.load(created.id) is not None


@pytest.mark.parametrize(
    "fault",
    [{"status": 503}, {"drop": True}, {"latencyMs": 2500}],
    ids=["vault-503", "dropped-connection", "latency-past-timeout"],
)
def test_vault_outage_cached_keys_keep_working_and_cold_instances_answer_503(
    app: Runtime, azurite: Azurite, tenant: LocalTenant, fault: dict[str, Any]
) -> None:
    name = tenant.env["SESSION_KEY_NAME"]
    warm = app.sessions()
    session = warm.create(CLAIMS, "{}")  # keys cached before the outage
    # The cold instance holds a failed key read on its own clock (a test's: moved past the hold below).
    clock = DevClock()
    cold = Runtime(
        env=app_env(tenant, azurite.connection_string, GRAPH_TIMEOUT_SECONDS="1"), clock=clock.monotonic
    )
    cold_sessions = cold.sessions()
    rule = {"service": "vault", "path": f"/secrets/{name}", **fault}
    tenant.control("POST", "/faults", rule, expect=201)
    since = tenant.last_seq()
    errors: list[CredentialUnavailable] = []

    def sign_in() -> None:
        try:
            cold_sessions.create(CLAIMS, "{}")
        except CredentialUnavailable as error:
            errors.append(error)

    threads = [threading.Thread(target=sign_in) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(errors) == 4
    assert all(isinstance(e, CredentialUnavailable) and e.status == 503 and e.retry_after for e in errors)
    assert len(session_key_reads(tenant, since)) <= 3  # one read (and the SDK's own retries) for four
    loaded = warm.load(session.id)  # warm instance: unaffected
    assert loaded is not None and warm.save(loaded, token_cache='{"x":1}') is not None
    tenant.control("DELETE", "/faults")
    if "status" not in fault:
        return  # recovery is the same for every fault: checked once

    def recovered() -> bool:
        try:
            return cold_sessions.create(CLAIMS, "{}").key_version != ""
        except CredentialUnavailable:
            return False

    clock.advance(max(float(error.retry_after or 0) for error in errors))  # past the held failure
    wait_until(recovered, timeout=15, what="the cold instance to read the session key")


@pytest.fixture
def own_azurite(tmp_path: Path) -> Iterator[Azurite]:
    """An Azurite of this test's own, persisted on disk, so stopping it disturbs nobody and a restart
    shows what survived."""
    base = free_port_range(3)
    instance = Azurite(
        location=tmp_path / "azurite", blob_port=base, queue_port=base + 1, table_port=base + 2
    )
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


def test_storage_outage_is_503_and_loses_no_session(
    local_tenant: LocalTenant, own_azurite: Azurite, identity: None
) -> None:
    runtime = Runtime(env=app_env(local_tenant, own_azurite.connection_string))
    sessions, flows = runtime.sessions(), runtime.auth_flows()
    session = sessions.create(CLAIMS, cache_with({}, "rt", 1))
    flow = {"state": secrets.token_urlsafe(16), "code_verifier": "v"}
    sealed = flows.put(flow)
    own_azurite.stop()
    actions: list[Callable[[], object]] = [
        lambda: sessions.load(session.id),
        lambda: sessions.save(session, token_cache="{}"),
        lambda: flows.purge_expired(),
        lambda: sessions.purge_expired(),
    ]

    def refused(action: Callable[[], object]) -> StorageUnavailable | None:
        try:
            action()
        except StorageUnavailable as error:  # any other exception fails the test
            return error
        return None

    # All four at once (concurrent callers of the outage): each waits out the storage SDK's own retries.
    with ThreadPoolExecutor(len(actions)) as pool:
        errors = list(pool.map(refused, actions))
    for error in errors:
        assert isinstance(error, StorageUnavailable), "the outage was not refused"
        assert error.status == 503 and error.retry_after
        assert error.code == "storage_unavailable"
    assert flows.take(str(flow["state"]), sealed).flow == flow  # a sign-in in progress needs no storage
    own_azurite.start()
    loaded = sessions.load(session.id)
    assert loaded is not None and loaded.token_cache == session.token_cache


def test_a_dead_storage_endpoint_is_503_then_the_table_is_created_once_it_answers(
    local_tenant: LocalTenant, identity: None, tmp_path: Path
) -> None:
    base = free_port_range(3)
    later = Azurite(location=tmp_path / "azurite", blob_port=base, queue_port=base + 1, table_port=base + 2)
    runtime = Runtime(env=app_env(local_tenant, later.connection_string))
    with pytest.raises(StorageUnavailable):
        runtime.sessions().create(CLAIMS, "{}")
    later.start()
    try:
        session = runtime.sessions().create(CLAIMS, "{}")
        assert runtime.sessions().load(session.id) is not None
    finally:
        later.stop()


def test_flows_live_in_the_cookie_bound_to_their_state_and_old_rows_are_purged(app: Runtime) -> None:
    flows = app.auth_flows()
    flow = {"state": secrets.token_urlsafe(16), "nonce": "n", "code_verifier": "VERIFIER-X"}
    sealed = flows.put(flow, extra={"next": "/me"})
    assert "VERIFIER-X" not in sealed and str(flow["state"]) not in sealed
    flow_table = app.table_service().create_table_if_not_exists(app.settings().auth_flow_table)
    assert list(flow_table.list_entities()) == []  # a started sign-in stores nothing
    with pytest.raises(AuthFlowMismatch):
        flows.take(str(flow["state"]), flows.put({"state": secrets.token_urlsafe(16)}))
    with pytest.raises(AuthFlowMismatch):
        flows.take(secrets.token_urlsafe(16), sealed)
    assert flows.take(str(flow["state"]), sealed).extra == {"next": "/me"}
    # Rows an earlier version stored are purged by the cleanup timer once expired.
    now = datetime.datetime.now(datetime.UTC)
    legacy = secrets.token_hex(32)
    flow_table.upsert_entity(
        {"PartitionKey": legacy[:2], "RowKey": legacy, "Kind": "authflow", "ExpiresAt": now}
    )
    future = now + datetime.timedelta(seconds=FLOW_LIFETIME_SECONDS + 1)
    assert flows.purge_expired(future) == 1 and list(flow_table.list_entities()) == []


def test_cleanup_timer_in_the_host_deletes_expired_rows_only(app_host: Any, azurite: Azurite) -> None:
    import requests

    service = TableServiceClient.from_connection_string(azurite.connection_string)
    table = service.create_table_if_not_exists("sessions")
    now = datetime.datetime.now(datetime.UTC)
    expired, alive = secrets.token_hex(32), secrets.token_hex(32)
    for row, expires in (
        (expired, now - datetime.timedelta(minutes=1)),
        (alive, now + datetime.timedelta(hours=1)),
    ):
        table.upsert_entity({"PartitionKey": row[:2], "RowKey": row, "Kind": "session", "ExpiresAt": expires})
    response = requests.post(app_host.url("/admin/functions/session_cleanup"), json={"input": ""}, timeout=10)
    assert response.status_code == 202

    def gone() -> bool:
        return not list(table.query_entities("RowKey eq @r", parameters={"r": expired}))

    wait_until(gone, timeout=20, what="the cleanup timer to delete the expired session row")
    assert list(table.query_entities("RowKey eq @r", parameters={"r": alive}))
    table.delete_entity(alive[:2], alive)
