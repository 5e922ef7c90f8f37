"""``/v1.0/subscriptions`` over real sockets: the validation handshake against a loopback HTTPS receiver,
body rules, permissions, lifetimes, quotas, GET/PATCH/DELETE/reauthorize, and the first delivery."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from tests.emulator.graph_kit import bearer
from tests.emulator.notify_kit import (
    HTTP,
    add_message,
    app_token,
    expiry,
    flush,
    graph,
    member_id,
    subscribe,
    token_for,
)
from tests.emulator.webhook_receiver import Answer, Receiver
from tests.support.tenant import LocalTenant


def test_create_validates_the_url_then_delivers_new_mail_in_a_batch(
    fresh: LocalTenant, hook: Receiver
) -> None:
    sub = subscribe(fresh, hook, notificationUrl=hook.url(query="code=fn-key"))
    assert sub["changeType"] == "created,updated"
    assert sub["clientState"] == "secret-client-state"
    assert sub["applicationId"] == fresh.env["ENTRA_CLIENT_ID"]
    assert sub["@odata.context"].endswith("/v1.0/$metadata#subscriptions/$entity")
    [validation] = hook.validations()
    token = validation.validation_token or ""
    assert token.startswith(
        "Validation: Testing client application reachability for subscription Request-Id: "
    )
    assert validation.query["code"] == ["fn-key"]  # the subscriber's own query string is kept
    assert validation.headers["content-type"].startswith("text/plain")
    assert validation.body == b""
    mid = add_message(fresh, fresh.env["DEMO_USER_USERNAME"])
    entries = flush(fresh)
    assert [e["outcome"] for e in entries if e["event"] == "attempt"] == ["delivered"]
    [post] = hook.notifications()
    assert post.query["code"] == ["fn-key"]
    assert post.headers["content-type"].startswith("application/json")
    items = post.json()["value"]
    assert sorted(i["changeType"] for i in items) == ["created", "updated"]  # the observed duplicate
    for item in items:
        assert item["subscriptionId"] == sub["id"]
        assert item["clientState"] == "secret-client-state"
        assert item["tenantId"] == fresh.env["ENTRA_TENANT_ID"]
        assert item["resource"] == f"Users/{member_id(fresh)}/Messages/{mid}"
        assert item["resourceData"]["id"] == mid
        assert item["resourceData"]["@odata.type"] == "#Microsoft.Graph.Message"
        assert "encryptedContent" not in item


def test_validation_failures_refuse_the_subscription(fresh: LocalTenant, hook: Receiver) -> None:
    cases = [
        (Answer(403, "text/plain", b"no"), "ValidationError", "HTTP status code is 'Forbidden'"),
        (None, "ValidationError", "Response must exactly match validationToken query parameter."),
        (Answer(200, "application/json", b"{}"), "ValidationError", "text/plain"),
    ]
    for answer, code, fragment in cases:
        if answer is None:
            # echoing the token still URL-encoded fails, as Graph wants the decoded token
            hook.behaviour = lambda r: Answer(
                200, "text/plain", (r.validation_token or "").replace(" ", "+").encode()
            )
        else:
            hook.behaviour = lambda r, a=answer: a
        err = subscribe(fresh, hook, expect=400)["error"]
        assert err["code"] == code and fragment in err["message"], err
    fresh.control("PUT", "/graph/notifications/settings", {"validationTimeoutMs": 300})
    hook.behaviour = lambda r: Answer(200, "text/plain", (r.validation_token or "").encode(), delay=0.6)
    err = subscribe(fresh, hook, expect=400)["error"]
    assert err == {**err, "code": "InvalidRequest", "message": "Subscription validation request timed out."}
    listed = HTTP.get(graph(fresh, "/subscriptions"), headers=bearer(app_token(fresh)), timeout=30).json()
    assert listed["value"] == []


def test_lifecycle_url_is_validated_too_and_https_only(fresh: LocalTenant, hook: Receiver) -> None:
    subscribe(fresh, hook, lifecycleNotificationUrl=hook.url("/api/graph/lifecycle"))
    assert sorted(v.path for v in hook.validations()) == ["/api/graph/lifecycle", "/api/graph/notifications"]
    err = subscribe(fresh, hook, expect=400, notificationUrl=hook.url().replace("https:", "http:"))["error"]
    assert err["code"] == "InvalidRequest" and err["message"].startswith("Invalid notification url=")
    err = subscribe(fresh, hook, expect=400, changeType="created", lifecycleNotificationUrl="http://x/")[
        "error"
    ]
    assert err["message"].startswith("Invalid lifecycle notification url=")


def test_permissions_per_resource(fresh: LocalTenant, hook: Receiver) -> None:
    users_only = token_for(fresh, "User.Read.All")
    err = subscribe(fresh, hook, token=users_only, expect=403)["error"]
    assert err["code"] == "ExtensionError" and "Forbidden" in err["message"]
    mail_only = token_for(fresh, "Mail.Read")
    err = subscribe(fresh, hook, token=mail_only, expect=403, resource="users", changeType="updated")["error"]
    assert err["code"] == "Authorization_RequestDenied"
    subscribe(fresh, hook, token=users_only, resource="users", changeType="updated,deleted")
    err = subscribe(fresh, hook, token=users_only, expect=400, resource="users", changeType="created")[
        "error"
    ]
    assert err["message"] == "Invalid 'changeType' attribute: 'created'."
    # an app-only subscription to a mailbox outside the app's mailbox scope is refused by Exchange
    fresh.control("PUT", f"/graph/mailbox-scopes/{fresh.env['ENTRA_CLIENT_ID']}", {"users": []})
    err = subscribe(fresh, hook, expect=403)["error"]
    assert err["code"] == "ExtensionError"


def test_lifetimes_per_resource_and_the_45_minute_floor(fresh: LocalTenant, hook: Receiver) -> None:
    err = subscribe(fresh, hook, expect=400, expirationDateTime=expiry(fresh, 10_081))["error"]
    assert err["message"] == "Subscription expiration can only be 10080 minutes in the future."
    fresh.control("PUT", "/graph/notifications/settings", {"outlookMaxMinutes": 4230})
    err = subscribe(fresh, hook, expect=400, expirationDateTime=expiry(fresh, 4231))["error"]
    assert err["message"] == "Subscription expiration can only be 4230 minutes in the future."
    sub = subscribe(fresh, hook, expirationDateTime=expiry(fresh, 5))
    assert sub["expirationDateTime"] >= expiry(fresh, 44.9)  # raised to now + 45 min
    err = subscribe(fresh, hook, expect=400, expirationDateTime=None)["error"]
    assert err["message"] == "expirationDateTime is a required property for subscription creation"
    users = subscribe(
        fresh, hook, resource="users", changeType="updated", expirationDateTime=expiry(fresh, 41_760)
    )
    assert users["resource"] == "users"
    err = subscribe(
        fresh,
        hook,
        expect=400,
        resource="users",
        changeType="deleted",
        expirationDateTime=expiry(fresh, 41_761),
    )["error"]
    assert err["message"] == "Subscription expiration can only be 41760 minutes in the future."


def test_duplicates_conflict_and_quotas_are_enforced(fresh: LocalTenant, hook: Receiver) -> None:
    first = subscribe(fresh, hook)
    err = subscribe(fresh, hook, expect=409)["error"]
    assert err["message"] == f"Subscription Id {first['id']} already exists for the requested combination"
    fresh.control(
        "PUT", "/graph/notifications/settings", {"duplicateSubscriptions": "allow", "mailboxQuota": 2}
    )
    subscribe(fresh, hook)
    err = subscribe(fresh, hook, expect=403)["error"]
    assert "2 subscriptions per mailbox" in err["message"]
    fresh.control("PUT", "/graph/notifications/settings", {"directoryAppTenantQuota": 1})
    subscribe(fresh, hook, resource="users", changeType="updated")
    err = subscribe(fresh, hook, expect=403, resource="users", changeType="deleted")["error"]
    assert err["code"] == "Forbidden"


def test_get_patch_reauthorize_delete(fresh: LocalTenant, hook: Receiver) -> None:
    token = app_token(fresh)
    sub = subscribe(fresh, hook, token=token)
    url = graph(fresh, f"/subscriptions/{sub['id']}")
    got = HTTP.get(url, headers=bearer(token), timeout=30).json()
    assert got["id"] == sub["id"] and got["resource"] == sub["resource"]
    other = token_for(fresh, "Mail.Read", appid="11111111-2222-3333-4444-555555555555")
    assert HTTP.get(url, headers=bearer(other), timeout=30).status_code == 404  # another app's
    hook.clear()
    renewed = HTTP.patch(
        url, json={"expirationDateTime": expiry(fresh, 120)}, headers=bearer(token), timeout=30
    )
    assert renewed.status_code == 200 and renewed.json()["expirationDateTime"] > sub["expirationDateTime"]
    assert hook.validations() == []  # renewing the expiry alone does not re-validate
    moved = HTTP.patch(url, json={"notificationUrl": hook.url("/moved")}, headers=bearer(token), timeout=30)
    assert moved.status_code == 200 and [v.path for v in hook.validations()] == ["/moved"]
    bad = HTTP.patch(url, json={"clientState": "x"}, headers=bearer(token), timeout=30)
    assert bad.status_code == 400
    empty = HTTP.patch(url, json={"encryptionCertificateId": "x"}, headers=bearer(token), timeout=30)
    assert empty.json()["error"]["message"].startswith(
        "Subscription must contain either the 'expirationDateTime'"
    )
    life = HTTP.patch(url, json={"lifecycleNotificationUrl": hook.url()}, headers=bearer(token), timeout=30)
    assert life.status_code == 400
    reauth = HTTP.post(f"{url}/reauthorize", headers=bearer(token), timeout=30)
    assert reauth.status_code == 204 and reauth.content == b""
    assert HTTP.delete(url, headers=bearer(token), timeout=30).status_code == 204
    gone = HTTP.get(url, headers=bearer(token), timeout=30)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "ResourceNotFound"


def test_expired_subscriptions_are_deleted_by_the_clock(fresh: LocalTenant, hook: Receiver) -> None:
    token = app_token(fresh)
    sub = subscribe(fresh, hook, token=token, expirationDateTime=expiry(fresh, 60))
    fresh.advance_clock(61 * 60)
    reply = HTTP.get(graph(fresh, f"/subscriptions/{sub['id']}"), headers=bearer(token), timeout=30)
    assert reply.status_code == 404
    add_message(fresh, fresh.env["DEMO_USER_USERNAME"])
    flush(fresh)
    assert hook.notifications() == []


def test_unknown_fields_and_resources_are_refused(fresh: LocalTenant, hook: Receiver) -> None:
    err = subscribe(fresh, hook, expect=400, color="blue")["error"]
    assert "does not exist on type 'microsoft.graph.subscription'" in err["message"]
    err = subscribe(fresh, hook, expect=400, resource="users/x/events/y")["error"]
    assert err["code"] == "InvalidRequest"
    err = subscribe(fresh, hook, expect=404, resource="users/nobody@contoso.onmicrosoft.com/messages")[
        "error"
    ]
    assert err["code"] == "ExtensionError"
    err = subscribe(fresh, hook, expect=400, clientState="x" * 129)["error"]
    assert err["code"] == "InvalidRequest"
    parts = urlsplit(hook.url(query="a=1"))
    assert parse_qs(parts.query) == {"a": ["1"]}


def test_delegated_subscriptions_reach_only_the_own_mailbox(fresh: LocalTenant, hook: Receiver) -> None:
    from tests.emulator.graph_kit import mint

    me = mint(fresh, scopes=("Mail.Read",), oid=member_id(fresh))
    sub = subscribe(fresh, hook, token=me, resource="me/mailFolders('Inbox')/messages", changeType="created")
    assert sub["creatorId"] == member_id(fresh) and sub["resource"] == "me/mailFolders('Inbox')/messages"
    listed = HTTP.get(graph(fresh, "/subscriptions"), headers=bearer(me), timeout=30).json()["value"]
    assert [s["id"] for s in listed] == [sub["id"]]
    admin = HTTP.get(
        graph(fresh, f"/users/{fresh.env['DEMO_ADMIN_USERNAME']}?$select=id"),
        headers=bearer(app_token(fresh)),
        timeout=30,
    ).json()["id"]
    err = subscribe(fresh, hook, token=me, expect=403, resource=f"users/{admin}/messages")["error"]
    assert err["code"] == "ExtensionError"
    err = subscribe(fresh, hook, expect=400, resource="me/messages")["error"]  # app-only: no /me
    assert err["code"] == "BadRequest"
    add_message(fresh, fresh.env["DEMO_USER_USERNAME"])
    flush(fresh)
    assert [i["subscriptionId"] for i in hook.items()] == [sub["id"]]


def test_malformed_input_is_always_a_clean_4xx(fresh: LocalTenant, hook: Receiver) -> None:
    token = app_token(fresh)
    good = {
        "changeType": "created",
        "notificationUrl": hook.url(),
        "resource": f"users/{member_id(fresh)}/messages",
        "expirationDateTime": expiry(fresh, 60),
    }
    bad_values: list[tuple[str, object]] = [
        ("changeType", 7),
        ("changeType", "created,,updated"),
        ("notificationUrl", "https://[::1"),
        ("notificationUrl", "https://127.0.0.1:99999/x"),
        ("notificationUrl", "https://127.0.0.1:1/ x"),
        ("notificationUrl", "https://user:pw@127.0.0.1/"),
        ("notificationUrl", ["https://127.0.0.1/"]),
        ("resource", f"users/{member_id(fresh)}/messages?$filter=subject eq"),
        ("resource", f"users/{member_id(fresh)}/messages?$filter=nope eq 1"),
        ("resource", f"users/{member_id(fresh)}/messages?$top=5"),
        ("resource", f"users/{member_id(fresh)}/mailFolders('nowhere')/messages"),
        ("expirationDateTime", "tomorrow"),
        ("expirationDateTime", 12),
        ("includeResourceData", "yes"),
        ("latestSupportedTlsVersion", "v9"),
        ("encryptionCertificateId", {"a": 1}),
    ]
    for key, value in bad_values:
        reply = HTTP.post(
            graph(fresh, "/subscriptions"), json={**good, key: value}, headers=bearer(token), timeout=30
        )
        assert 400 <= reply.status_code < 500, (key, value, reply.status_code, reply.text)
        assert reply.json()["error"]["code"], (key, value)
    for raw, ctype in ((b"[]", "application/json"), (b"{", "application/json"), (b"", "application/json")):
        reply = HTTP.post(
            graph(fresh, "/subscriptions"),
            data=raw,
            headers=bearer(token, **{"Content-Type": ctype}),
            timeout=30,
        )
        assert reply.status_code == 400, reply.text
    sid = subscribe(fresh, hook, token=token)["id"]
    for body in (
        [],
        {"expirationDateTime": None},
        {"notificationUrl": "ftp://x"},
        {"expirationDateTime": "x"},
    ):
        reply = HTTP.patch(
            graph(fresh, f"/subscriptions/{sid}"), json=body, headers=bearer(token), timeout=30
        )
        assert reply.status_code == 400, (body, reply.text)
    assert hook.notifications() == []


def test_subscription_writes_are_throttled_and_faults_apply(fresh: LocalTenant, hook: Receiver) -> None:
    fresh.control(
        "PUT", "/graph/notifications/settings", {"writesPer20s": 2, "duplicateSubscriptions": "allow"}
    )
    subscribe(fresh, hook)
    subscribe(fresh, hook)
    reply = HTTP.post(
        graph(fresh, "/subscriptions"),
        json={
            "changeType": "created",
            "notificationUrl": hook.url(),
            "resource": f"users/{member_id(fresh)}/messages",
            "expirationDateTime": expiry(fresh, 60),
        },
        headers=bearer(app_token(fresh)),
        timeout=30,
    )
    assert reply.status_code == 429 and reply.json()["error"]["code"] == "TooManyRequests"
    assert 1 <= int(reply.headers["Retry-After"]) <= 21
    fresh.advance_clock(21)
    subscribe(fresh, hook)  # the window has passed
    # the fault API applies to the new routes like any Graph route
    fresh.control(
        "POST", "/faults", {"service": "graph", "path": "^/v1.0/subscriptions$", "status": 503, "times": 1}
    )
    err = subscribe(fresh, hook, expect=503)["error"]
    assert err["code"] == "ServiceUnavailable"
    subscribe(fresh, hook)  # recovered
