"""Graph throttling in process, on a controlled clock: resource-unit costs, the identity token bucket, the
RetryAfter rule, and the Outlook request-rate and concurrency limits."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator import control
from emulator.graph.store import graph_store
from emulator.graph.throttle import identity_cost
from tests.emulator.graph_kit import InProcess, asgi_call, assert_graph_error


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def g(tmp_path_factory: pytest.TempPathFactory) -> InProcess:
    return InProcess.create(Path(tmp_path_factory.mktemp("graph-throttle")))


@pytest.fixture
def clock(g: InProcess) -> Iterator[Clock]:
    fake = Clock()
    throttle = graph_store(g.state).throttle
    tenant_clock, throttle.clock = throttle.clock, fake
    try:
        yield fake
    finally:
        throttle.clock = tenant_clock
        g.state.reset()


@pytest.mark.parametrize(
    ("base", "query", "cost"),
    [
        (2, {}, 2),
        (2, {"$select": "id"}, 1),
        (2, {"$top": "5"}, 1),
        (2, {"$top": "20"}, 2),
        (2, {"$top": "5", "$select": "id"}, 1),
        (1, {"$expand": "manager"}, 2),
        (3, {"$select": "id"}, 2),
        (1, {"$select": "id"}, 1),
    ],
)
def test_identity_cost_modifiers(base: int, query: dict[str, str], cost: int) -> None:
    assert identity_cost(base, query) == cost


def test_resource_unit_header_per_endpoint(g: InProcess, clock: Clock) -> None:
    token = g.app_token("User.Read.All", "GroupMember.Read.All", "Mail.Read")
    admin = g.state.ids.admin.id
    finance = next(x.id for x in g.state.directory.groups if x.display_name == "Finance Team")
    for path, units in [
        ("/v1.0/users", "2"),
        ("/v1.0/users?$select=id", "1"),
        ("/v1.0/users?$top=5", "1"),
        (f"/v1.0/users/{admin}", "1"),
        ("/v1.0/groups", "1"),
        (f"/v1.0/groups/{finance}", "1"),
        (f"/v1.0/groups/{finance}/members", "3"),
        (f"/v1.0/groups/{finance}/members?$select=id", "2"),
        (f"/v1.0/users/{admin}/memberOf", "1"),
        ("/v1.0/users/nobody", "1"),
    ]:
        assert g.get(path, token).headers["x-ms-resource-unit"] == units, path
    assert "x-ms-resource-unit" not in g.get(f"/v1.0/users/{admin}/messages", token).headers
    me = g.get("/v1.0/me", g.user_token(g.state.ids.member, "User.Read"))
    assert me.headers["x-ms-resource-unit"] == "1"


def test_identity_bucket_retry_after_and_early_retry(g: InProcess, clock: Clock) -> None:
    g.state.throttle.identity_units_per_10s = 20  # refills 2 units per second
    token = g.app_token("User.Read.All")
    app_id, tenant = g.state.ids.app.app_id, g.state.directory.tenant_id
    replies = [g.get("/v1.0/users", token) for _ in range(10)]  # 10 x 2 units
    assert all(r.status_code == 200 for r in replies)
    assert "x-ms-throttle-limit-percentage" not in replies[7].headers  # 80 % used: not yet reported
    assert replies[8].headers["x-ms-throttle-limit-percentage"] == "0.9"
    assert replies[9].headers["x-ms-throttle-limit-percentage"] == "1.0"
    throttled = g.get("/v1.0/users", token)
    assert_graph_error(
        throttled,
        429,
        "TooManyRequests",
        f"Too many requests from Identifier:{app_id} under category:throttle.aad.ags.appId.medium. "
        "Please try again later.",
    )
    assert throttled.headers["retry-after"] == "1"
    assert throttled.headers["x-ms-throttle-scope"] == f"Tenant_Application/ReadWrite/{app_id}/{tenant}"
    assert throttled.headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
    assert throttled.headers["x-ms-resource-unit"] == "2"
    assert float(throttled.headers["x-ms-throttle-limit-percentage"]) > 1.0
    clock.now += 0.6  # 1.2 units refilled, but the promise was "1 second": still throttled
    early = g.get("/v1.0/users?$select=id", token)
    assert early.status_code == 429 and early.headers["retry-after"] == "1"
    clock.now += 0.4
    assert g.get("/v1.0/users", token).status_code == 200
    other = g.token(roles=("User.Read.All",), client=g.state.ids.caller)
    assert g.get("/v1.0/users", other).status_code == 200  # another app has its own bucket


def test_long_wait_retry_after(g: InProcess, clock: Clock) -> None:
    g.state.throttle.identity_units_per_10s = 3  # 0.3 units/s: 2 units take 7 s
    token = g.app_token("GroupMember.Read.All")
    finance = next(x.id for x in g.state.directory.groups if x.display_name == "Finance Team")
    assert g.get(f"/v1.0/groups/{finance}/members", token).status_code == 200  # 3 units
    throttled = g.get(f"/v1.0/groups/{finance}/members", token)
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "10"
    clock.now += 9
    assert g.get("/v1.0/groups", token).headers["retry-after"] == "1"
    clock.now += 1
    assert g.get(f"/v1.0/groups/{finance}/members", token).status_code == 200


def test_budget_change_through_control_api_resets_buckets(g: InProcess, clock: Clock) -> None:
    g.state.throttle.identity_units_per_10s = 2
    token = g.app_token("User.Read.All")
    assert g.get("/v1.0/users", token).status_code == 200
    assert g.get("/v1.0/users", token).status_code == 429
    reply = asyncio.run(
        asgi_call(control.build_app(g.state), "PUT", "/throttle", json_body={"identityUnitsPer10s": 4})
    )
    assert reply.json()["identityUnitsPer10s"] == 4
    assert g.get("/v1.0/users", token).status_code == 200


def test_default_budget_by_tenant_size(g: InProcess, clock: Clock) -> None:
    assert g.state.throttle.identity_budget(len(g.state.directory.users)) == 5000
    token = g.app_token("User.Read.All")
    assert all(g.get("/v1.0/users?$top=1", token).status_code == 200 for _ in range(50))


def test_mail_requests_per_10_minutes(g: InProcess, clock: Clock) -> None:
    g.state.throttle.mail_requests_per_10min = 3
    token = g.app_token("Mail.Read")
    admin, member = g.state.ids.admin.id, g.state.ids.member.id
    for _ in range(3):
        assert g.get(f"/v1.0/users/{admin}/messages?$top=1", token).status_code == 200
        clock.now += 10
    throttled = g.get(f"/v1.0/users/{admin}/mailFolders", token)
    assert_graph_error(throttled, 429, "ApplicationThrottled")
    assert throttled.headers["retry-after"] == "570"  # until the first of the three leaves the window
    assert g.get(f"/v1.0/users/{member}/messages?$top=1", token).status_code == 200  # per mailbox
    clock.now += 569
    assert g.get(f"/v1.0/users/{admin}/messages?$top=1", token).status_code == 429
    clock.now += 1
    assert g.get(f"/v1.0/users/{admin}/messages?$top=1", token).status_code == 200


async def _burst(g: InProcess, token: str, paths: list[str]) -> list[int]:
    replies = await asyncio.gather(
        *(asgi_call(g.app, "GET", p, {"Authorization": f"Bearer {token}"}) for p in paths)
    )
    for r in replies:
        if r.status_code == 429:
            assert r.json()["error"] == {
                **r.json()["error"],
                "code": "ApplicationThrottled",
                "message": "Application is over its MailboxConcurrency limit.",
            }
            assert r.headers["retry-after"] == "1"
    return [r.status_code for r in replies]


@pytest.fixture
def real_time(g: InProcess) -> Iterator[None]:
    yield
    g.state.reset()


def test_mail_concurrency_per_app(g: InProcess, real_time: None) -> None:
    g.freeze_clock()  # the 1 s Retry-After runs out only when the test advances the clock
    g.state.throttle.mail_concurrency = 2
    g.state.throttle.mail_concurrency_scope = "app"  # the newer doc's reading, still selectable
    graph_store(g.state).settings.mail_latency_ms = 100
    token = g.app_token("Mail.Read")
    admin, member = g.state.ids.admin.id, g.state.ids.member.id
    paths = [f"/v1.0/users/{admin}/messages?$top=1", f"/v1.0/users/{member}/messages?$top=1"] * 3
    statuses = asyncio.run(_burst(g, token, paths))
    assert statuses.count(200) == 2 and statuses.count(429) == 4
    early = g.get(paths[0], token)  # within the 1 s Retry-After
    assert early.status_code == 429
    g.advance_clock(1.05)  # past the 1 s Retry-After, on the tenant's clock (real_time rewinds it)
    assert g.get(paths[0], token).status_code == 200


def test_mail_concurrency_per_mailbox_is_the_default(g: InProcess, real_time: None) -> None:
    assert g.state.throttle.mail_concurrency_scope == "mailbox"
    g.state.throttle.mail_concurrency = 1
    graph_store(g.state).settings.mail_latency_ms = 100
    token = g.app_token("Mail.Read")
    admin, member = g.state.ids.admin.id, g.state.ids.member.id
    statuses = asyncio.run(
        _burst(
            g,
            token,
            [
                f"/v1.0/users/{admin}/messages",
                f"/v1.0/users/{admin}/messages",
                f"/v1.0/users/{member}/messages",
                f"/v1.0/users/{member}/messages",
            ],
        )
    )
    assert statuses == [200, 429, 200, 429]


def test_batch_sub_requests_are_throttled_individually(g: InProcess, clock: Clock) -> None:
    g.state.throttle.identity_units_per_10s = 5
    token = g.app_token("User.Read.All")
    requests = [{"id": str(i), "method": "GET", "url": "/users"} for i in range(4)]
    reply = g.post("/v1.0/$batch", token, {"requests": requests})
    assert reply.status_code == 200
    statuses = [r["status"] for r in reply.json()["responses"]]
    assert statuses == [200, 200, 429, 429]
    inner = reply.json()["responses"][2]
    assert inner["headers"]["Retry-After"] == "2"  # 1 unit left, 2 needed, 0.5 unit/s
    assert inner["body"]["error"]["code"] == "TooManyRequests"
