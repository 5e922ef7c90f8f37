"""Mailbox reads without a network: input validation, cursor binding, Graph error mapping, the scope cache
and the audit-before-answer rule (the HTTP seam fake stands in for Graph; a list for the audit table)."""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import quote

import pytest

from shared.app.tenants import graph_config
from shared.core.cursor import encode_cursor
from shared.core.errors import (
    AuditUnavailable,
    BadRequest,
    Forbidden,
    InvalidCursor,
    MailboxOutOfScope,
    NotFound,
    PermissionNotGranted,
    UpstreamError,
    UpstreamThrottled,
)
from shared.graph.client import GraphClient
from shared.identity.principal import Principal
from shared.mail.audit import AuditEntry
from shared.mail.messages import MailService
from shared.mail.query import (
    LIST_FIELDS,
    decode_messages_cursor,
    link_query,
    message_path,
    messages_path,
    parse_list_query,
    validate_mailbox,
    validate_message_id,
)
from shared.mail.reads import MailReads
from shared.mail.scope import MailboxOwner, MailboxScope

from .conftest import GRAPH, make_settings
from .fakes import FakeClock, FakeTokens, FakeTransport, graph_error, respond

ADA = "ada@contoso.com"
GROUP = "8a0c4e7e-1b2d-4c5f-9a6b-7c8d9e0f1a2b"
ADA_ID = "0b7c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d"
EVE_ID = "1c8d2e3f-4051-4b6c-9d7e-8f9a0b1c2d3e"
SELECT = ",".join(LIST_FIELDS)


def graph(transport: FakeTransport, **settings: str) -> GraphClient:
    clock = FakeClock()
    return GraphClient(
        config=graph_config(make_settings(**settings)),
        tokens=FakeTokens(),
        transport=transport,
        sleep=clock.sleep,
        clock=clock,
    )


def link(mailbox: str = ADA, folder: str | None = None, **options: str) -> str:
    query = {"$top": "10", "$select": SELECT, "$orderby": "receivedDateTime desc", "$skip": "10", **options}
    pairs = [f"{k}={quote(v, safe=',')}" for k, v in query.items() if v]
    return f"{GRAPH}/v1.0/{messages_path(mailbox, folder)}?" + "&".join(pairs)


def message(index: int) -> dict[str, Any]:
    return {
        "id": f"AAMkAG{index:020d}",
        "subject": "<script>x</script>",
        "from": {"emailAddress": {"name": "N", "address": "n@contoso.com"}},
        "toRecipients": [{"emailAddress": {"name": "A", "address": ADA}}],
        "receivedDateTime": "2026-12-01T10:00:00Z",
        "bodyPreview": "hi",
        "isRead": False,
        "hasAttachments": True,
        "importance": "high",
        "webLink": "https://outlook.office365.com/owa/?ItemID=x",
    }


# -- validation ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["ada", "a/b@contoso.com", "a..b@contoso.com", "ada@contoso.com?x", "ada@contoso.com#", "a\n@b.com", ""],
)
def test_mailbox_ids_outside_the_allowlist_are_refused(value: str) -> None:
    with pytest.raises(BadRequest):
        validate_mailbox(value)


def test_mailbox_ids_are_lower_cased_and_encoded() -> None:
    assert validate_mailbox("Ada@Contoso.com") == ADA
    assert (
        messages_path("o'neil&co@contoso.com", "inbox")
        == "users/o%27neil%26co@contoso.com/mailFolders/inbox/messages"
    )
    assert messages_path("$admin@contoso.com", None).startswith("users('$admin@contoso.com')")


@pytest.mark.parametrize(
    "value", ["", "a/b", "a?b", "a#b", "$value", "..", "a.b", "a%2Fb", "a\x00b", "x" * 513]
)
def test_message_ids_outside_the_allowlist_are_refused(value: str) -> None:
    with pytest.raises(BadRequest):
        validate_message_id(value)


def test_message_ids_are_encoded() -> None:
    assert message_path(ADA, "AAMk+a=") == "users/ada@contoso.com/messages/AAMk%2Ba%3D"


@pytest.mark.parametrize(
    "params",
    [
        {"top": "0"},
        {"top": "51"},
        {"top": "1.5"},
        {"folder": "deleteditems"},
        {"folder": ""},
        {"select": "id"},
    ],
)
def test_bad_list_parameters(params: dict[str, str]) -> None:
    with pytest.raises(BadRequest):
        parse_list_query(ADA, params)


def test_list_defaults() -> None:
    query = parse_list_query("ADA@contoso.com", {"folder": " Inbox "})
    assert (query.mailbox, query.top, query.folder, query.cursor) == (ADA, 10, "inbox", None)


# -- cursors -------------------------------------------------------------------------------------------------


