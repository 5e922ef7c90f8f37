"""Messages, mail folders and sendMail in process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from emulator.directory.model import Message, iso
from emulator.graph.mailbox import SCOPED_OUT, html_to_text
from tests.emulator.graph_kit import InProcess, assert_graph_error, eventually

PREFER_TEXT = {"Prefer": 'outlook.body-content-type="text"'}


@pytest.fixture(scope="module")
def g(tmp_path_factory: pytest.TempPathFactory) -> InProcess:
    return InProcess.create(Path(tmp_path_factory.mktemp("graph-mail")))


@pytest.fixture
def fresh(g: InProcess) -> Iterator[InProcess]:
    yield g
    g.state.reset()


@pytest.fixture(scope="module")
def token(g: InProcess) -> str:
    return g.app_token("Mail.Read", "Mail.Send", "User.Read.All")


def box(g: InProcess, user=None) -> list[Message]:  # type: ignore[no-untyped-def]
    mailbox = g.state.mailbox(user or g.state.ids.admin)
    assert mailbox is not None
    return mailbox.messages


def url(g: InProcess, tail: str = "messages", who: str | None = None) -> str:
    return f"/v1.0/users/{who or g.state.ids.admin.id}/{tail}"


# ------------------------------------------------------------------------------------------- listing
def test_default_page_is_10_newest_first_and_skip_links_cover_the_mailbox(g: InProcess, token: str) -> None:
    items, replies = g.collect(url(g), token)
    model = box(g)
    assert len(replies[0].json()["value"]) == 10
    assert [m["id"] for m in items] == [m.id for m in sorted(model, key=lambda m: m.received, reverse=True)]
    first = replies[0].json()
    assert first["@odata.context"] == f"{g.origin}/v1.0/$metadata#users('{g.state.ids.admin.id}')/messages"
    assert first["@odata.nextLink"] == f"{g.origin}{url(g)}?$top=10&$skip=10"
    received = [m["receivedDateTime"] for m in items]
    assert received == sorted(received, reverse=True)


def test_default_order_is_configurable(fresh: InProcess, token: str) -> None:
    from emulator.graph.store import graph_store

    graph_store(fresh.state).settings.mail_default_order = "asc"
    items, _ = fresh.collect(url(fresh, who=fresh.state.ids.admin.user_principal_name) + "?$top=100", token)
    received = [m["receivedDateTime"] for m in items]
    assert received == sorted(received)


@pytest.mark.parametrize("top", ["0", "1001"])
def test_top_bounds(g: InProcess, token: str, top: str) -> None:
    assert_graph_error(g.get(url(g) + f"?$top={top}", token), 400, "ErrorInvalidArgument")


def test_top_1000_and_skip(g: InProcess, token: str) -> None:
    everything = g.get(url(g) + "?$top=1000&$select=id", token).json()
    assert len(everything["value"]) == len(box(g)) and "@odata.nextLink" not in everything
    page = g.get(url(g) + "?$top=5&$skip=7&$select=id", token).json()
    assert [m["id"] for m in page["value"]] == [m["id"] for m in everything["value"][7:12]]
    assert page["@odata.nextLink"].endswith("$top=5&$skip=12")
    beyond = g.get(url(g) + "?$skip=5000", token).json()
    assert beyond["value"] == [] and "@odata.nextLink" not in beyond
    assert_graph_error(g.get(url(g) + "?$skip=-1", token), 400, "BadRequest")


def test_select_keeps_etag_and_id(g: InProcess, token: str) -> None:
    body = g.get(url(g) + "?$select=subject,from&$top=3", token).json()
    assert body["@odata.context"].endswith("/messages(subject,from)")
    assert all(list(m) == ["@odata.etag", "id", "subject", "from"] for m in body["value"])
    assert_graph_error(
        g.get(url(g) + "?$select=subject,colour", token),
        400,
        "RequestBroker--ParseUri",
        "Could not find a property named 'colour' on type 'Microsoft.OutlookServices.Message'.",
    )


def test_count(g: InProcess, token: str) -> None:
    body = g.get(url(g) + "?$count=true&$top=2", token).json()
    assert body["@odata.count"] == len(box(g))


# --------------------------------------------------------------------------------- $filter/$orderby
def _expect(g: InProcess, predicate) -> list[str]:  # type: ignore[no-untyped-def]
    return [m.id for m in sorted(box(g), key=lambda m: m.received, reverse=True) if predicate(m)]


def test_filter_matrix(g: InProcess, token: str) -> None:
    model = box(g)
    pivot = sorted(m.received for m in model)[len(model) // 2]
    sender = model[0].sender.address
    cases = [
        ("isRead eq false", lambda m: not m.is_read),
        ("hasAttachments eq true", lambda m: m.has_attachments),
        ("importance eq 'high'", lambda m: m.importance == "high"),
        (
            f"from/emailAddress/address eq '{sender.upper()}'",
            lambda m: m.sender.address.lower() == sender.lower(),
        ),
        (f"receivedDateTime ge {iso(pivot)}", lambda m: m.received >= pivot),
        (f"receivedDateTime lt {iso(pivot)} and isRead eq true", lambda m: m.received < pivot and m.is_read),
        (
            "importance ne 'normal' or hasAttachments eq true",
            lambda m: m.importance != "normal" or m.has_attachments,
        ),
    ]
    for expr, predicate in cases:
        reply = g.get(url(g) + f"?$filter={quote(expr)}&$top=1000&$select=id", token)
        assert reply.status_code == 200, (expr, reply.text)
        assert [m["id"] for m in reply.json()["value"]] == _expect(g, predicate), expr


@pytest.mark.parametrize(
    ("query", "ok"),
    [
        ("$filter=isRead eq false&$orderby=receivedDateTime desc", False),
        (
            "$filter=receivedDateTime ge 2000-01-01T00:00:00Z and isRead eq false"
            "&$orderby=receivedDateTime desc",
            True,
        ),
        ("$filter=receivedDateTime ge 2000-01-01T00:00:00Z&$orderby=receivedDateTime", True),
        ("$filter=importance eq 'high' and subject eq 'x'&$orderby=subject,importance", False),
        ("$filter=subject ne 'x' and importance ne 'low'&$orderby=subject,importance", True),
        ("$filter=subject ne 'x'&$orderby=subject,importance", False),
        ("$orderby=receivedDateTime asc", True),
    ],
)
def test_filter_orderby_rule(g: InProcess, token: str, query: str, ok: bool) -> None:
    reply = g.get(url(g) + "?" + query, token)
    if ok:
        assert reply.status_code == 200, reply.text
    else:
        assert_graph_error(
            reply,
            400,
            "InefficientFilter",
            "The restriction or sort order is too complex for this operation.",
        )


def test_orderby_sorts(g: InProcess, token: str) -> None:
    asc = g.get(url(g) + "?$orderby=receivedDateTime asc&$top=1000&$select=receivedDateTime", token).json()
    stamps = [m["receivedDateTime"] for m in asc["value"]]
    assert stamps == sorted(stamps)
    subj = g.get(url(g) + "?$orderby=subject&$top=1000&$select=subject", token).json()
    subjects = [m["subject"] for m in subj["value"]]
    assert subjects == sorted(subjects, key=str.casefold)
    assert_graph_error(g.get(url(g) + "?$orderby=shoeSize", token), 400, "RequestBroker--ParseUri")


@pytest.mark.parametrize(
    ("expr", "code"),
    [
        ("isRead eq", "BadRequest"),
        ("isRead eq 'false'", "BadRequest"),
        ("colour eq 'red'", "RequestBroker--ParseUri"),
        ("bodyPreview eq 'x'", "ErrorInvalidUrlQueryFilter"),
        ("isRead gt true", "ErrorInvalidUrlQueryFilter"),
    ],
)
def test_filter_errors(g: InProcess, token: str, expr: str, code: str) -> None:
    assert_graph_error(g.get(url(g) + f"?$filter={quote(expr)}", token), 400, code)


def test_search_messages(g: InProcess, token: str) -> None:
    reply = g.get(url(g) + '?$search="subject:invoice"&$top=1000&$select=subject', token)
    everything = g.get(url(g) + "?$top=1000&$select=subject", token).json()["value"]
    found = reply.json()["value"]
    # Something found (all() over nothing is true), and something left out: the search did filter.
    assert reply.status_code == 200 and 0 < len(found) < len(everything)
    assert all("invoice" in m["subject"].lower() for m in found)
    assert_graph_error(g.get(url(g) + '?$search="x"&$orderby=subject', token), 400, "ErrorInvalidUrlQuery")


# ------------------------------------------------------------------------------- folders, one item
def test_mail_folders(g: InProcess, token: str) -> None:
    body = g.get(url(g, "mailFolders"), token).json()
    names = {f["displayName"] for f in body["value"]}
    assert {"Inbox", "Sent Items", "Drafts", "Deleted Items", "Archive"} == names
    inbox = next(f for f in body["value"] if f["displayName"] == "Inbox")
    model = box(g)
    assert inbox["totalItemCount"] == sum(1 for m in model if m.folder_id == inbox["id"])
    for ref in ("inbox", "Inbox", inbox["id"]):
        folder = g.get(url(g, f"mailFolders/{ref}"), token).json()
        assert folder["id"] == inbox["id"]
        items, _ = g.collect(url(g, f"mailFolders/{ref}/messages") + "?$select=parentFolderId", token)
        assert len(items) == inbox["totalItemCount"] and {m["parentFolderId"] for m in items} == {inbox["id"]}
    assert_graph_error(g.get(url(g, "mailFolders/nowhere/messages"), token), 404, "ErrorItemNotFound")


def test_single_message(g: InProcess, token: str) -> None:
    message = box(g)[3]
    reply = g.get(url(g, f"messages/{message.id}"), token).json()
    assert reply["id"] == message.id and reply["subject"] == message.subject
    assert reply["@odata.context"].endswith("/messages/$entity")
    missing = "AAMkAG" + "0" * 32 + "BGAAA="
    assert_graph_error(
        g.get(url(g, f"messages/{missing}"), token),
        404,
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
    assert_graph_error(
        g.get(url(g, "messages/x!y"), token), 400, "ErrorInvalidIdMalformed", "Id is malformed."
    )


def test_mailbox_not_enabled_and_unknown_user(g: InProcess, token: str) -> None:
    directory = g.state.directory
    for user in (u for u in directory.users if not u.has_mailbox):
        assert_graph_error(
            g.get(url(g, who=user.id), token),
            404,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        )
    assert_graph_error(
        g.get(url(g, who="ghost@contoso.onmicrosoft.com"), token),
        404,
        "ErrorInvalidUser",
        "The requested user 'ghost@contoso.onmicrosoft.com' is invalid.",
    )


# -------------------------------------------------------------------------------- body and content
def test_prefer_text_converts_html_bodies(g: InProcess, token: str) -> None:
    html_msg = next(m for m in box(g) if m.body_content_type == "html")
    text_msg = next(m for m in box(g) if m.body_content_type == "text")
    reply = g.request("GET", url(g, f"messages/{html_msg.id}"), token, PREFER_TEXT)
    assert reply.headers["preference-applied"] == 'outlook.body-content-type="text"'
    body = reply.json()["body"]
    assert body["contentType"] == "text"
    assert "<" not in body["content"] and "steal()" not in body["content"]
    assert body["content"] == html_to_text(html_msg.body)
    plain = g.get(url(g, f"messages/{html_msg.id}"), token)
    assert "preference-applied" not in plain.headers and plain.json()["body"]["content"] == html_msg.body
    as_html = g.request(
        "GET", url(g, f"messages/{text_msg.id}"), token, {"Prefer": 'outlook.body-content-type="html"'}
    ).json()["body"]
    assert as_html["contentType"] == "html" and as_html["content"].startswith("<html>")
    listed = g.request("GET", url(g) + "?$top=50", token, PREFER_TEXT).json()["value"]
    assert all(m["body"]["contentType"] == "text" for m in listed)


def test_hostile_content_is_returned_verbatim(g: InProcess, token: str) -> None:
    reply = g.get(url(g) + "?$top=1000", token)
    by_id = {m.id: m for m in box(g)}
    hostile = 0
    for item in reply.json()["value"]:
        model = by_id[item["id"]]
        assert item["subject"] == model.subject
        assert item["body"]["content"] == model.body
        assert item["from"]["emailAddress"] == {"name": model.sender.name, "address": model.sender.address}
        hostile += "<script>" in model.subject or "onerror" in model.sender.name
    assert hostile > 0
    raw = reply.content.decode()
    assert "<script>alert('subject')</script>" in raw or "onerror=alert(document.cookie)" in raw
    assert json.loads(raw)["value"]  # valid JSON: quotes are escaped, nothing else is altered


# ---------------------------------------------------------------------------------------- sendMail
def _send(g: InProcess, token: str, payload: object, who: str | None = None):  # type: ignore[no-untyped-def]
    return g.post(url(g, "sendMail", who), token, payload)


def _top(g: InProcess, token: str, folder: str, who: str | None = None) -> dict[str, Any]:
    reply = g.get(url(g, f"mailFolders/{folder}/messages", who) + "?$top=1", token)
    assert reply.status_code == 200, reply.text
    return dict(reply.json()["value"][0])


def test_send_mail_delivers_and_saves_after_a_delay(fresh: InProcess, token: str) -> None:
    admin, member = fresh.state.ids.admin, fresh.state.ids.member
    payload: dict[str, Any] = {
        "message": {
            "subject": "Quarterly <b>numbers</b>",
            "body": {"contentType": "HTML", "content": "<p>Hi</p>"},
            "toRecipients": [{"emailAddress": {"address": member.user_principal_name.upper()}}],
            "ccRecipients": [{"emailAddress": {"address": "someone@external.example"}}],
        }
    }
    reply = _send(fresh, token, payload)
    assert reply.status_code == 202 and reply.content == b""
    assert _top(fresh, token, "inbox", member.id)["subject"] != "Quarterly <b>numbers</b>"  # not yet

    def delivered() -> dict[str, Any] | None:
        top = _top(fresh, token, "inbox", member.id)
        return top if top["subject"] == "Quarterly <b>numbers</b>" else None

    top = eventually(delivered)
    assert top["body"] == {"contentType": "html", "content": "<p>Hi</p>"}
    assert top["from"]["emailAddress"] == {"name": admin.display_name, "address": admin.mail}
    assert top["isRead"] is False
    sent = _top(fresh, token, "sentitems")
    assert (
        sent["subject"] == "Quarterly <b>numbers</b>"
        and sent["internetMessageId"] == top["internetMessageId"]
    )


@pytest.mark.parametrize("save", [False, "false", "False"])
def test_save_to_sent_items_false_as_boolean_or_string(fresh: InProcess, token: str, save: object) -> None:
    member = fresh.state.ids.member
    payload = {
        "message": {"subject": "no copy", "toRecipients": [{"emailAddress": {"address": member.mail}}]},
        "saveToSentItems": save,
    }
    assert _send(fresh, token, payload).status_code == 202
    eventually(lambda: _top(fresh, token, "inbox", member.id)["subject"] == "no copy" or None)
    assert _top(fresh, token, "sentitems")["subject"] != "no copy"


def test_send_mail_delay_is_configurable(fresh: InProcess, token: str) -> None:
    from emulator.graph.store import graph_store

    graph_store(fresh.state).settings.send_mail_delay_ms = 0
    member = fresh.state.ids.member
    payload = {
        "message": {"subject": "at once", "toRecipients": [{"emailAddress": {"address": member.mail}}]}
    }
    assert _send(fresh, token, payload).status_code == 202
    assert _top(fresh, token, "inbox", member.id)["subject"] == "at once"
    assert _top(fresh, token, "sentitems")["subject"] == "at once"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({}, "ErrorInvalidParameter"),
        ({"message": {"subject": "x"}}, "ErrorInvalidRecipients"),
        (
            {"message": {"toRecipients": [{"emailAddress": {"address": "not-an-address"}}]}},
            "ErrorInvalidRecipients",
        ),
        ({"message": {"toRecipients": "a@b.c"}}, "RequestBodyRead"),
        ({"message": {"colour": "red", "toRecipients": []}}, "RequestBodyRead"),
        (
            {
                "message": {"toRecipients": [{"emailAddress": {"address": "a@b.example"}}]},
                "saveToSentItems": "no",
            },
            "RequestBodyRead",
        ),
        (
            {
                "message": {
                    "toRecipients": [{"emailAddress": {"address": "a@b.example"}}],
                    "body": {"contentType": "rtf"},
                }
            },
            "RequestBodyRead",
        ),
        ({"message": {}, "extra": 1}, "RequestBodyRead"),
    ],
)
def test_send_mail_validation(g: InProcess, token: str, payload: object, code: str) -> None:
    assert_graph_error(_send(g, token, payload), 400, code)


def test_send_mail_body_must_be_json(g: InProcess, token: str) -> None:
    reply = g.request("POST", url(g, "sendMail"), token, {"Content-Type": "application/json"})
    assert_graph_error(reply, 400, "BadRequest", "Empty Payload. JSON content expected.")
    import asyncio

    from tests.emulator.graph_kit import asgi_call

    reply = asyncio.run(
        asgi_call(
            g.app,
            "POST",
            url(g, "sendMail"),
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            body=b"{not json",
        )
    )
    assert_graph_error(reply, 400, "BadRequest")


def test_send_mail_permissions(g: InProcess) -> None:
    admin, member = g.state.ids.admin, g.state.ids.member
    to = {"message": {"toRecipients": [{"emailAddress": {"address": "x@external.example"}}]}}
    delegated = g.user_token(member, "Mail.Send")
    assert g.post("/v1.0/me/sendMail", delegated, to).status_code == 202
    assert g.post(url(g, "sendMail", member.id), delegated, to).status_code == 202
    assert_graph_error(g.post(url(g, "sendMail", admin.id), delegated, to), 403, "ErrorAccessDenied")
    assert_graph_error(
        g.post("/v1.0/me/sendMail", g.user_token(member, "Mail.Read"), to), 403, "ErrorAccessDenied"
    )
    assert_graph_error(g.post(url(g, "sendMail"), g.app_token("Mail.Read"), to), 403, "ErrorAccessDenied")
    guest = next(u for u in g.state.directory.users if not u.has_mailbox)
    assert_graph_error(
        g.post(url(g, "sendMail", guest.id), g.app_token("Mail.Send"), to), 404, "MailboxNotEnabledForRESTAPI"
    )


def test_application_access_policy(fresh: InProcess, token: str) -> None:
    from emulator.graph.store import graph_store

    graph_store(fresh.state).settings.mail_access[fresh.state.ids.app.app_id] = {fresh.state.ids.member.id}
    assert fresh.get(url(fresh, who=fresh.state.ids.member.id), token).status_code == 200
    assert_graph_error(fresh.get(url(fresh), token), 403, *SCOPED_OUT)
