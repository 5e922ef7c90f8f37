"""FlowStore logic on an in-memory table: binding, one-time take, replay vs unknown, expiry, tamper."""

from __future__ import annotations

import datetime
import secrets

import pytest

from shared.core.errors import AuthFlowMismatch, AuthFlowReplayed, AuthFlowUnknown, StorageUnavailable
from shared.signin.flows import FLOW_LIFETIME_SECONDS, FlowStore
from shared.storage.tables import EnsuredTable, hashed_key
from tests.unit.test_session_keys import Clock, FakeKeys, ring
from tests.unit.test_sessions import FakeService, FakeTable, Wall


def flows(table: FakeTable, wall: Wall) -> FlowStore:
    ensured = EnsuredTable(FakeService(table), "authflows")  # type: ignore[arg-type]
    return FlowStore(ensured, ring(FakeKeys(), Clock()), now=wall)


def msal_flow() -> dict[str, object]:
    return {
        "state": secrets.token_urlsafe(16),
        "nonce": "n-" + secrets.token_hex(8),
        "code_verifier": "VERIFIER-" + secrets.token_urlsafe(32),
        "auth_uri": "https://login.example/authorize?...",
    }


def test_put_take_once_and_nothing_secret_stored_in_clear() -> None:
    table, wall = FakeTable(), Wall()
    store = flows(table, wall)
    flow = msal_flow()
    binding = store.put(flow, extra={"next": "/users?page=2"})
    assert 40 <= len(binding) <= 60
    (entity, _) = next(iter(table.rows.values()))
    text = repr(entity)
    for secret in (str(flow["state"]), str(flow["code_verifier"]), str(flow["nonce"]), binding, "/users"):
        assert secret not in text
    assert entity["RowKey"] == hashed_key(str(flow["state"]))
    taken = store.take(str(flow["state"]), binding)
    assert taken.flow == flow and taken.extra == {"next": "/users?page=2"}
    assert "VERIFIER" not in repr(taken)
    with pytest.raises(AuthFlowReplayed):
        store.take(str(flow["state"]), binding)


def test_another_browser_or_no_cookie_is_a_mismatch_and_leaves_the_flow_usable() -> None:
    table, wall = FakeTable(), Wall()
    store = flows(table, wall)
    flow = msal_flow()
    binding = store.put(flow)
    other_binding = store.put(msal_flow())
    for wrong in (None, "", other_binding, binding[:-1] + ("A" if binding[-1] != "A" else "B"), "x" * 500):
        with pytest.raises(AuthFlowMismatch):
            store.take(str(flow["state"]), wrong)
    assert store.take(str(flow["state"]), binding).flow == flow


def test_unknown_malformed_and_expired_states() -> None:
    table, wall = FakeTable(), Wall()
    store = flows(table, wall)
    for state in (None, "", "short", "has space in it", "x" * 300, secrets.token_urlsafe(16)):
        with pytest.raises(AuthFlowUnknown):
            store.take(state, "b" * 43)
    flow = msal_flow()
    binding = store.put(flow)
    wall.now += datetime.timedelta(seconds=FLOW_LIFETIME_SECONDS)
    with pytest.raises(AuthFlowUnknown):
        store.take(str(flow["state"]), binding)
    with pytest.raises(ValueError, match="state"):
        store.put({"nonce": "no state"})


def test_tampered_flow_is_unknown() -> None:
    table, wall = FakeTable(), Wall()
    store = flows(table, wall)
    flow = msal_flow()
    binding = store.put(flow)
    key, (entity, etag) = next(iter(table.rows.items()))
    flipped = bytearray(entity["Data0"])
    flipped[-1] ^= 1
    table.rows[key] = ({**entity, "Data0": bytes(flipped)}, etag)
    with pytest.raises(AuthFlowUnknown):
        store.take(str(flow["state"]), binding)


def test_two_concurrent_callbacks_exactly_one_wins() -> None:
    table, wall = FakeTable(), Wall()
    store = flows(table, wall)
    flow = msal_flow()
    binding = store.put(flow)
    # The second callback reads the row before the first one's tombstone lands.
    table.before_write = lambda: results.append(_take(store, str(flow["state"]), binding))
    results: list[str] = []
    results.append(_take(store, str(flow["state"]), binding))
    assert sorted(results) == ["replayed", "taken"]


def _take(store: FlowStore, state: str, binding: str) -> str:
    try:
        store.take(state, binding)
    except AuthFlowReplayed:
        return "replayed"
    return "taken"


def test_storage_down_is_503() -> None:
    table, wall = FakeTable(), Wall()
    store = flows(table, wall)
    flow = msal_flow()
    binding = store.put(flow)
    table.down = True
    with pytest.raises(StorageUnavailable):
        store.take(str(flow["state"]), binding)
    with pytest.raises(StorageUnavailable):
        store.put(msal_flow())
    table.down = False
    assert store.take(str(flow["state"]), binding).flow == flow
