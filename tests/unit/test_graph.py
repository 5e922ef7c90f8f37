from __future__ import annotations

import email.utils
import time
import uuid

import pytest

from shared.app.tenants import graph_config
from shared.core.context import request_scope
from shared.core.errors import BadRequest, NotFound, UpstreamError, UpstreamThrottled
from shared.core.http import InvalidRequestError, TransportError
from shared.core.retry_policy import parse_retry_after, worst_case_call_seconds
from shared.graph.client import GraphClient

from .conftest import GRAPH, make_settings
from .fakes import (
    FakeClock,
    FakeResponse,
    FakeTokens,
    FakeTransport,
    SentRequest,
    connection_error,
    graph_error,
    respond,
)

USERS = f"{GRAPH}/v1.0/users"


def client(
    transport: FakeTransport,
    clock: FakeClock | None = None,
    tokens: FakeTokens | None = None,
    **settings: str,
) -> GraphClient:
    clock = clock or FakeClock()
    return GraphClient(
        config=graph_config(make_settings(**settings)),
        tokens=tokens or FakeTokens(),
        transport=transport,
        sleep=clock.sleep,
        clock=clock,
        jitter=lambda: 0.5,
    )


def ok(body: dict[str, object] | None = None) -> FakeResponse:
    return respond(200, body if body is not None else {"value": []})


def test_get_sends_bearer_token_and_correlation_headers() -> None:
    transport = FakeTransport([ok({"id": "1"})])
    tokens = FakeTokens()
    assert client(transport, tokens=tokens).get_json("users/1", params={"$select": "id"}) == {"id": "1"}
    [request] = transport.requests
    assert request.method == "GET" and request.url == f"{GRAPH}/v1.0/users/1"
    assert request.params == {"$select": "id"}
    assert request.headers["authorization"] == "Bearer token-1"
    assert request.headers["accept"] == "application/json"
    uuid.UUID(request.headers["client-request-id"])
    assert "consistencylevel" not in request.headers
    assert tokens.scopes == [f"{GRAPH}/.default"]
    assert request.timeout == 10.0


def test_request_id_is_forwarded_when_it_is_a_guid() -> None:
    transport = FakeTransport([ok(), ok()])
    rid = str(uuid.uuid4())
    with request_scope(rid):
        client(transport).get_json("users")
    with request_scope("not-a-guid"):
        client(transport).get_json("users")
    assert transport.requests[0].headers["client-request-id"] == rid
    assert transport.requests[1].headers["client-request-id"] != "not-a-guid"


def test_429_retry_after_is_honoured() -> None:
    clock = FakeClock()
    transport = FakeTransport([graph_error(429, "TooManyRequests", headers={"Retry-After": "2"}), ok()])
    client(transport, clock).get_json("users")
    assert clock.sleeps == [2.0]
    ids = {r.headers["client-request-id"] for r in transport.requests}
    assert len(transport.requests) == 2 and len(ids) == 1  # one logical call, one correlation id


def test_retry_after_beyond_the_budget_fails_at_once_with_the_upstream_value() -> None:
    clock = FakeClock()
    transport = FakeTransport(
        [graph_error(503, "ServiceUnavailable", request_id="r-9", headers={"Retry-After": "40"})]
    )
    with pytest.raises(UpstreamThrottled) as caught:
        client(transport, clock).get_json("users")
    error = caught.value
    assert (error.status, error.code, error.retry_after) == (503, "upstream_throttled", 40)
    assert (error.graph_code, error.graph_request_id) == ("ServiceUnavailable", "r-9")
    assert clock.sleeps == [] and len(transport.requests) == 1


def test_throttling_stops_when_the_budget_is_spent() -> None:
    clock = FakeClock()
    throttled = graph_error(429, "TooManyRequests", headers={"Retry-After": "10"})
    transport = FakeTransport([throttled] * 10)
    with pytest.raises(UpstreamThrottled) as caught:
        client(transport, clock).get_json("users")
    assert clock.sleeps == [10.0, 10.0, 10.0]  # 30 s budget
    assert len(transport.requests) == 4
    assert caught.value.retry_after == 10


def test_throttling_stops_after_max_retries() -> None:
    clock = FakeClock()
    transport = FakeTransport([graph_error(429, "TooManyRequests", headers={"Retry-After": "1"})] * 10)
    with pytest.raises(UpstreamThrottled):
        client(transport, clock, GRAPH_MAX_RETRIES="2").get_json("users")
    assert len(transport.requests) == 3 and clock.sleeps == [1.0, 1.0]


