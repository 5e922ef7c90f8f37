"""Delivery of change notifications over real sockets: retries with back-off on the tenant's clock, the 3 s
reply rule, slow and drop endpoints, outage mode, user changes, sendMail, batching and the background task."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from emulator.pki.x509 import pkcs8_pem, self_signed_rsa
from tests.emulator.graph_kit import bearer, eventually
from tests.emulator.notify_kit import (
    HTTP,
    add_message,
    app_token,
    events,
    expiry,
    flush,
    graph,
    log_seq,
    log_since,
    member_id,
    subscribe,
)
from tests.emulator.webhook_receiver import Answer, Receiver, https_receiver
from tests.support.tenant import LocalTenant

MEMBER = "DEMO_USER_USERNAME"


def _fail(status: int) -> object:
    def behaviour(r):  # type: ignore[no-untyped-def]
        if r.validation_token is not None:
            return Answer(200, "text/plain", r.validation_token.encode())
        return Answer(status, "application/json", b"{}")

    return behaviour


def test_failed_posts_are_retried_with_backoff_for_four_hours_then_discarded(
    fresh: LocalTenant, hook: Receiver
) -> None:
    subscribe(fresh, hook, changeType="created", expirationDateTime=expiry(fresh, 10_000))
    hook.behaviour = _fail(503)  # type: ignore[assignment]
    add_message(fresh, fresh.env[MEMBER])
    first = flush(fresh)
    assert [e["outcome"] for e in events(first, "attempt")] == ["failed"]
    assert events(first, "attempt")[0]["items"][0]["next"] == "retry"
    assert flush(fresh) == [] and len(hook.notifications()) == 1  # not due yet
    fresh.advance_clock(61)  # first back-off: 60 s
    assert [e["outcome"] for e in events(flush(fresh), "attempt")] == ["failed"]
    fresh.advance_clock(61)  # 120 s now: not yet
    assert events(flush(fresh), "attempt") == []
    fresh.advance_clock(60)
    assert len(events(flush(fresh), "attempt")) == 1
    attempts = 3
    discarded: list[dict[str, object]] = []
    for _ in range(8):  # 4 min, 8 min, ... capped at 1 h: 4 h are over within 8 hourly steps
        fresh.advance_clock(3_601)
        entries = flush(fresh)
        attempts += len(events(entries, "attempt"))
        discarded = events(entries, "discarded")
        if discarded:
            break
    assert discarded[0]["reason"] == "retry window over"
    assert len(hook.notifications()) == attempts
    assert fresh.control("GET", "/graph/notifications/queue")["value"] == []
    # recovery: the endpoint answers again, the next change is delivered at once
    hook.behaviour = _fail(202)  # type: ignore[assignment]
    add_message(fresh, fresh.env[MEMBER])
    assert [e["outcome"] for e in events(flush(fresh), "attempt")] == ["delivered"]


def test_a_retry_that_succeeds_delivers_and_stops(fresh: LocalTenant, hook: Receiver) -> None:
    subscribe(fresh, hook, changeType="created")
    hook.behaviour = _fail(500)  # type: ignore[assignment]
    add_message(fresh, fresh.env[MEMBER])
    flush(fresh)
    hook.behaviour = _fail(200)  # type: ignore[assignment]
    fresh.advance_clock(61)
    [attempt] = events(flush(fresh), "attempt")
    assert attempt["outcome"] == "delivered" and attempt["items"][0]["attempt"] == 2
    fresh.advance_clock(3_600)
    assert events(flush(fresh), "attempt") == []


def test_a_reply_after_the_deadline_counts_as_a_failure(fresh: LocalTenant, hook: Receiver) -> None:
    subscribe(fresh, hook, changeType="created")
    fresh.control("PUT", "/graph/notifications/settings", {"replyDeadlineMs": 300})
    hook.behaviour = lambda r: Answer(202, delay=0.8)
    add_message(fresh, fresh.env[MEMBER])
    [attempt] = events(flush(fresh), "attempt")
    assert attempt["error"] == "timeout" and attempt["items"][0]["next"] == "retry"


def test_slow_endpoints_are_delayed_and_dropping_ones_lose_notifications(
    fresh: LocalTenant, hook: Receiver
) -> None:
    fresh.control(
        "PUT",
        "/graph/notifications/settings",
        {"replyDeadlineMs": 2_000, "slowMinSample": 8, "createdThenUpdated": False},
    )
    subscribe(fresh, hook, changeType="created", lifecycleNotificationUrl=hook.url("/api/graph/lifecycle"))
    slow = {"on": False}
    hook.behaviour = lambda r: Answer(
        200 if r.validation_token is not None else 202,
        "text/plain",
        (r.validation_token or "").encode(),
        # slow replies overrun the deadline by far; fast ones have 2 s of margin on a loaded machine
        delay=2.5 if slow["on"] and r.validation_token is None and r.path != "/api/graph/lifecycle" else 0.0,
    )
    for _ in range(8):  # 8 fast replies
        add_message(fresh, fresh.env[MEMBER])
        flush(fresh)
    slow["on"] = True
    add_message(fresh, fresh.env[MEMBER])
    flush(fresh)  # 1 slow of 9: 11 % > 10 % -> slow
    slow["on"] = False
    seq = log_seq(fresh)
    add_message(fresh, fresh.env[MEMBER])
    entries = flush(fresh)
    assert events(log_since(fresh, seq), "delayed")[0]["seconds"] == 10 and events(entries, "attempt") == []
    fresh.advance_clock(10)
    got = events(flush(fresh), "attempt")
    assert [e["outcome"] for e in got] == ["delivered"]
    slow["on"] = True
    add_message(fresh, fresh.env[MEMBER])  # delayed, then slow: 2 of 11 = 18 % > 15 % -> drop
    fresh.advance_clock(10)
    entries = flush(fresh)
    assert events(entries, "endpointDropping")
    lifecycle = hook.items("/api/graph/lifecycle")
    assert [i["lifecycleEvent"] for i in lifecycle] == ["missed"]
    count = len(hook.items("/api/graph/notifications"))
    seq = log_seq(fresh)
    add_message(fresh, fresh.env[MEMBER])
    flush(fresh)
    assert events(log_since(fresh, seq), "dropped") and len(hook.items("/api/graph/notifications")) == count
    status = fresh.control("GET", "/graph/subscriptions")["value"][0]["endpoint"]
    assert status == "drop"
    fresh.advance_clock(601)  # dropped for up to 10 minutes
    slow["on"] = False
    seq = log_seq(fresh)
    add_message(fresh, fresh.env[MEMBER])
    entries = flush(fresh)
    # the new message, and the retries of the two slow ones (due 60 s after they failed), all delivered
    assert events(log_since(fresh, seq), "dropped") == []
    assert {e["outcome"] for e in events(entries, "attempt")} == {"delivered"}
    items = [i for e in events(entries, "attempt") for i in e["items"]]
    assert [i["changeType"] for i in items] == ["created"] * 3


def test_outage_mode_loses_notifications_but_not_the_mail(fresh: LocalTenant, hook: Receiver) -> None:
    subscribe(fresh, hook, changeType="created")
    fresh.control("PUT", "/graph/notifications/outage", {"enabled": True})
    seq = log_seq(fresh)
    mid = add_message(fresh, fresh.env[MEMBER])
    flush(fresh)
    assert events(log_since(fresh, seq), "lost") and hook.notifications() == []
    fresh.control("PUT", "/graph/notifications/outage", {"enabled": False})
    flush(fresh)
    assert hook.notifications() == []  # lost for good
    reply = HTTP.get(
        graph(fresh, f"/users/{member_id(fresh)}/messages/{mid}?$select=subject"),
        headers=bearer(app_token(fresh)),
        timeout=30,
    )
    assert reply.status_code == 200  # the message is there: delta or a read finds it


def test_user_changes_reach_users_subscriptions(fresh: LocalTenant, hook: Receiver) -> None:
    sub = subscribe(fresh, hook, resource="users", changeType="updated,deleted")
    created = fresh.control("POST", "/users", {"displayName": "Nora Notified"}, expect=201)
    fresh.control("PATCH", f"/users/{created['id']}", {"accountEnabled": False})
    fresh.control("DELETE", f"/users/{created['id']}?permanent=true", expect=204)
    flush(fresh)
    items = hook.items()
    assert sorted(i["changeType"] for i in items) == ["deleted", "updated", "updated"]
    for item in items:
        assert item["subscriptionId"] == sub["id"]
        assert item["resource"] == f"Users/{created['id']}"
        assert item["resourceData"]["@odata.type"] == "#Microsoft.Graph.User"
    single = subscribe(fresh, hook, resource=f"users/{member_id(fresh)}", changeType="updated")
    hook.clear()
    fresh.control("PATCH", f"/users/{quote(fresh.env[MEMBER])}", {"jobTitle": "Auditor"})
    fresh.control("PATCH", f"/users/{quote(fresh.env['DEMO_ADMIN_USERNAME'])}", {"jobTitle": "Boss"})
    flush(fresh)
    by_sub = [i["subscriptionId"] for i in hook.items()]
    assert by_sub.count(single["id"]) == 1 and by_sub.count(sub["id"]) == 2


def test_sendmail_and_several_subscriptions_share_one_batch(fresh: LocalTenant, hook: Receiver) -> None:
    fresh.control("PUT", "/graph/settings", {"sendMailDelayMs": 0})
    inbox = subscribe(fresh, hook, changeType="created")
    every = subscribe(fresh, hook, changeType="created", resource=f"users/{member_id(fresh)}/messages")
    sender = HTTP.post(
        graph(fresh, f"/users/{quote(fresh.env['DEMO_ADMIN_USERNAME'])}/sendMail"),
        json={
            "message": {
                "subject": "hello",
                "toRecipients": [{"emailAddress": {"address": fresh.env[MEMBER]}}],
            }
        },
        headers=bearer(app_token(fresh, "Mail.Send", "Mail.Read", "User.Read.All")),
        timeout=30,
    )
    assert sender.status_code == 202
    flush(fresh)
    [post] = hook.notifications()
    assert sorted(i["subscriptionId"] for i in post.json()["value"]) == sorted([inbox["id"], every["id"]])


def test_reauthorization_required_holds_delivery_until_reauthorized(
    fresh: LocalTenant, hook: Receiver
) -> None:
    token = app_token(fresh)
    sub = subscribe(
        fresh,
        hook,
        token=token,
        changeType="created",
        lifecycleNotificationUrl=hook.url("/api/graph/lifecycle"),
    )
    assert fresh.control(
        "POST", f"/graph/subscriptions/{sub['id']}/lifecycle", {"event": "reauthorizationRequired"}
    )["queued"]
    add_message(fresh, fresh.env[MEMBER])
    flush(fresh)
    assert [i["lifecycleEvent"] for i in hook.items("/api/graph/lifecycle")] == ["reauthorizationRequired"]
    assert hook.items("/api/graph/notifications") == []  # held
    reply = HTTP.post(
        graph(fresh, f"/subscriptions/{sub['id']}/reauthorize"), headers=bearer(token), timeout=30
    )
    assert reply.status_code == 204
    flush(fresh)
    assert [i["changeType"] for i in hook.items("/api/graph/notifications")] == ["created"]


def test_background_delivery_needs_no_flush(fresh: LocalTenant, receiver: Receiver) -> None:
    receiver.clear()
    subscribe(fresh, receiver, changeType="created")
    add_message(fresh, fresh.env[MEMBER])
    eventually(lambda: receiver.items() or None, timeout=15)
    receiver.clear()


def test_an_endpoint_with_an_untrusted_certificate_fails_the_handshake(
    fresh: LocalTenant, tmp_path: Path
) -> None:
    key, cert = self_signed_rsa("127.0.0.1", days=2)
    from cryptography.hazmat.primitives import serialization

    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "k.pem").write_bytes(pkcs8_pem(key))
    with https_receiver(fresh.state_dir, tmp_path / "c.pem", tmp_path / "k.pem") as untrusted:
        err = subscribe(fresh, untrusted, expect=400, expirationDateTime=expiry(fresh, 60))["error"]
    assert err["message"] == "The underlying connection was closed: An unexpected error occurred on a send."
    assert untrusted.received == []


def test_an_endpoint_with_a_leaf_from_the_local_ca_passes_the_handshake(
    fresh: LocalTenant, tmp_path: Path
) -> None:
    from emulator.pki.leaf import main

    assert main(["--state-dir", str(fresh.state_dir), "--out", str(tmp_path), "localhost", "127.0.0.1"]) == 0
    assert oct((tmp_path / "server.key").stat().st_mode & 0o777) == "0o600"
    with https_receiver(fresh.state_dir, tmp_path / "server.pem", tmp_path / "server.key") as app:
        sub = subscribe(fresh, app, expirationDateTime=expiry(fresh, 60))
    assert sub["id"] and len(app.validations()) == 1


def test_group_membership_changes_reach_groups_subscriptions(fresh: LocalTenant, hook: Receiver) -> None:
    readers = fresh.env["MAIL_READERS_GROUP_ID"]
    token = app_token(fresh, "Group.Read.All")
    assert subscribe(fresh, hook, token=app_token(fresh), expect=403, resource="groups", changeType="updated")
    one = subscribe(fresh, hook, token=token, resource=f"groups/{readers}", changeType="updated")
    every = subscribe(fresh, hook, token=token, resource="groups", changeType="updated,deleted")
    admin = fresh.env["DEMO_ADMIN_USERNAME"]
    fresh.control("POST", f"/groups/{readers}/members", {"id": admin})
    fresh.control("DELETE", f"/groups/{readers}/members/{quote(admin)}", expect=204)
    fresh.control("DELETE", f"/groups/{readers}/members/{quote(admin)}", expect=404)
    created = fresh.control("POST", "/groups", {"displayName": "Escalations"}, expect=201)
    flush(fresh)
    items = hook.items()
    assert all(i["changeType"] == "updated" for i in items)
    assert (
        sorted(i["resource"] for i in items if i["subscriptionId"] == one["id"]) == [f"Groups/{readers}"] * 2
    )
    assert sorted(i["resource"] for i in items if i["subscriptionId"] == every["id"]) == sorted(
        [f"Groups/{readers}"] * 2 + [f"Groups/{created['id']}"]
    )
    assert items[0]["resourceData"]["@odata.type"] == "#Microsoft.Graph.Group"


def test_a_change_moves_the_etag_and_the_duplicate_keeps_it(fresh: LocalTenant, hook: Receiver) -> None:
    subscribe(fresh, hook, changeType="created,updated")
    member = fresh.env[MEMBER]
    mid = add_message(fresh, member)
    flush(fresh)
    first = {i["changeType"]: i["resourceData"]["@odata.etag"] for i in hook.items()}
    assert first["created"] == first["updated"]  # the same version, reported twice
    hook.clear()
    fresh.advance_clock(120)
    fresh.control("PATCH", f"/users/{quote(member)}/messages/{mid}", {"isRead": True})
    flush(fresh)
    [changed] = hook.items()
    assert changed["changeType"] == "updated" and changed["resourceData"]["@odata.etag"] != first["created"]
    url = graph(
        fresh,
        f"/users/{member_id(fresh)}/messages/{mid}?$select=isRead,lastModifiedDateTime,receivedDateTime",
    )
    read = HTTP.get(url, headers=bearer(app_token(fresh)), timeout=30).json()
    assert read["@odata.etag"] == changed["resourceData"]["@odata.etag"] and read["isRead"] is True
    assert read["lastModifiedDateTime"] > read["receivedDateTime"]  # the change moved it


def test_a_filtered_subscription_sees_entering_and_leaving_as_created_and_deleted(
    fresh: LocalTenant, hook: Receiver
) -> None:
    resource = f"users/{member_id(fresh)}/mailFolders('inbox')/messages?$filter=isRead eq false"
    fresh.control("PUT", "/graph/notifications/settings", {"createdThenUpdated": False})
    subscribe(fresh, hook, changeType="created,updated,deleted", resource=resource)
    member = fresh.env[MEMBER]
    unread = add_message(fresh, member)
    add_message(fresh, member, isRead=True)  # does not match: no notification
    fresh.control("PATCH", f"/users/{quote(member)}/messages/{unread}", {"subject": "still unread"})
    fresh.control("PATCH", f"/users/{quote(member)}/messages/{unread}", {"isRead": True})  # leaves
    fresh.control("PATCH", f"/users/{quote(member)}/messages/{unread}", {"subject": "read, unseen"})
    fresh.control("PATCH", f"/users/{quote(member)}/messages/{unread}", {"isRead": False})  # enters
    flush(fresh)
    seen = sorted((i["resourceData"]["id"], i["changeType"]) for i in hook.items())
    assert seen == sorted(
        [(unread, "created"), (unread, "updated"), (unread, "deleted"), (unread, "created")]
    )