def test_next_links_of_the_mailbox_are_accepted_and_tell_their_folder() -> None:
    assert link_query(link(), mailbox=ADA) is not None
    parsed = link_query(link(folder="sentitems", **{"$top": "7"}), mailbox=ADA)
    assert parsed is not None and (parsed.top, parsed.folder) == (7, "sentitems")
    assert link_query(link(**{"$skip": "", "$skiptoken": "abc"}), mailbox=ADA) is not None


@pytest.mark.parametrize(
    "bad",
    [
        link(mailbox="eve@contoso.com"),
        link(**{"$select": "body"}),
        link(**{"$orderby": "subject"}),
        link(**{"$top": "999"}),
        link(**{"$skip": "x"}),
        link(**{"$skip": ""}),
        link(**{"$filter": "true"}),
        link(folder="deleteditems"),
        link().replace("/messages?", "/messages/..%2F..%2Fx?"),
        link().replace("users/ada@contoso.com", "users/ada@contoso.com%2Fmessages"),
        link().replace("users/ada@contoso.com", "users/%2561da@contoso.com"),
    ],
)
def test_other_links_are_refused(bad: str) -> None:
    assert link_query(bad, mailbox=ADA) is None


def test_a_cursor_is_bound_to_its_mailbox_and_to_repeated_parameters() -> None:
    cursor = encode_cursor(link(folder="inbox"), eventual=False)
    accept = lambda url: url.startswith(GRAPH)  # noqa: E731
    query = parse_list_query(ADA, {"cursor": cursor})
    assert decode_messages_cursor(query, is_graph_url=accept) == link(folder="inbox")
    same = parse_list_query(ADA, {"cursor": cursor, "top": "10", "folder": "inbox"})
    assert decode_messages_cursor(same, is_graph_url=accept)
    with pytest.raises(BadRequest, match="top differs"):
        decode_messages_cursor(parse_list_query(ADA, {"cursor": cursor, "top": "11"}), is_graph_url=accept)
    with pytest.raises(BadRequest, match="folder differs"):
        decode_messages_cursor(
            parse_list_query(ADA, {"cursor": cursor, "folder": "drafts"}), is_graph_url=accept
        )
    with pytest.raises(InvalidCursor):
        decode_messages_cursor(parse_list_query("eve@contoso.com", {"cursor": cursor}), is_graph_url=accept)
    with pytest.raises(InvalidCursor):
        decode_messages_cursor(query, is_graph_url=lambda url: False)
    with pytest.raises(InvalidCursor):
        eventual = encode_cursor(link(), eventual=True)
        decode_messages_cursor(parse_list_query(ADA, {"cursor": eventual}), is_graph_url=accept)


# -- Graph answers -----------------------------------------------------------------------------------------


def test_list_sends_the_order_select_and_page_size_and_shapes_items() -> None:
    transport = FakeTransport([respond(200, {"value": [message(1)], "@odata.nextLink": link()})])
    page = MailService(graph(transport)).list_messages(parse_list_query(ADA, {"top": "10"}))
    [sent] = transport.requests
    assert sent.url == f"{GRAPH}/v1.0/users/ada@contoso.com/messages"
    assert sent.params == {"$top": "10", "$select": SELECT, "$orderby": "receivedDateTime desc"}
    assert page.items[0]["from"] == {"name": "N", "address": "n@contoso.com"}
    assert page.items[0]["subject"] == "<script>x</script>"  # data, escaped where it is rendered
    assert page.next_cursor is not None


def test_a_next_link_outside_the_mailbox_is_an_upstream_error() -> None:
    transport = FakeTransport(
        [respond(200, {"value": [], "@odata.nextLink": link(mailbox="eve@contoso.com")})]
    )
    with pytest.raises(UpstreamError):
        MailService(graph(transport)).list_messages(parse_list_query(ADA, {}))


