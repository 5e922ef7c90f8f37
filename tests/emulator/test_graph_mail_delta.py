"""Messages delta per folder over real sockets: the first round in pages, then created, changed, moved and
deleted messages, options carried in the links, expiry and reset; and catch-up after a notification outage."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.emulator.graph_kit import bearer
from tests.emulator.notify_kit import HTTP, add_message, app_token, flush, graph, member_id, subscribe
from tests.emulator.webhook_receiver import Receiver
from tests.support.tenant import LocalTenant

MEMBER = "DEMO_USER_USERNAME"


def _get(url: str, token: str, expect: int = 200, **headers: str) -> Any:
    reply = HTTP.get(url, headers=bearer(token, **headers), timeout=30)
    assert reply.status_code == expect, reply.text
    return reply


def _round(url: str, token: str, **headers: str) -> tuple[list[dict[str, Any]], str, int]:
    items: list[dict[str, Any]] = []
    pages = 0
    while True:
        body = _get(url, token, **headers).json()
        pages += 1
        items += body["value"]
        if "@odata.deltaLink" in body:
            assert "@odata.nextLink" not in body
            return items, str(body["@odata.deltaLink"]), pages
        url = body["@odata.nextLink"]
        assert "$skiptoken=" in url and pages < 100


def _inbox_delta(tenant: LocalTenant) -> str:
    return graph(tenant, f"/users/{member_id(tenant)}/mailFolders/inbox/messages/delta")


def _inbox_ids(tenant: LocalTenant, token: str) -> set[str]:
    url = graph(tenant, f"/users/{member_id(tenant)}/mailFolders/inbox/messages?$select=id&$top=1000")
    return {m["id"] for m in _get(url, token).json()["value"]}


def test_first_round_pages_by_ten_and_covers_the_folder(fresh: LocalTenant) -> None:
    token = app_token(fresh)
    items, link, pages = _round(_inbox_delta(fresh), token)
    assert {i["id"] for i in items} == _inbox_ids(fresh, token)
    assert pages == -(-len(items) // 10)  # default page size 10
    assert all(i["@odata.type"] == "#microsoft.graph.message" for i in items)
    assert "$deltatoken=" in link
    again, _, small_pages = _round(_inbox_delta(fresh), token, Prefer="odata.maxpagesize=5")
    assert len(again) == len(items) and small_pages == -(-len(items) // 5)
    reply = _get(_inbox_delta(fresh), token, Prefer="odata.maxpagesize=5")
    assert reply.headers["Preference-Applied"] == "odata.maxpagesize=5"


def test_changes_created_updated_moved_and_deleted(fresh: LocalTenant) -> None:
    token = app_token(fresh)
    _, link, _ = _round(_inbox_delta(fresh), token)
    empty, link, _ = _round(link, token)
    assert empty == []
    member = fresh.env[MEMBER]
    new = add_message(fresh, member, subject="fresh one")
    changed = add_message(fresh, member, subject="to be read")
    moved = add_message(fresh, member, subject="to be archived")
    gone = add_message(fresh, member, subject="to be deleted")
    items, link_after_create, _ = _round(link, token)
    assert {i["id"] for i in items} == {new, changed, moved, gone}
    fresh.control("PATCH", f"/users/{quote(member)}/messages/{changed}", {"isRead": True})
    fresh.control("PATCH", f"/users/{quote(member)}/messages/{moved}", {"folder": "archive"})
    fresh.control("DELETE", f"/users/{quote(member)}/messages/{gone}", expect=204)
    items, _, _ = _round(link_after_create, token)
    by_id = {i["id"]: i for i in items}
    assert set(by_id) == {changed, moved, gone}
    assert by_id[changed]["isRead"] is True
    assert by_id[moved]["@removed"] == {"reason": "deleted"}  # moved out of the inbox
    assert by_id[gone]["@removed"] == {"reason": "deleted"}
    archive = graph(fresh, f"/users/{member_id(fresh)}/mailFolders/archive/messages/delta")
    archived, _, _ = _round(archive, token)
    assert moved in {i["id"] for i in archived}


def test_options_are_carried_in_the_links(fresh: LocalTenant) -> None:
    token = app_token(fresh)
    url = _inbox_delta(fresh) + "?$select=subject,isRead&changeType=created"
    items, link, _ = _round(url, token, Prefer="odata.maxpagesize=7")
    assert all(set(i) <= {"@odata.type", "@odata.etag", "id", "subject", "isRead"} for i in items)
    member = fresh.env[MEMBER]
    existing = items[0]["id"]
    fresh.control("PATCH", f"/users/{quote(member)}/messages/{existing}", {"subject": "changed"})
    new = add_message(fresh, member)
    changes, _, _ = _round(link, token)
    assert [c["id"] for c in changes] == [new]  # changeType=created: the update is not reported
    assert set(changes[0]) <= {"@odata.type", "@odata.etag", "id", "subject", "isRead"}
    filtered = _inbox_delta(fresh) + "?$filter=receivedDateTime ge 2099-01-01T00:00:00Z"
    assert _round(filtered, token)[0] == []
    bad = _get(_inbox_delta(fresh) + "?$filter=subject eq 'x'", token, expect=400)
    assert bad.json()["error"]["code"] == "ErrorInvalidUrlQueryFilter"
    assert _get(_inbox_delta(fresh) + "?$search=%22x%22", token, expect=400).status_code == 400


def test_expired_and_reset_links(fresh: LocalTenant) -> None:
    token = app_token(fresh)
    _, link, _ = _round(_inbox_delta(fresh), token)
    fresh.control("POST", "/graph/mail/delta/reset", expect=204)
    reset = _get(link, token, expect=410)
    assert reset.json()["error"]["code"] == "resyncRequired"
    location = reset.headers["Location"]
    assert location.endswith("/messages/delta?$deltatoken=")
    items, link, _ = _round(location, token)  # the full resync
    assert len(items) == len(_inbox_ids(fresh, token))
    fresh.control("POST", "/graph/delta/expire", expect=204)
    expired = _get(link, token, expect=400)
    assert expired.json()["error"]["code"] == "syncStateNotFound"
    forged = _get(_inbox_delta(fresh) + "?$deltatoken=forged", token, expect=400)
    assert forged.json()["error"]["code"] == "syncStateNotFound"


def test_permissions_and_scope(fresh: LocalTenant) -> None:
    users_only = app_token(fresh, "User.Read.All")
    assert _get(_inbox_delta(fresh), users_only, expect=403).json()["error"]["code"] == "ErrorAccessDenied"
    fresh.control("PUT", f"/graph/mailbox-scopes/{fresh.env['ENTRA_CLIENT_ID']}", {"users": []})
    assert _get(_inbox_delta(fresh), app_token(fresh), expect=403).status_code == 403
    missing = graph(fresh, f"/users/{member_id(fresh)}/mailFolders/nope/messages/delta")
    fresh.control("DELETE", f"/graph/mailbox-scopes/{fresh.env['ENTRA_CLIENT_ID']}", expect=204)
    assert _get(missing, app_token(fresh), expect=404).json()["error"]["code"] == "ErrorItemNotFound"


def test_delta_finds_what_an_outage_lost(fresh: LocalTenant, hook: Receiver) -> None:
    token = app_token(fresh)
    subscribe(fresh, hook, changeType="created")
    _, link, _ = _round(_inbox_delta(fresh), token)
    fresh.control("PUT", "/graph/notifications/outage", {"enabled": True})
    lost = {add_message(fresh, fresh.env[MEMBER], subject=f"lost {n}") for n in range(3)}
    fresh.control("PUT", "/graph/notifications/outage", {"enabled": False})
    seen = add_message(fresh, fresh.env[MEMBER], subject="after")
    flush(fresh)
    notified = {i["resourceData"]["id"] for i in hook.items()}
    assert notified == {seen}
    caught_up, _, _ = _round(link, token)
    assert {i["id"] for i in caught_up} == lost | {seen}


def test_missed_after_an_outage_points_to_delta(fresh: LocalTenant, hook: Receiver) -> None:
    token = app_token(fresh)
    lifecycle = hook.url("/api/graph/lifecycle")
    sub = subscribe(fresh, hook, changeType="created", lifecycleNotificationUrl=lifecycle)
    quiet = subscribe(fresh, hook, changeType="updated", resource="users", lifecycleNotificationUrl=lifecycle)
    _, link, _ = _round(_inbox_delta(fresh), token)
    fresh.control("PUT", "/graph/notifications/outage", {"enabled": True})
    lost = add_message(fresh, fresh.env[MEMBER])
    ended = fresh.control("PUT", "/graph/notifications/outage", {"enabled": False, "sendMissed": True})
    assert ended["missedSentTo"] == [sub["id"]] and quiet["id"] not in ended["missedSentTo"]
    flush(fresh)
    assert [(i["subscriptionId"], i["lifecycleEvent"]) for i in hook.items("/api/graph/lifecycle")] == [
        (sub["id"], "missed")
    ]
    assert [i["id"] for i in _round(link, token)[0]] == [lost]
