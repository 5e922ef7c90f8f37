"""The subscriptions timer's decisions with an injected clock (renewal at half the lifetime, recreation,
key rotation, scope changes, poll mode), on the HTTP seam fake and an in-memory table."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from shared.app.tenants import graph_config
from shared.core.errors import GraphFunctionsError
from shared.graph.client import GraphClient
from shared.notifications.client_state import ClientStates, key_version
from shared.notifications.graph_subscriptions import MAIL_LIFETIME_MINUTES
from shared.notifications.keeper import SWEEP_MINUTES, SubscriptionKeeper
from shared.notifications.store import Target

from .conftest import GRAPH, make_settings
from .fakes import FakeClock, FakeTokens, FakeTransport, SentRequest, graph_error, respond
from .test_session_keys import Clock, FakeKeys, ring

TENANT = "11111111-1111-1111-1111-111111111111"
GROUP = "22222222-aaaa-4aaa-8aaa-222222222222"
ALICE = "aaaaaaaa-0000-4000-8000-000000000001"
BOB = "bbbbbbbb-0000-4000-8000-000000000002"
T0 = datetime.datetime(2026, 12, 7, 8, 0, tzinfo=datetime.UTC)


class MemoryTable:
    """The NotificationTable calls the keeper makes, in memory."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.index_rows: dict[str, str] = {}

    def targets(self, tenant_id: str) -> list[Target]:
        return [Target(tenant_id=tenant_id, key=key, **fields) for key, fields in self.rows.items()]

    def update(self, tenant_id: str, key: str, **changes: Any) -> None:
        row = self.rows.setdefault(key, {})
        for name, value in changes.items():
            if value is None:
                row.pop(name, None)
            else:
                row[name] = value

    def delete(self, target: Target) -> None:
        self.rows.pop(target.key, None)
        if target.subscription_id:
            self.index_rows.pop(target.subscription_id, None)

    def index(self, tenant_id: str, subscription_id: str, key: str) -> None:
        self.index_rows[subscription_id] = key

    def unindex(self, tenant_id: str, subscription_id: str) -> None:
        self.index_rows.pop(subscription_id, None)


class FakeGraph:
    """Graph's subscription API and group members over the HTTP seam."""

    def __init__(self, members: list[str]) -> None:
        self.members = members
        self.live: dict[str, dict[str, Any]] = {}
        self.counter = 0
        self.down: set[str] = set()  # "members" or an HTTP method of the subscription API: answers 403
        self.transport = FakeTransport()
        self.transport.route(f"{GRAPH}/v1.0/groups/", self._members)
        self.transport.route(f"{GRAPH}/v1.0/subscriptions", self._subscriptions)

    def _members(self, request: SentRequest) -> Any:
        if "members" in self.down:
            return graph_error(403, "Authorization_RequestDenied")
        users = [
            {"@odata.type": "#microsoft.graph.user", "id": m, "userPrincipalName": f"{m[:4]}@x"}
            for m in self.members
        ]
        return respond(200, {"value": users})

    def _subscriptions(self, request: SentRequest) -> Any:
        path = request.url.removeprefix(f"{GRAPH}/v1.0/subscriptions").strip("/")
        if request.method in self.down:
            return graph_error(403, "ExtensionError")
        if request.method == "GET":
            return respond(200, {"value": list(self.live.values())})
        if request.method == "POST" and not path:
            body = json.loads(request.data)
            self.counter += 1
            sid = f"00000000-0000-4000-8000-{self.counter:012d}"
            self.live[sid] = {"id": sid, **body}
            return respond(201, self.live[sid])
        if path not in self.live:
            return graph_error(404, "ResourceNotFound")
        if request.method == "PATCH":
            self.live[path].update(json.loads(request.data))
            return respond(200, self.live[path])
        if request.method == "DELETE":
            del self.live[path]
            return respond(204, text="")
        raise AssertionError(request)

    def calls(self, method: str) -> list[SentRequest]:
        return [r for r in self.transport.requests if r.method == method and "/subscriptions" in r.url]


class Wall:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime.datetime:
        return self.now