@pytest.mark.parametrize(
    ("answer", "item", "expected", "code"),
    [
        (graph_error(404, "ErrorInvalidUser"), "message", NotFound, "user_not_found"),
        (graph_error(404, "MailboxNotEnabledForRESTAPI"), "message", NotFound, "mailbox_not_found"),
        (graph_error(404, "ErrorItemNotFound"), "message", NotFound, "message_not_found"),
        (graph_error(400, "ErrorInvalidIdMalformed"), "message", NotFound, "message_not_found"),
        (
            graph_error(403, "ErrorAccessDenied", "Access to OData is disabled: [RAOP] : Blocked by tenant "
                        "configured AppOnly AccessPolicy settings."),
            "message", MailboxOutOfScope, "mailbox_out_of_scope",
        ),
        (graph_error(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."),
         "message", PermissionNotGranted, "permission_not_granted"),
    ],
)  # fmt: skip
def test_graph_errors_map_to_the_documented_codes(answer: Any, item: str, expected: type, code: str) -> None:
    transport = FakeTransport([answer])
    with pytest.raises(expected) as raised:
        MailService(graph(transport)).get_message(ADA, "AAMkAG0000000000000000")
    assert raised.value.code == code  # type: ignore[attr-defined]


def test_one_message_asks_for_text_and_refuses_html() -> None:
    text = {**message(1), "body": {"contentType": "text", "content": "plain"}}
    transport = FakeTransport([respond(200, text), respond(200, {**text, "body": {"contentType": "html"}})])
    service = MailService(graph(transport))
    assert service.get_message(ADA, "AAMkAG0000000000000001")["body"] == "plain"
    assert transport.requests[0].headers["Prefer"] == 'outlook.body-content-type="text"'
    with pytest.raises(UpstreamError):
        service.get_message(ADA, "AAMkAG0000000000000001")


def test_mailbox_concurrency_is_retried_then_a_503_with_retry_after() -> None:
    throttled = graph_error(429, "ApplicationThrottled", "MailboxConcurrency", headers={"Retry-After": "2"})
    ok = respond(200, {"value": [message(1)]})
    transport = FakeTransport([throttled, throttled, ok])
    assert len(MailService(graph(transport)).list_messages(parse_list_query(ADA, {})).items) == 1
    transport = FakeTransport([throttled] * 10)
    with pytest.raises(UpstreamThrottled) as raised:
        MailService(graph(transport, GRAPH_RETRY_BUDGET_SECONDS="3")).list_messages(parse_list_query(ADA, {}))
    assert raised.value.retry_after == 2


# -- scope -------------------------------------------------------------------------------------------------


def scope_of(transport: FakeTransport, scope: str | None, ttl: int = 300, clock: Any = None) -> MailboxScope:
    return MailboxScope(graph(transport), scope=scope, cache_seconds=ttl, clock=clock or time.monotonic)


def owner(object_id: str, upn: str) -> Any:
    return respond(200, {"id": object_id.upper(), "userPrincipalName": upn.title()})


def test_default_scope_denies_with_the_setting_named() -> None:
    with pytest.raises(MailboxOutOfScope, match="MAILBOX_SCOPE"):
        scope_of(FakeTransport(), None).require(ADA)  # nothing resolved (FakeTransport would fail)
    transport = FakeTransport([owner(ADA_ID, ADA)])
    assert scope_of(transport, "*").require(ADA) == MailboxOwner(ADA_ID, ADA)  # the owner, no check
    assert transport.requests[0].params == {"$select": "id,userPrincipalName"}


def test_owner_and_membership_answers_are_cached_for_the_period() -> None:
    clock = FakeClock()
    transport = FakeTransport()
    transport.route(f"{GRAPH}/v1.0/users/ada@", owner(ADA_ID, ADA))
    transport.route(f"{GRAPH}/v1.0/users/eve@", owner(EVE_ID, "eve@contoso.com"))
    transport.route(f"{GRAPH}/v1.0/users/{ADA_ID}/checkMemberGroups", respond(200, {"value": [GROUP]}))
    transport.route(f"{GRAPH}/v1.0/users/{EVE_ID}/checkMemberGroups", respond(200, {"value": []}))
    transport.route(f"{GRAPH}/v1.0/users/{ADA_ID}", owner(ADA_ID, ADA))
    scope = scope_of(transport, GROUP, ttl=300, clock=clock)
    seen: list[MailboxOwner] = []
    for _ in range(3):
        assert scope.require(ADA) == MailboxOwner(ADA_ID, ADA)
        with pytest.raises(MailboxOutOfScope):
            scope.require("eve@contoso.com", seen.append)
    assert seen == [MailboxOwner(EVE_ID, "eve@contoso.com")] * 3  # refusals know whose mailbox it was
    assert len(transport.requests) == 4  # one lookup and one check per mailbox
    assert transport.requests[1].url.endswith(f"/users/{ADA_ID}/checkMemberGroups")
    assert transport.requests[1].data == b'{"groupIds":["' + GROUP.encode() + b'"]}'
    assert scope.require(ADA_ID) == MailboxOwner(ADA_ID, ADA)  # the other form: one lookup, same check
    assert len(transport.requests) == 5
    clock.now += 301
    scope.require(ADA)
    assert len(transport.requests) == 7


def test_concurrent_first_reads_share_one_membership_check() -> None:
    gate = threading.Event()

    def slow(request: Any) -> Any:
        gate.wait(5)
        return respond(200, {"value": [GROUP]}) if request.method == "POST" else owner(ADA_ID, ADA)

    transport = FakeTransport()
    transport.route(f"{GRAPH}/v1.0/users/", slow)
    scope = scope_of(transport, GROUP)
    outcomes: list[object] = []  # every caller's answer: an exception in a thread would only warn

    def read() -> None:
        try:
            scope.require(ADA)
        except Exception as error:  # recorded and checked below
            outcomes.append(error)
        else:
            outcomes.append("admitted")

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.1)
    gate.set()
    for thread in threads:
        thread.join(5)
    assert not any(thread.is_alive() for thread in threads)
    assert outcomes == ["admitted"] * 8  # all eight, the seven waiting ones included
    assert len(transport.requests) == 2  # one lookup, one check


