"""SessionStore logic on an in-memory table (the wire behaviour is tested against Azurite in
tests/integration/test_session_store.py): expiry, coarsened writes, tamper, conflicts, sizes, failures."""

from __future__ import annotations

import datetime
import json
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.data.tables import TableEntity

from shared.core.errors import StorageUnavailable
from shared.signin.sessions import SessionClaims, SessionStore, touch_interval
from shared.storage.tables import EnsuredTable, hashed_key
from tests.unit.test_session_keys import Clock, FakeKeys, ring

CLAIMS = SessionClaims(oid="o-1", tid="t-1", name="Adèle", preferred_username="adele@contoso", roles=("R",))
T0 = datetime.datetime(2026, 12, 1, 8, 0, tzinfo=datetime.UTC)


class FakeTable:
    """The TableClient calls the stores make, with Table Storage's ETag semantics and real azure errors."""

    table_name = "sessions"

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}
        self.writes = 0
        self.down = False
        self.before_write: Any = None  # called once before the next conditional write (a racing request)

    def _check(self) -> None:
        if self.down:
            raise ServiceRequestError("connection refused")

    def _etag(self) -> str:
        return f"W/\"datetime'{secrets.token_hex(4)}'\""

    def create_entity(self, entity: dict[str, Any]) -> dict[str, Any]:
        self._check()
        key = (entity["PartitionKey"], entity["RowKey"])
        if key in self.rows:
            raise ResourceExistsError("exists")
        self.writes += 1
        self.rows[key] = (dict(entity), self._etag())
        return {"etag": self.rows[key][1]}

    def upsert_entity(self, entity: dict[str, Any]) -> dict[str, Any]:
        self._check()
        self.writes += 1
        self.rows[(entity["PartitionKey"], entity["RowKey"])] = (dict(entity), self._etag())
        return {}

    def get_entity(self, partition_key: str, row_key: str) -> TableEntity:
        self._check()
        found = self.rows.get((partition_key, row_key))
        if found is None:
            raise ResourceNotFoundError("not found")
        entity = TableEntity(found[0])
        entity._metadata = {"etag": found[1], "timestamp": None}
        return entity

    def update_entity(
        self, entity: dict[str, Any], mode: Any = None, *, etag: str, **_: Any
    ) -> dict[str, Any]:
        self._check()
        if self.before_write is not None:
            hook, self.before_write = self.before_write, None
            hook()
        key = (entity["PartitionKey"], entity["RowKey"])
        found = self.rows.get(key)
        if found is None:
            raise ResourceNotFoundError("not found")
        if found[1] != etag:
            raise ResourceModifiedError("412")
        self.writes += 1
        self.rows[key] = (dict(entity), self._etag())
        return {"etag": self.rows[key][1]}

    def delete_entity(self, partition_key: str, row_key: str, *, etag: str | None = None, **_: Any) -> None:
        self._check()
        found = self.rows.get((partition_key, row_key))
        if found is None:
            return
        if etag is not None and found[1] != etag:
            raise ResourceModifiedError("412")
        del self.rows[(partition_key, row_key)]

    def query_entities(self, query_filter: str, *, parameters: dict[str, Any], **_: Any) -> list[TableEntity]:
        self._check()
        if query_filter == "Kind eq @kind":  # the person index's one-time backfill
            found = [(e, etag) for (e, etag) in self.rows.values() if e.get("Kind") == parameters["kind"]]
        else:
            assert query_filter == "PartitionKey eq @pk"  # the person index's lookup
            found = [(e, etag) for (pk, _rk), (e, etag) in self.rows.items() if pk == parameters["pk"]]
        entities = []
        for entity, etag in found:
            row = TableEntity(entity)
            row._metadata = {"etag": etag, "timestamp": None}
            entities.append(row)
        return entities


def sessions_in(table: FakeTable) -> dict[tuple[str, str], Any]:
    """The session rows (the person index's rows left out)."""
    return {key: row for key, row in table.rows.items() if row[0].get("Kind") != "person-index"}