def test_backoff_without_retry_after_is_exponential_with_jitter() -> None:
    clock = FakeClock()
    transport = FakeTransport([graph_error(503, "ServiceUnavailable")] * 3 + [ok()])
    client(transport, clock).get_json("users")
    assert clock.sleeps == [0.375, 0.75, 1.5]  # ceiling 0.5*2^n; half fixed + jitter(0.5) * half


def test_504_past_the_budget_is_a_bad_gateway() -> None:
    transport = FakeTransport([graph_error(504, "GatewayTimeout")] * 10)
    with pytest.raises(UpstreamError) as caught:
        client(transport, GRAPH_MAX_RETRIES="1").get_json("users")
    assert caught.value.status == 502 and caught.value.code == "upstream_error"


def test_connection_errors_are_retried_then_reported() -> None:
    clock = FakeClock()
    transport = FakeTransport([connection_error(), connection_error(timeout=True), ok({"id": "x"})])
    assert client(transport, clock).get_json("users/x") == {"id": "x"}
    transport = FakeTransport([connection_error()] * 10)
    with pytest.raises(UpstreamError, match="unreachable"):
        client(transport, GRAPH_MAX_RETRIES="3").get_json("users")
    assert len(transport.requests) == 4


def test_non_idempotent_requests_are_not_retried_after_the_request_was_sent() -> None:
    for lost in (TransportError("connection reset", sent=True), TransportError("read timeout", timeout=True)):
        transport = FakeTransport([lost, ok()])
        with pytest.raises(UpstreamError, match="unreachable or timed out"):
            client(transport).post_json("$batch", {"requests": []})
        assert len(transport.requests) == 1


def test_non_idempotent_requests_are_retried_when_no_connection_was_made() -> None:
    clock = FakeClock()
    transport = FakeTransport([TransportError("connection refused", sent=False), ok({"responses": []})])
    assert client(transport, clock).post_json("$batch", {"requests": []}) == {"responses": []}
    assert len(transport.requests) == 2 and clock.sleeps == [0.375]


def test_post_sends_json_and_accepts_an_empty_answer() -> None:
    transport = FakeTransport([respond(202, text="")])
    assert client(transport).post_json("users/1/sendMail", {"message": {"subject": "s"}}) is None
    [request] = transport.requests
    assert request.method == "POST" and request.url == f"{USERS}/1/sendMail"
    assert request.headers["content-type"] == "application/json"
    assert request.data == b'{"message":{"subject":"s"}}'


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (graph_error(504, "GatewayTimeout"), UpstreamError),  # a gateway gave up: the mail may be sent
        (graph_error(503, "ServiceUnavailable"), UpstreamThrottled),  # no Retry-After: no promise
    ],
)
def test_post_is_not_retried_when_graph_may_have_processed_it(
    answer: FakeResponse, error: type[Exception]
) -> None:
    clock = FakeClock()
    transport = FakeTransport([answer, respond(202, text="")])
    with pytest.raises(error):
        client(transport, clock).post_json("users/1/sendMail", {})
    assert len(transport.requests) == 1 and clock.sleeps == []


@pytest.mark.parametrize(
    "answer",
    [
        graph_error(429, "TooManyRequests", headers={"Retry-After": "2"}),
        graph_error(429, "TooManyRequests"),
        graph_error(503, "ServiceUnavailable", headers={"Retry-After": "2"}),
    ],
)
def test_post_is_retried_when_graph_did_not_process_it(answer: FakeResponse) -> None:
    transport = FakeTransport([answer, respond(202, text="")])
    assert client(transport).post_json("users/1/sendMail", {}) is None
    assert len(transport.requests) == 2


def test_get_is_still_retried_on_504_and_503_without_retry_after() -> None:
    transport = FakeTransport([graph_error(504, "GatewayTimeout"), graph_error(503, "x"), ok({"id": "1"})])
    assert client(transport).get_json("users/1") == {"id": "1"}
    assert len(transport.requests) == 3


def test_504_on_post_says_the_request_was_not_repeated() -> None:
    transport = FakeTransport([graph_error(504, "GatewayTimeout")])
    with pytest.raises(UpstreamError, match="may have been processed"):
        client(transport).post_json("users/1/sendMail", {})


def test_a_request_that_cannot_be_built_is_never_retried() -> None:
    transport = FakeTransport([InvalidRequestError("invalid URL")] * 3)
    with pytest.raises(InvalidRequestError):  # the app built it: a bug, answered as internal_error
        client(transport).get_json("users")
    assert len(transport.requests) == 1
    transport = FakeTransport([InvalidRequestError("invalid URL")] * 3)
    with pytest.raises(BadRequest):  # the caller's input made it: the caller's 400
        client(transport).get_json("users", client_input=True)
    assert len(transport.requests) == 1


