"""Listing stays cheap with 100,000 users: sorted indexes are built once and reused until the directory
changes. The work of each request is counted (sort keys computed, index entries walked), not timed: a
sort or a scan per request shows in the counts on any machine; the speed itself is bench/'s to measure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator.graph import collection
from emulator.graph.store import graph_store
from tests.emulator.graph_kit import InProcess


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> InProcess:
    return InProcess.create(Path(tmp_path_factory.mktemp("graph-perf")), users=100_000)


class Work:
    """What warm listings cost the tenant, counted (not timed): sort keys computed (the index build
    computes one per user; a page computes one, for its nextLink) and index entries walked."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sort_keys = 0
        self.walked = 0
        sort_key, walk = collection.sort_key, collection._walk

        def counting_sort_key(value: Any, obj_id: str) -> tuple[int, str, str]:
            self.sort_keys += 1
            return sort_key(value, obj_id)

        def counting_walk(*args: Any, **kwargs: Any) -> Iterator[Any]:
            for item in walk(*args, **kwargs):
                self.walked += 1
                yield item

        monkeypatch.setattr(collection, "sort_key", counting_sort_key)
        monkeypatch.setattr(collection, "_walk", counting_walk)


def _pages(big: InProcess, token: str, url: str, work: Work, runs: int = 15) -> None:
    """``runs`` warm requests of ``url``: each must cost one page, not a sort or a scan of 100,000 users."""
    before = (work.sort_keys, work.walked)
    for _ in range(runs):
        assert big.get(url, token).status_code == 200
    assert work.sort_keys - before[0] <= runs  # the nextLink's key, never an index build
    assert work.walked - before[1] <= runs * 11  # $top=10 and the one that shows there is more


def test_warm_list_is_fast_and_reuses_the_index(big: InProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    token = big.app_token("User.Read.All")
    assert big.get("/v1.0/users?$top=10", token).status_code == 200  # builds the index once
    cache = graph_store(big.state).indexes
    index = cache[("users", "id")][2]
    work = Work(monkeypatch)
    _pages(big, token, "/v1.0/users?$top=10", work)
    assert cache[("users", "id")][2] is index  # not rebuilt per request
    assert big.get("/v1.0/users?$top=10&$orderby=displayName", token).status_code == 200
    assert work.sort_keys > 100_000  # the displayName index: built once, here
    by_name = cache[("users", "displayName")][2]
    _pages(big, token, "/v1.0/users?$top=10&$orderby=displayName", work)
    assert cache[("users", "displayName")][2] is by_name
    page = big.get("/v1.0/users?$top=10", token).json()
    _pages(big, token, page["@odata.nextLink"], work)
    assert cache[("users", "id")][2] is index


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