class FakeService:
    def __init__(self, table: FakeTable) -> None:
        self.table, self.created = table, 0

    def create_table(self, name: str) -> None:
        self.created += 1
        raise ResourceExistsError("exists")  # as when Bicep created it

    def get_table_client(self, name: str) -> FakeTable:
        return self.table


class Wall:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime.datetime:
        return self.now


def store(table: FakeTable, wall: Wall, *, idle: int = 60, max_age: int = 24) -> SessionStore:
    ensured = EnsuredTable(FakeService(table), "sessions")  # type: ignore[arg-type]
    return SessionStore(
        ensured, ring(FakeKeys(), Clock()), idle_minutes=idle, max_age_hours=max_age, now=wall
    )


def test_create_load_roundtrip_keeps_no_secret_in_keys_or_plain_properties() -> None:
    table, wall = FakeTable(), Wall()
    sessions = store(table, wall)
    token_cache = json.dumps({"RefreshToken": {"k": {"secret": "rt-SECRET-value"}}})
    created = sessions.create(CLAIMS, token_cache)
    assert len(created.id) == 43 and created.etag
    ((pk, rk), (entity, _)) = next(iter(table.rows.items()))
    assert rk == hashed_key(created.id) and created.id not in rk and pk == rk[:2]
    stored = repr(entity)
    for secret in (created.id, "rt-SECRET-value", "adele@contoso", "Adèle"):
        assert secret not in stored
    loaded = sessions.load(created.id)
    assert loaded is not None
    signed_in = CLAIMS._replace(roles_checked=T0.timestamp())  # the sign-in's roles, confirmed then
    assert (loaded.claims, loaded.token_cache, loaded.created) == (signed_in, token_cache, T0)
    assert created.id not in repr(loaded) and "rt-SECRET" not in repr(loaded)


def test_malformed_and_unknown_ids_are_none_without_storage_for_malformed() -> None:
    table, wall = FakeTable(), Wall()
    sessions = store(table, wall)
    table.down = True  # proves no storage call is made for these
    for bad in (None, "", "short", "x" * 200, "a/b" * 20, "é" * 43):
        assert sessions.load(bad) is None
    table.down = False
    assert sessions.load(secrets.token_urlsafe(32)) is None


def test_writes_are_coarsened_and_idle_expiry_counts_from_the_last_write() -> None:
    table, wall = FakeTable(), Wall()
    sessions = store(table, wall, idle=60)
    assert touch_interval(60) == 300 and touch_interval(8) == 120
    session = sessions.create(CLAIMS, "{}")
    writes = table.writes
    wall.now += datetime.timedelta(minutes=4)
    assert sessions.save(session) is session  # unchanged and fresh: no write
    assert table.writes == writes
    wall.now += datetime.timedelta(minutes=2)
    touched = sessions.save(session)
    assert touched is not None and touched.last_seen == wall.now and table.writes == writes + 1
    wall.now += datetime.timedelta(minutes=59)
    assert sessions.load(session.id) is not None  # 59 min after the touch
    wall.now += datetime.timedelta(minutes=1)
    assert sessions.load(session.id) is None  # idle
    assert not sessions_in(table)  # the expired row is deleted


def test_absolute_expiry_is_never_extended_by_use() -> None:
    table, wall = FakeTable(), Wall()
    sessions = store(table, wall, idle=60, max_age=1)
    session = sessions.create(CLAIMS, "{}")
    for _ in range(10):  # 55 minutes of steady use
        wall.now += datetime.timedelta(minutes=5, seconds=30)
        loaded = sessions.load(session.id)
        assert loaded is not None
        assert sessions.save(loaded, token_cache='{"n":1}') is not None
    wall.now = T0 + datetime.timedelta(hours=1)
    assert sessions.load(session.id) is None
    assert not sessions_in(table)