def test_zero_budget_means_no_retries() -> None:
    transport = FakeTransport([graph_error(429, "TooManyRequests")])
    with pytest.raises(UpstreamThrottled) as caught:
        client(transport, GRAPH_RETRY_BUDGET_SECONDS="0").get_json("users")
    assert caught.value.retry_after == 1  # the computed backoff, rounded up


def test_attempt_timeout_never_exceeds_the_remaining_budget() -> None:
    clock = FakeClock()
    transport = FakeTransport([graph_error(429, "TooManyRequests", headers={"Retry-After": "25"}), ok()])
    client(transport, clock).get_json("users")
    assert [r.timeout for r in transport.requests] == [10.0, 5.0]


def test_invalid_token_is_renewed_once() -> None:
    tokens = FakeTokens()
    transport = FakeTransport([graph_error(401, "InvalidAuthenticationToken"), ok({"id": "1"})])
    assert client(transport, tokens=tokens).get_json("users/1") == {"id": "1"}
    assert tokens.invalidated == [(f"{GRAPH}/.default", "token-1")]
    assert [r.headers["authorization"] for r in transport.requests] == ["Bearer token-1", "Bearer token-2"]


def test_invalid_token_is_not_renewed_once_the_budget_is_spent() -> None:
    clock = FakeClock()

    def slow_401(request: SentRequest) -> FakeResponse:
        clock.advance(31)  # the attempt outlasted the 30 s budget
        return graph_error(401, "InvalidAuthenticationToken")

    transport = FakeTransport([slow_401, ok()])
    with pytest.raises(UpstreamError) as caught:
        client(transport, clock).get_json("users/1")
    assert caught.value.code == "upstream_unauthorized" and len(transport.requests) == 1


@pytest.mark.parametrize(
    "answers",
    [
        ["timeout"] * 12,
        ["429:1"] * 12,
        ["503"] * 12,
        ["timeout", "401", "timeout", "timeout", "timeout", "timeout"],
        ["429:29", "timeout", "401", "timeout"],
        ["504", "504", "401", "504", "504", "504"],
    ],
)
@pytest.mark.parametrize(("timeout", "budget"), [("10", "30"), ("30", "5"), ("1", "0"), ("5", "60")])
def test_one_call_never_outlasts_the_documented_worst_case(
    answers: list[str], timeout: str, budget: str
) -> None:
    """Every attempt takes the longest it can (a connect timeout plus a read timeout)."""
    clock = FakeClock()
    start = clock.now

    def answer(kind: str) -> object:
        def respond_slowly(request: SentRequest) -> FakeResponse:
            clock.advance(2 * request.timeout)
            if kind == "timeout":
                raise TransportError("read timeout", timeout=True)
            if kind == "401":
                return graph_error(401, "InvalidAuthenticationToken")
            status, _, retry_after = kind.partition(":")
            return graph_error(
                int(status), "x", headers={"Retry-After": retry_after} if retry_after else None
            )

        return respond_slowly

    transport = FakeTransport([answer(kind) for kind in answers])  # type: ignore[misc]
    graph = client(
        transport,
        clock,
        GRAPH_TIMEOUT_SECONDS=timeout,
        GRAPH_RETRY_BUDGET_SECONDS=budget,
        GRAPH_MAX_RETRIES="10",
    )
    with pytest.raises((UpstreamError, UpstreamThrottled)):
        graph.get_json("users")
    # The documented bound (docs/settings.md, GRAPH_RETRY_BUDGET_SECONDS: "budget + 2 x timeout"), written
    # out here rather than read from the code under test; the helper must state the same bound.
    documented = float(budget) + 2 * float(timeout)
    assert worst_case_call_seconds(float(timeout), float(budget)) == documented
    assert clock.now - start <= documented


def test_invalid_token_twice_is_an_upstream_error() -> None:
    transport = FakeTransport([graph_error(401, "InvalidAuthenticationToken")] * 2)
    with pytest.raises(UpstreamError) as caught:
        client(transport).get_json("users/1")
    assert caught.value.code == "upstream_unauthorized" and len(transport.requests) == 2


