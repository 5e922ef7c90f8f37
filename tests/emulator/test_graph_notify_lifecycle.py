"""Lifecycle events on demand: their payload shapes, what each does to the subscription, and the refusals."""

from __future__ import annotations

from tests.emulator.graph_kit import bearer
from tests.emulator.notify_kit import HTTP, add_message, app_token, expiry, flush, graph, subscribe
from tests.emulator.webhook_receiver import Receiver
from tests.support.tenant import LocalTenant

LIFECYCLE = "/api/graph/lifecycle"


def _fire(tenant: LocalTenant, sid: str, event: str, expect: int | None = None) -> dict[str, object]:
    return dict(
        tenant.control("POST", f"/graph/subscriptions/{sid}/lifecycle", {"event": event}, expect=expect)
    )


def test_observed_shape_by_default_and_documented_on_request(fresh: LocalTenant, hook: Receiver) -> None:
    sub = subscribe(fresh, hook, lifecycleNotificationUrl=hook.url(LIFECYCLE))
    _fire(fresh, sub["id"], "missed")
    flush(fresh)
    [observed] = hook.items(LIFECYCLE)
    assert observed["lifecycleEvent"] == "missed"
    assert observed["organizationId"] == fresh.env["ENTRA_TENANT_ID"] and "tenantId" not in observed
    assert observed["resourceData"] == {
        "@odata.type": "#microsoft.graph.subscription",
        "@odata.id": f"subscriptions/{sub['id']}",
        "id": sub["id"],
    }
    assert observed["clientState"] == "secret-client-state" and observed["sequence"] is None
    hook.clear()
    fresh.control("PUT", "/graph/notifications/settings", {"lifecycleShape": "documented"})
    _fire(fresh, sub["id"], "missed")
    flush(fresh)
    [documented] = hook.items(LIFECYCLE)
    assert set(documented) == {
        "subscriptionId",
        "subscriptionExpirationDateTime",
        "tenantId",
        "clientState",
        "lifecycleEvent",
    }


def test_subscription_removed_deletes_it_and_stops_delivery(fresh: LocalTenant, hook: Receiver) -> None:
    token = app_token(fresh)
    sub = subscribe(fresh, hook, token=token, lifecycleNotificationUrl=hook.url(LIFECYCLE))
    assert _fire(fresh, sub["id"], "subscriptionRemoved")["queued"] is True
    add_message(fresh, fresh.env["DEMO_USER_USERNAME"])
    flush(fresh)
    assert [i["lifecycleEvent"] for i in hook.items(LIFECYCLE)] == ["subscriptionRemoved"]
    assert hook.items("/api/graph/notifications") == []
    gone = HTTP.get(graph(fresh, f"/subscriptions/{sub['id']}"), headers=bearer(token), timeout=30)
    assert gone.status_code == 404
    renewal = HTTP.patch(
        graph(fresh, f"/subscriptions/{sub['id']}"),
        json={"expirationDateTime": "2099-01-01T00:00:00Z"},
        headers=bearer(token),
        timeout=30,
    )
    assert renewal.status_code == 404 and renewal.json()["error"]["code"] == "ResourceNotFound"


def test_a_renewal_patch_also_reauthorizes(fresh: LocalTenant, hook: Receiver) -> None:
    token = app_token(fresh)
    sub = subscribe(
        fresh, hook, token=token, changeType="created", lifecycleNotificationUrl=hook.url(LIFECYCLE)
    )
    _fire(fresh, sub["id"], "reauthorizationRequired")
    add_message(fresh, fresh.env["DEMO_USER_USERNAME"])
    flush(fresh)
    assert hook.items("/api/graph/notifications") == []
    state = fresh.control("GET", "/graph/subscriptions")["value"][0]
    assert state["reauthorizationRequired"] is True
    renewed = HTTP.patch(
        graph(fresh, f"/subscriptions/{sub['id']}"),
        json={"expirationDateTime": sub["expirationDateTime"]},
        headers=bearer(token),
        timeout=30,
    )
    assert renewed.status_code == 200
    flush(fresh)
    assert [i["changeType"] for i in hook.items("/api/graph/notifications")] == ["created"]