def test_tampered_rows_are_none_and_deleted() -> None:
    table, wall = FakeTable(), Wall()
    sessions = store(table, wall)
    victim, other = sessions.create(CLAIMS, "{}"), sessions.create(CLAIMS, '{"other":1}')
    (entity, etag) = table.rows[(hashed_key(victim.id)[:2], hashed_key(victim.id))]
    flipped = bytearray(entity["Data0"])
    flipped[20] ^= 0x80
    table.rows[(entity["PartitionKey"], entity["RowKey"])] = ({**entity, "Data0": bytes(flipped)}, etag)
    assert sessions.load(victim.id) is None
    assert (entity["PartitionKey"], entity["RowKey"]) not in table.rows
    # Another row's ciphertext copied into this row does not open either (the row key is bound in).
    victim2 = sessions.create(CLAIMS, "{}")
    key2 = (hashed_key(victim2.id)[:2], hashed_key(victim2.id))
    other_entity = table.rows[(hashed_key(other.id)[:2], hashed_key(other.id))][0]
    table.rows[key2] = ({**table.rows[key2][0], "Data0": other_entity["Data0"]}, table.rows[key2][1])
    assert sessions.load(victim2.id) is None


def test_conflicting_write_merges_onto_the_fresher_record() -> None:
    table, wall = FakeTable(), Wall()
    sessions = store(table, wall)
    base = json.dumps(
        {"AccessToken": {}, "RefreshToken": {"rt": {"secret": "rt0", "last_modification_time": "1"}}}
    )
    session = sessions.create(CLAIMS, base)
    first, second = sessions.load(session.id), sessions.load(session.id)
    assert first is not None and second is not None
    mine = json.dumps(
        {
            "AccessToken": {"graph": {"secret": "g", "cached_at": "5"}},
            "RefreshToken": json.loads(base)["RefreshToken"],
        }
    )
    theirs = json.dumps(
        {
            "AccessToken": {"sp": {"secret": "s", "cached_at": "6"}},
            "RefreshToken": {"rt": {"secret": "rt1", "last_modification_time": "6"}},
        }
    )
    assert sessions.save(second, token_cache=theirs) is not None
    saved = sessions.save(first, token_cache=mine)
    assert saved is not None
    stored = json.loads(saved.token_cache)
    assert set(stored["AccessToken"]) == {"graph", "sp"}
    assert stored["RefreshToken"]["rt"]["secret"] == "rt1"
    reloaded = sessions.load(session.id)
    assert reloaded is not None and json.loads(reloaded.token_cache) == stored


def test_a_session_deleted_meanwhile_is_not_written_back() -> None:
    table, wall = FakeTable(), Wall()
    sessions = store(table, wall)
    session = sessions.create(CLAIMS, "{}")
    sessions.delete(session.id)
    assert sessions.save(session, token_cache='{"new":1}') is None
    assert not sessions_in(table)
    # ... and a delete racing the write's re-read too
    session = sessions.create(CLAIMS, "{}")
    table.before_write = lambda: sessions.delete(session.id)
    assert sessions.save(session, token_cache='{"new":2}') is None
    assert not sessions_in(table)
    sessions.delete(session.id)  # idempotent


def test_update_retries_a_bounded_number_of_times() -> None:
    table, wall = FakeTable(), Wall()
    sessions = store(table, wall)
    session = sessions.create(CLAIMS, "{}")
    calls: list[int] = []

    def racing(current: Any) -> Any:
        calls.append(1)
        key = (hashed_key(session.id)[:2], hashed_key(session.id))
        entity, _ = table.rows[key]
        table.before_write = lambda: table.rows.__setitem__(key, (entity, table._etag()))
        return current

    with pytest.raises(StorageUnavailable):
        sessions.update(session.id, racing)
    assert len(calls) == 5
    assert sessions.update(session.id, lambda current: None) is not None  # no change: no write