@pytest.mark.parametrize(
    ("status", "graph_code", "client_input", "expected", "code"),
    [
        (404, "Request_ResourceNotFound", False, NotFound, "not_found"),
        (400, "Request_BadRequest", True, BadRequest, "invalid_parameter"),
        (400, "Request_UnsupportedQuery", False, UpstreamError, "upstream_bad_request"),
        (403, "Authorization_RequestDenied", False, UpstreamError, "upstream_forbidden"),
        (401, "Unauthorized", False, UpstreamError, "upstream_unauthorized"),
        (500, "UnknownError", False, UpstreamError, "upstream_error"),
        (501, "NotImplemented", False, UpstreamError, "upstream_error"),
    ],
)
def test_graph_errors_are_typed(
    status: int, graph_code: str, client_input: bool, expected: type[Exception], code: str
) -> None:
    transport = FakeTransport([graph_error(status, graph_code, request_id="rid-1")])
    with pytest.raises(expected) as caught:
        client(transport).get_json("users/x", client_input=client_input)
    error = caught.value
    assert error.code == code  # type: ignore[attr-defined]
    assert (error.graph_code, error.graph_request_id) == (graph_code, "rid-1")  # type: ignore[attr-defined]


def test_error_without_json_body() -> None:
    transport = FakeTransport([respond(502, text="<html>bad gateway</html>", headers={"request-id": "r"})])
    with pytest.raises(UpstreamError) as caught:
        client(transport).get_json("users")
    assert caught.value.graph_request_id == "r" and caught.value.graph_code is None


def test_bodies_that_are_not_json_objects() -> None:
    for bad in (respond(200, text="not json"), respond(200, [1, 2])):
        with pytest.raises(UpstreamError):
            client(FakeTransport([bad])).get_json("users")
    with pytest.raises(UpstreamError, match="value"):
        client(FakeTransport([ok({"value": "nope"})])).get_page("users")


def test_paging_follows_next_links_and_resends_consistency_level() -> None:
    page2, page3 = f"{USERS}?$top=2&$skiptoken=abc", f"{USERS}?$top=2&$skiptoken=def"
    transport = FakeTransport(
        [
            ok({"value": [{"id": "1"}, {"id": "2"}], "@odata.nextLink": page2, "@odata.count": 5}),
            ok({"value": [{"id": "3"}, {"id": "4"}], "@odata.nextLink": page3}),
            ok({"value": [{"id": "5"}]}),
        ]
    )
    pages = list(client(transport).iter_pages("users", params={"$top": "2", "$count": "true"}, eventual=True))
    assert [[u["id"] for u in p.items] for p in pages] == [["1", "2"], ["3", "4"], ["5"]]
    assert pages[0].count == 5 and pages[-1].next_link is None
    assert [r.url for r in transport.requests] == [USERS, page2, page3]
    assert [r.params for r in transport.requests] == [{"$top": "2", "$count": "true"}, None, None]
    assert all(r.headers["consistencylevel"] == "eventual" for r in transport.requests)


def test_paging_respects_max_pages() -> None:
    transport = FakeTransport([ok({"value": [], "@odata.nextLink": f"{USERS}?$skiptoken=x"})] * 3)
    assert len(list(client(transport).iter_pages("users", max_pages=2))) == 2


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.example/v1.0/users?$skiptoken=x",
        "http://127.0.0.1:8444/v1.0/users",
        "https://127.0.0.1:9999/v1.0/users",
        "https://attacker@127.0.0.1:8444/v1.0/users",
        "https://127.0.0.1:8444/beta/users",
        "https://127.0.0.1:8444\\@evil.example/v1.0/users",
        "https://127.0.0.1:8444/v1.0/users#frag",
    ],
)
def test_links_outside_the_graph_origin_are_never_followed(link: str) -> None:
    transport = FakeTransport()
    with pytest.raises(UpstreamError, match="Refused"):
        client(transport).get_page(link)
    assert transport.requests == []


@pytest.mark.parametrize(
    "link",
    [
        "https://127.0.0.1:84\t44/v1.0/users",  # urlsplit drops the tab: the origin check alone would pass
        "https://127.0.0.1:8444/v1.0/us\ners",
        "https://127.0.0.1:8444/v1.0/users\r",
        "https://127.0.0.1:8444/v1.0/users?$skiptoken=a b",
        "https://127.0.0.1:8444/v1.0/users?$skiptoken=a\x7f",
        "https://127.0.0.1:8444/v1.0/users?$skiptoken=\u00e9",
        "https://127.0.0.1:8444/v1.0/users?$skiptoken=\x00",
        "\x0bhttps://127.0.0.1:8444/v1.0/users",
    ],
)
def test_links_with_control_space_or_non_ascii_characters_are_never_followed(link: str) -> None:
    transport = FakeTransport()
    graph = client(transport)
    assert not graph.is_graph_url(link)
    with pytest.raises(UpstreamError, match="Refused"):
        graph.get_page(link)
    assert transport.requests == []


def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-3") is None
    future = email.utils.formatdate(time.time() + 20, usegmt=True)
    assert 18 <= (parse_retry_after(future) or 0) <= 20
    past = email.utils.formatdate(time.time() - 20, usegmt=True)
    assert parse_retry_after(past) == 0.0