def test_held_notifications_are_discarded_after_four_hours(fresh: LocalTenant, hook: Receiver) -> None:
    sub = subscribe(fresh, hook, changeType="created", expirationDateTime=expiry(fresh, 10_000))
    _fire(fresh, sub["id"], "reauthorizationRequired")  # no lifecycle URL: nothing is sent, delivery pauses
    assert hook.items(LIFECYCLE) == []
    add_message(fresh, fresh.env["DEMO_USER_USERNAME"])
    fresh.advance_clock(4 * 3600 + 1)
    entries = flush(fresh)
    assert [e["reason"] for e in entries if e["event"] == "discarded"] == ["not reauthorized"]
    assert hook.items() == []


def test_outage_can_lose_lifecycle_events_too(fresh: LocalTenant, hook: Receiver) -> None:
    sub = subscribe(fresh, hook, lifecycleNotificationUrl=hook.url(LIFECYCLE))
    fresh.control("PUT", "/graph/notifications/outage", {"enabled": True})
    _fire(fresh, sub["id"], "missed")
    fresh.control("PUT", "/graph/notifications/outage", {"enabled": True, "lifecycle": True})
    _fire(fresh, sub["id"], "missed")
    flush(fresh)
    assert len(hook.items(LIFECYCLE)) == 1  # the first went through, the second was lost


def test_refusals(fresh: LocalTenant, hook: Receiver) -> None:
    users = subscribe(fresh, hook, resource="users", changeType="updated")
    assert _fire(fresh, users["id"], "subscriptionRemoved", expect=409)
    assert _fire(fresh, users["id"], "missed", expect=409)
    assert _fire(fresh, users["id"], "reauthorizationRequired")["queued"] is False
    assert _fire(fresh, users["id"], "expired", expect=400)
    assert _fire(fresh, "00000000-0000-0000-0000-000000000000", "missed", expect=404)


def test_scheduled_reauthorization_before_expiry(fresh: LocalTenant, hook: Receiver) -> None:
    fresh.control("PUT", "/graph/notifications/settings", {"reauthorizationBeforeExpiryMinutes": 30})
    token = app_token(fresh)
    sub = subscribe(fresh, hook, token=token, lifecycleNotificationUrl=hook.url(LIFECYCLE))  # 60 min
    flush(fresh)
    assert hook.items(LIFECYCLE) == []
    fresh.advance_clock(31 * 60)
    flush(fresh)
    flush(fresh)  # a second round sends nothing more
    assert [i["lifecycleEvent"] for i in hook.items(LIFECYCLE)] == ["reauthorizationRequired"]  # once
    renewed = HTTP.patch(
        graph(fresh, f"/subscriptions/{sub['id']}"),
        json={"expirationDateTime": expiry(fresh, 60)},
        headers=bearer(token),
        timeout=30,
    )
    assert renewed.status_code == 200
    fresh.advance_clock(31 * 60)
    flush(fresh)
    assert len(hook.items(LIFECYCLE)) == 2  # again for the new expiry


def test_control_inputs_are_checked(fresh: LocalTenant) -> None:
    for body in (
        {"nope": 1},
        {"autoDeliver": "yes"},
        {"replyDeadlineMs": -1},
        {"replyDeadlineMs": 1.5},
        {"lifecycleShape": "odd"},
        {"duplicateRate": 2},
    ):
        assert fresh.control("PUT", "/graph/notifications/settings", body, expect=400)["error"]["message"]
    settings = fresh.control("PUT", "/graph/notifications/settings", {"retryBaseSeconds": 5, "maxBatch": 3})
    assert settings["retryBaseSeconds"] == 5 and settings["maxBatch"] == 3 and settings["autoDeliver"] is True
    assert fresh.control("PUT", "/graph/notifications/outage", {"enabled": "on"}, expect=400)
    member = fresh.env["DEMO_USER_USERNAME"]
    mid = add_message(fresh, member)
    assert fresh.control("PATCH", f"/users/{member}/messages/{mid}", {"isRead": "yes"}, expect=400)
    assert fresh.control("PATCH", f"/users/{member}/messages/{mid}", {"folder": "nowhere"}, expect=404)
    assert fresh.control("PATCH", f"/users/{member}/messages/nope", {"isRead": True}, expect=404)
    assert fresh.control("GET", "/graph/notifications/log?since=x", expect=400)
    fresh.control("POST", "/reset")
    assert fresh.control("GET", "/graph/notifications/settings")["maxBatch"] == 50  # reset restores defaults