def test_oversized_caches_drop_access_tokens_first() -> None:
    table, wall = FakeTable(), Wall()
    sessions = store(table, wall)
    huge = {f"at-{i}": {"secret": secrets.token_urlsafe(3000)} for i in range(400)}  # ~1.6 MB, incompressible
    cache = json.dumps({"AccessToken": huge, "RefreshToken": {"rt": {"secret": "keep-me"}}})
    session = sessions.create(CLAIMS, cache)
    loaded = sessions.load(session.id)
    assert loaded is not None
    kept = json.loads(loaded.token_cache)
    assert kept["AccessToken"] == {} and kept["RefreshToken"]["rt"]["secret"] == "keep-me"


def test_storage_failures_are_503_and_delete_nothing() -> None:
    table, wall = FakeTable(), Wall()
    sessions = store(table, wall)
    session = sessions.create(CLAIMS, "{}")
    table.down = True
    actions: list[Callable[[], object]] = [
        lambda: sessions.load(session.id),
        lambda: sessions.save(session, token_cache='{"x":1}'),
        lambda: sessions.create(CLAIMS, "{}"),
        lambda: sessions.delete(session.id),
    ]
    for action in actions:
        with pytest.raises(StorageUnavailable) as caught:
            action()
        assert caught.value.status == 503 and caught.value.retry_after
    table.down = False
    assert sessions.load(session.id) is not None


def test_a_touch_racing_another_touch_writes_once() -> None:
    table, wall = FakeTable(), Wall()
    sessions = store(table, wall)
    session = sessions.create(CLAIMS, '{"a":1}')
    wall.now += datetime.timedelta(minutes=6)
    first, second = sessions.load(session.id), sessions.load(session.id)
    assert first is not None and second is not None
    assert sessions.save(first) is not None
    writes = table.writes
    result = sessions.save(second)  # 412, and the fresher row was just touched: nothing left to do
    assert result is not None and result.last_seen == wall.now and table.writes == writes
    assert result.token_cache == '{"a":1}'


def test_ending_a_persons_sessions_ends_them_all_and_no_one_elses() -> None:
    table, wall = FakeTable(), Wall()
    sessions = store(table, wall)
    first, second = sessions.create(CLAIMS, "{}"), sessions.create(CLAIMS, "{}")
    other = sessions.create(CLAIMS._replace(oid="o-2"), "{}")
    assert sessions.end_for_person("T-1", "O-1") == 2  # ids compare case-insensitively
    assert sessions.load(first.id) is None and sessions.load(second.id) is None
    assert sessions.load(other.id) is not None
    assert sessions.end_for_person("t-1", "o-1") == 0  # idempotent: the index went with the sessions
    index_rows = [row for row in table.rows.values() if row[0].get("Kind") == "person-index"]
    assert len(index_rows) == 1 and index_rows[0][0]["ExpiresAt"] == T0 + datetime.timedelta(hours=24)


def test_sessions_created_before_the_person_index_are_found_once_by_the_backfill() -> None:
    table, wall = FakeTable(), Wall()
    sessions = store(table, wall)
    legacy, other = sessions.create(CLAIMS, "{}"), sessions.create(CLAIMS._replace(oid="o-2"), "{}")
    for key in [k for k, row in table.rows.items() if row[0].get("Kind") == "person-index"]:
        del table.rows[key]  # as a version without the index left them
    assert sessions.end_for_person("T-1", "O-1") == 1  # found by the backfill
    assert sessions.load(legacy.id) is None and sessions.load(other.id) is not None
    marker = table.rows[("person-index", "backfilled")][0]
    assert marker["Indexed"] == 2 and "ExpiresAt" not in marker  # the cleanup timer leaves it
    indexed = [row for row in table.rows.values() if row[0].get("Kind") == "person-index"]
    assert len(indexed) == 1 and indexed[0][0]["ExpiresAt"] == T0 + datetime.timedelta(hours=24)
    newer = sessions.create(CLAIMS, "{}")  # indexed at creation; the backfill does not run again
    rows_before = dict(table.rows)
    assert sessions.end_for_person("t-1", "o-1") == 1 and sessions.load(newer.id) is None
    assert table.rows[("person-index", "backfilled")] == rows_before[("person-index", "backfilled")]
