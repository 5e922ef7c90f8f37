"""Conversion between Starlette and azure.functions HTTP objects."""

from __future__ import annotations

import azure.functions as func
import pytest
from starlette.requests import Request

from devhost.convert import UnsupportedResultError, to_func_request, to_response


def starlette_request(query: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None) -> Request:
    return Request(
        {
            "type": "http",
            "method": "POST",
            "scheme": "http",
            "server": ("127.0.0.1", 7071),
            "path": "/api/echo",
            "raw_path": b"/api/echo",
            "query_string": query,
            "headers": headers or [],
        }
    )


def test_request_fields() -> None:
    request = starlette_request(
        b"a=1&a=2&empty=&name=J%C3%BCrgen",
        [
            (b"host", b"127.0.0.1:7071"),
            (b"x-multi", b"1"),
            (b"x-multi", b"2"),
            (b"Content-Type", b"text/plain"),
        ],
    )
    converted = to_func_request(request, b"hello", {"id": "42"})
    assert converted.method == "POST"
    assert converted.url == "http://127.0.0.1:7071/api/echo?a=1&a=2&empty=&name=J%C3%BCrgen"
    # Repeated keys are joined with ',' as the host's StringValues.ToString() does;
    # an empty value is not passed to the Python worker at all.
    assert dict(converted.params) == {"a": "1,2", "name": "Jürgen"}
    assert converted.headers["X-Multi"] == "1,2"
    assert converted.headers["content-type"] == "text/plain"
    assert dict(converted.route_params) == {"id": "42"}
    assert converted.get_body() == b"hello"


@pytest.mark.parametrize(
    ("query", "params"),
    [
        (b"top=", {}),
        (b"top", {}),
        (b"top=&select=id", {"select": "id"}),
        (b"top=&top=", {}),
        (b"top=&top=5", {"top": "5"}),  # StringValues.ToString() skips empty values
        (b"top=1&TOP=2", {"top": "1,2"}),  # one key, spelled as first seen
        (b"Select=id&select=mail&SELECT=", {"Select": "id,mail"}),
        (b"%C3%9F=1&SS=2", {"ß": "1", "SS": "2"}),  # ordinal, not linguistic, case folding
    ],
)
def test_query_matches_the_hosts_request_query(query: bytes, params: dict[str, str]) -> None:
    assert dict(to_func_request(starlette_request(query), b"", {}).params) == params


def test_repeated_headers_skip_empty_values() -> None:
    request = starlette_request(headers=[(b"x-multi", b""), (b"x-multi", b"2"), (b"x-empty", b"")])
    converted = to_func_request(request, b"", {})
    assert converted.headers["x-multi"] == "2"
    assert converted.headers["x-empty"] == ""


def headers_of(result: object) -> list[tuple[str, str]]:
    return [(k.decode(), v.decode()) for k, v in to_response(result).raw_headers]


def test_every_set_cookie_survives() -> None:
    response = func.HttpResponse("ok", headers={"X-One": "1"})
    response.headers.add("Set-Cookie", "a=1; Path=/")
    response.headers.add("Set-Cookie", "b=2; Path=/; HttpOnly")
    headers = headers_of(response)
    assert [v for k, v in headers if k.lower() == "set-cookie"] == ["a=1; Path=/", "b=2; Path=/; HttpOnly"]
    assert ("x-one", "1") in headers


def test_other_repeated_headers_keep_the_last_value_like_the_worker() -> None:
    response = func.HttpResponse("ok")
    response.headers.add("X-Dup", "first")
    response.headers.add("X-Dup", "second")
    assert [v for k, v in headers_of(response) if k.lower() == "x-dup"] == ["second"]


def test_content_type_from_mimetype_and_charset() -> None:
    def content_type(response: func.HttpResponse) -> str:
        return next(v for k, v in headers_of(response) if k.lower() == "content-type")

    assert content_type(func.HttpResponse("x")) == "text/plain; charset=utf-8"
    assert content_type(func.HttpResponse("x", mimetype="text/html", charset="latin-1")) == (
        "text/html; charset=latin-1"
    )
    assert content_type(func.HttpResponse("{}", mimetype="application/json")) == "application/json"
    explicit = func.HttpResponse("x", headers={"Content-Type": "application/problem+json"})
    assert content_type(explicit) == "application/problem+json"


def test_status_and_body() -> None:
    response = to_response(func.HttpResponse(b"\x00\x01", status_code=201))
    assert (response.status_code, response.body) == (201, b"\x00\x01")
    assert dict(response.headers)["content-length"] == "2"


def test_plain_results() -> None:
    text = to_response("hello")
    assert (text.status_code, text.body, text.headers["content-type"]) == (
        200,
        b"hello",
        "text/plain; charset=utf-8",
    )
    assert to_response(None).status_code == 204


@pytest.mark.parametrize(
    "result",
    [
        {"not": "a response"},
        func.HttpResponse("x", status_code=42),
        func.HttpResponse("x", headers={"X-Bad": "a\x00b"}),
    ],
)
def test_unsupported_results(result: object) -> None:
    with pytest.raises(UnsupportedResultError):
        to_response(result)
