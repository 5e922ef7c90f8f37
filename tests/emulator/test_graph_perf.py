"""Listing stays cheap with 100,000 users: sorted indexes are built once and reused until the directory
changes. (Generous bounds: they catch an O(n log n) per request, not a slow machine.)"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest

from emulator.graph.store import graph_store
from tests.emulator.graph_kit import InProcess


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> InProcess:
    return InProcess.create(Path(tmp_path_factory.mktemp("graph-perf")), users=100_000)


def _median_ms(big: InProcess, token: str, url: str, runs: int = 15) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        reply = big.get(url, token)
        times.append((time.perf_counter() - start) * 1000)
        assert reply.status_code == 200
    return statistics.median(times)


def test_warm_list_is_fast_and_reuses_the_index(big: InProcess) -> None:
    token = big.app_token("User.Read.All")
    assert big.get("/v1.0/users?$top=10", token).status_code == 200  # builds the index once
    cache = graph_store(big.state).indexes
    index = cache[("users", "id")][2]
    assert _median_ms(big, token, "/v1.0/users?$top=10") < 25
    assert cache[("users", "id")][2] is index  # not rebuilt per request
    assert big.get("/v1.0/users?$top=10&$orderby=displayName", token).status_code == 200
    assert _median_ms(big, token, "/v1.0/users?$top=10&$orderby=displayName") < 25
    page = big.get("/v1.0/users?$top=10", token).json()
    assert _median_ms(big, token, page["@odata.nextLink"]) < 25


def test_index_is_rebuilt_after_a_change(big: InProcess) -> None:
    token = big.app_token("User.Read.All")
    big.get("/v1.0/users?$top=1", token)
    cache = graph_store(big.state).indexes
    before = cache[("users", "id")][2]
    victim = big.state.directory.users[500]
    big.state.directory.remove_user(victim.id)
    ids = [u["id"] for u in big.get("/v1.0/users?$top=999&$select=id", token).json()["value"]]
    assert cache[("users", "id")][2] is not before
    assert victim.id not in ids