def test_scope_check_errors() -> None:
    transport = FakeTransport(
        [
            graph_error(404, "Request_ResourceNotFound"),
            graph_error(403, "Authorization_RequestDenied"),
            owner(ADA_ID, ADA),
            graph_error(403, "Authorization_RequestDenied"),
        ]
    )
    scope = scope_of(transport, GROUP, ttl=0)
    with pytest.raises(NotFound) as raised:
        scope.require(ADA)
    assert raised.value.code == "user_not_found"
    with pytest.raises(PermissionNotGranted, match=r"User\.Read\.All"):
        scope.require(ADA)
    with pytest.raises(PermissionNotGranted, match=r"GroupMember\.Read\.All"):
        scope.require(ADA)


# -- audit before the answer ---------------------------------------------------------------------------


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.entries: list[AuditEntry] = []
        self.fail = fail

    def record(self, entry: AuditEntry) -> None:
        if self.fail:
            raise AuditUnavailable("table down")
        self.entries.append(entry)


def reads(transport: FakeTransport, recorder: Recorder, scope: str | None = "*") -> MailReads:
    client = graph(transport)
    return MailReads(MailboxScope(client, scope=scope, cache_seconds=300), MailService(client), recorder)  # type: ignore[arg-type]


SERVICE = Principal(kind="application", app_id="caller", object_id=None, tenant_id="t", roles=frozenset())


def test_every_attempt_is_recorded_with_its_outcome() -> None:
    recorder = Recorder()
    transport = FakeTransport(
        [
            owner(ADA_ID, ADA),
            respond(200, {"value": [message(1), message(2)]}),
            graph_error(404, "ErrorInvalidUser"),  # the owner is cached; the mailbox read fails
        ]
    )
    service = reads(transport, recorder)
    assert len(service.list_messages(SERVICE, "Ada@contoso.com", {}, request_id="r1").items) == 2
    with pytest.raises(NotFound):
        service.list_messages(SERVICE, ADA, {}, request_id="r2")
    with pytest.raises(BadRequest):
        service.list_messages(SERVICE, "a/b\n", {}, request_id="r3")
    with pytest.raises(Forbidden):
        service.list_messages(SERVICE, ADA, {}, request_id="r4", refusal=Forbidden("no role"))
    summary = [
        (e.request_id, e.outcome, e.status, e.error_code, e.message_count, e.mailbox, e.owner)
        for e in recorder.entries
    ]
    ada = MailboxOwner(ADA_ID, ADA)
    assert summary == [
        ("r1", "allowed", 200, None, 2, ADA, ada),
        ("r2", "failed", 404, "user_not_found", 0, ADA, ada),
        ("r3", "failed", 400, "invalid_parameter", 0, "a/b?", None),
        ("r4", "denied", 403, "forbidden", 0, ADA, None),  # a refused caller triggers no lookup
    ]


def test_a_read_by_object_id_is_recorded_with_the_owners_upn_and_out_of_scope_with_the_owner() -> None:
    recorder = Recorder()
    transport = FakeTransport()
    transport.route(f"{GRAPH}/v1.0/users/{ADA_ID}/checkMemberGroups", respond(200, {"value": []}))
    transport.route(f"{GRAPH}/v1.0/users/{ADA_ID}", owner(ADA_ID, ADA))
    with pytest.raises(MailboxOutOfScope):
        reads(transport, recorder, scope=GROUP).list_messages(SERVICE, ADA_ID.upper(), {}, request_id="r1")
    (entry,) = recorder.entries
    assert (entry.mailbox, entry.owner, entry.outcome) == (ADA_ID, MailboxOwner(ADA_ID, ADA), "denied")


def test_an_unrecorded_read_is_refused() -> None:
    transport = FakeTransport([owner(ADA_ID, ADA), respond(200, {"value": [message(1)]})])
    with pytest.raises(AuditUnavailable):
        reads(transport, Recorder(fail=True)).list_messages(SERVICE, ADA, {}, request_id="r1")
    with pytest.raises(AuditUnavailable):  # a refusal that cannot be recorded is a 503 too
        reads(FakeTransport(), Recorder(fail=True), scope=None).list_messages(
            SERVICE, ADA, {}, request_id="r2"
        )