def keeper(
    graph: FakeGraph,
    table: MemoryTable,
    wall: Wall,
    keys: FakeKeys,
    *,
    mode: str = "webhook",
    base: str = "https://app.example",
) -> tuple[SubscriptionKeeper, list[dict[str, Any]]]:
    clock = FakeClock()
    client = GraphClient(
        config=graph_config(make_settings()),
        tokens=FakeTokens(),
        transport=graph.transport,
        sleep=clock.sleep,
        clock=clock,
    )
    work: list[dict[str, Any]] = []
    key_ring = ring(keys, Clock())
    return (
        SubscriptionKeeper(
            tenant_id=TENANT,
            graph=client,
            table=table,  # type: ignore[arg-type]
            states=ClientStates(key_ring),
            latest_key_version=key_ring.latest_version,
            send_work=lambda body: work.append(json.loads(body)),
            scope=GROUP,
            public_base_url=base,
            mode=mode,
            now=wall,
        ),
        work,
    )


def test_first_run_subscribes_members_and_users_and_catches_up_each_mailbox() -> None:
    graph, table, wall, keys = FakeGraph([ALICE, BOB]), MemoryTable(), Wall(), FakeKeys()
    run, work = keeper(graph, table, wall, keys)
    counts = run.run()
    assert counts["created"] == 3 and counts["caught_up"] == 2
    resources = sorted(s["resource"] for s in graph.live.values())
    assert resources == sorted(
        [
            f"users/{ALICE}/mailFolders('inbox')/messages",
            f"users/{BOB}/mailFolders('inbox')/messages",
            "users",
        ]
    )
    for sub in graph.live.values():
        assert sub["notificationUrl"] == "https://app.example/api/graph/notifications"
        assert sub["lifecycleNotificationUrl"] == "https://app.example/api/graph/lifecycle"
        assert sub["changeType"] == ("updated,deleted" if sub["resource"] == "users" else "created")
        row = table.rows[table.index_rows[sub["id"]]]
        assert row["client_state_hash"] != sub["clientState"] and "clientState" not in row
        assert row["key_version"] == key_version(sub["clientState"])
    assert {w["target"] for w in work} == {f"mailbox-{ALICE}", f"mailbox-{BOB}"}
    assert table.rows[f"mailbox-{ALICE}"]["since"] == T0


def test_renewal_waits_for_half_the_lifetime_then_patches_and_a_lost_one_is_recreated() -> None:
    graph, table, wall, keys = FakeGraph([ALICE]), MemoryTable(), Wall(), FakeKeys()
    run, work = keeper(graph, table, wall, keys)
    run.run()
    wall.now += datetime.timedelta(minutes=MAIL_LIFETIME_MINUTES / 2 - 5)
    assert run.run()["renewed"] == 0 and not graph.calls("PATCH")
    wall.now += datetime.timedelta(minutes=10)
    assert run.run()["renewed"] == 1  # the mailbox's (users' lifetime is 41,000 minutes: not yet)
    patched = {r.url.rsplit("/", 1)[1] for r in graph.calls("PATCH")}
    mail_sid = table.rows[f"mailbox-{ALICE}"]["subscription_id"]
    assert mail_sid in patched
    assert table.rows[f"mailbox-{ALICE}"]["expires_at"] > wall.now + datetime.timedelta(
        minutes=MAIL_LIFETIME_MINUTES - 1
    )
    del graph.live[mail_sid]  # Graph removed it (expired, or subscriptionRemoved unseen)
    work.clear()
    counts = run.run()
    assert counts["created"] == 1
    assert table.rows[f"mailbox-{ALICE}"]["subscription_id"] != mail_sid and mail_sid not in table.index_rows
    assert [w["target"] for w in work] == [f"mailbox-{ALICE}"]  # and what it missed is caught up


def test_a_key_rotation_replaces_each_subscription_with_a_fresh_client_state() -> None:
    graph, table, wall, keys = FakeGraph([ALICE]), MemoryTable(), Wall(), FakeKeys()
    run, _ = keeper(graph, table, wall, keys)
    run.run()
    before = {s["id"]: s["clientState"] for s in graph.live.values()}
    keys.add()
    run, _ = keeper(graph, table, wall, keys)  # a new process reads the new latest version
    run.run()
    assert not set(before) & set(graph.live)
    assert all(key_version(s["clientState"]) == keys.order[-1] for s in graph.live.values())


def test_members_who_leave_lose_their_subscription_and_a_sweep_catches_up_the_others() -> None:
    graph, table, wall, keys = FakeGraph([ALICE, BOB]), MemoryTable(), Wall(), FakeKeys()
    run, work = keeper(graph, table, wall, keys)
    run.run()
    bob_sid = table.rows[f"mailbox-{BOB}"]["subscription_id"]
    graph.members = [ALICE]
    work.clear()
    assert run.run()["removed"] == 1
    assert f"mailbox-{BOB}" not in table.rows and bob_sid not in graph.live
    for row in table.rows.values():  # as the catch-up worker leaves them
        if "mailbox" in row:
            row.update(last_catch_up=wall.now, catch_up_requested=False)
    work.clear()
    run.run()
    assert work == []  # caught up lately: nothing to do
    wall.now += datetime.timedelta(minutes=SWEEP_MINUTES + 1)
    work.clear()
    run.run()
    assert [(w["target"], w["reason"]) for w in work] == [(f"mailbox-{ALICE}", "sweep")]


def test_poll_mode_subscribes_nothing_and_catches_up_every_run() -> None:
    graph, table, wall, keys = FakeGraph([ALICE]), MemoryTable(), Wall(), FakeKeys()
    run, work = keeper(graph, table, wall, keys, mode="poll", base="")
    run.run()
    run.run()
    assert graph.live == {} and not graph.calls("POST")
    assert [(w["target"], w["reason"]) for w in work] == [(f"mailbox-{ALICE}", "poll")] * 2


def test_webhook_mode_without_an_https_address_records_the_problem_on_each_row() -> None:
    graph, table, wall, keys = FakeGraph([ALICE]), MemoryTable(), Wall(), FakeKeys()
    run, _ = keeper(graph, table, wall, keys, base="http://app.example")
    counts = run.run()
    assert counts["failed"] == 2 and graph.live == {}
    assert all("PUBLIC_BASE_URL" in row["last_error"] for row in table.rows.values())
    assert table.rows[f"mailbox-{ALICE}"]["status"] == "failed"


def test_a_failed_member_walk_changes_nothing_shows_on_the_users_row_and_keeps_the_start_catch_up() -> None:
    graph, table, wall, keys = FakeGraph([ALICE]), MemoryTable(), Wall(), FakeKeys()
    run, work = keeper(graph, table, wall, keys)
    graph.down = {"members"}
    with pytest.raises(GraphFunctionsError):
        run.run()
    assert table.rows["users"]["last_error"].startswith("scope: ") and graph.live == {} and work == []
    graph.down = set()
    run.run()  # the first run that gets through is the process's start: every mailbox is caught up
    assert [(w["target"], w["reason"]) for w in work] == [(f"mailbox-{ALICE}", "start")]
    assert "last_error" not in table.rows["users"]


def test_a_failed_delete_keeps_the_leaving_row_until_a_run_deletes_it() -> None:
    graph, table, wall, keys = FakeGraph([ALICE, BOB]), MemoryTable(), Wall(), FakeKeys()
    run, _ = keeper(graph, table, wall, keys)
    run.run()
    bob_sid = table.rows[f"mailbox-{BOB}"]["subscription_id"]
    graph.members, graph.down = [ALICE], {"DELETE"}
    counts = run.run()
    assert counts["removed"] == 0 and counts["failed"] == 1
    assert table.rows[f"mailbox-{BOB}"]["status"] == "leaving" and bob_sid in graph.live
    graph.down = set()
    assert run.run()["removed"] == 1
    assert f"mailbox-{BOB}" not in table.rows and bob_sid not in graph.live


def test_a_reauthorization_that_failed_is_made_by_the_next_runs_renewal() -> None:
    graph, table, wall, keys = FakeGraph([ALICE]), MemoryTable(), Wall(), FakeKeys()
    run, _ = keeper(graph, table, wall, keys)
    run.run()
    key = f"mailbox-{ALICE}"
    target = next(t for t in table.targets(TENANT) if t.key == key)
    graph.down = {"POST"}  # reauthorize (and create) refused
    with pytest.raises(GraphFunctionsError):
        run.reauthorize(target)
    assert table.rows[key]["status"] == "reauthorizing"
    graph.down = {"PATCH"}
    run.run()  # far from half its lifetime, yet renewed; the failure keeps it owed
    assert table.rows[key]["status"] == "reauthorizing" and len(graph.calls("PATCH")) >= 1
    graph.down = set()
    assert run.run()["renewed"] == 1 and table.rows[key]["status"] == "active"
