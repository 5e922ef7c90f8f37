"""The page framework: security headers, autoescaping, friendly error pages, the form checks."""

from __future__ import annotations

import azure.functions as func
import pytest

from shared.core.errors import BadRequest, Forbidden, UpstreamThrottled
from shared.edge import Call, page
from shared.edge.endpoints import PageHandler
from shared.identity.principal import Principal
from shared.web.pages import Chrome, Page, PageRequest, Redirect, render, require_same_origin


def request(
    path: str = "/me", method: str = "GET", headers: dict[str, str] | None = None, body: bytes = b""
) -> func.HttpRequest:
    return func.HttpRequest(
        method, f"http://localhost:7071{path}", headers=headers or {}, params={}, body=body
    )


def run(handler: PageHandler, req: func.HttpRequest | None = None) -> func.HttpResponse:
    return page(None)(handler)(req or request())


def test_a_page_has_the_security_headers_and_escapes_its_variables() -> None:
    def hostile(_: Call) -> Page:
        return Page(
            "error.html",
            {
                "heading": "<script>alert(1)</script>",
                "message": '"><img src=x onerror=1>',
                "code": "x",
                "retry_href": "/",
                "retry_label": "Go",
            },
        )

    response = run(hostile)
    html = response.get_body().decode()
    assert response.status_code == 200
    assert "<script>alert" not in html and "&lt;script&gt;" in html and "<img src=x" not in html
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "style-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    assert html.count("<main") == 1


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (BadRequest("bad <b>input</b>", code="invalid_form"), 400),
        (Forbidden("nope", code="cross_origin_request"), 403),
        (UpstreamThrottled("slow down", retry_after=7), 503),
    ],
)
def test_errors_are_friendly_pages_with_their_code(error: Exception, status: int) -> None:
    def failing(_: Call) -> Page:
        raise error

    response = run(failing)
    html = response.get_body().decode()
    assert response.status_code == status
    assert f"<code>{error.code}</code>" in html  # type: ignore[attr-defined]
    assert "<b>input</b>" not in html
    assert 'href="/me"' in html  # try again: the page itself
    if status == 503:
        assert response.headers["Retry-After"] == "7"


def test_unexpected_exceptions_are_a_500_page_without_a_trace() -> None:
    def broken(_: Call) -> Page:
        raise RuntimeError("secret detail")

    response = run(broken)
    html = response.get_body().decode()
    assert response.status_code == 500
    assert "<code>internal_error</code>" in html and "secret detail" not in html and "Traceback" not in html


def test_redirects_carry_every_cookie() -> None:
    def go(_: Call) -> Redirect:
        return Redirect("/next", cookies=("a=1; Path=/", "b=2; Path=/"))

    response = run(go)
    assert response.status_code == 303 and response.headers["location"] == "/next"
    assert response.headers.get_all("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]


def test_callback_error_pages_never_link_to_their_own_url() -> None:
    def failing(_: Call) -> Page:
        raise BadRequest("no", code="sign_in_failed")

    response = run(failing, request("/auth/callback?code=SECRETCODE&state=s"))
    html = response.get_body().decode()
    assert "SECRETCODE" not in html and 'href="/auth/login?next=/"' in html


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({"origin": "http://localhost:7071"}, True),
        ({"origin": "http://localhost:7071/"}, True),
        ({"origin": "http://evil.example"}, False),
        ({"origin": "null"}, False),
        ({"sec-fetch-site": "same-origin"}, True),
        ({"sec-fetch-site": "cross-site"}, False),
        ({}, False),
    ],
)
def test_same_origin_check(headers: dict[str, str], allowed: bool) -> None:
    page_request = PageRequest(http=request("/auth/logout", "POST", headers), request_id="r")
    if allowed:
        require_same_origin(page_request, "http://localhost:7071")
    else:
        with pytest.raises(Forbidden) as caught:
            require_same_origin(page_request, "http://localhost:7071")
        assert caught.value.code == "cross_origin_request"


def test_oversized_or_malformed_forms_are_400() -> None:
    big = PageRequest(http=request("/auth/logout", "POST", body=b"a=" + b"x" * 20000), request_id="r")
    with pytest.raises(BadRequest):
        _ = big.form
    bad = PageRequest(http=request("/auth/logout", "POST", body=b"\xff\xfe=1"), request_id="r")
    with pytest.raises(BadRequest):
        _ = bad.form
    ok = PageRequest(http=request("/auth/logout", "POST", body=b"csrf=abc&csrf=def"), request_id="r")
    assert ok.form == {"csrf": "abc"}


@pytest.mark.parametrize(
    ("roles", "shown"),
    [
        (frozenset(), set()),
        (frozenset({"Mail.Read.All"}), {"/mail"}),
        (frozenset({"Reports.Read"}), {"/reports"}),
        (frozenset({"Reports.Run"}), {"/auth/admin-consent"}),
        (
            frozenset({"Mail.Read.All", "Audit.Read", "Reports.Read", "Reports.Run"}),
            {"/mail", "/audit", "/reports", "/auth/admin-consent"},
        ),
    ],
)
def test_the_navigation_shows_a_role_gated_link_only_to_its_role(
    roles: frozenset[str], shown: set[str]
) -> None:
    person = Principal(kind="person", app_id="app", object_id="oid", tenant_id="tid", roles=roles)
    response = render(
        "home.html", {}, request=PageRequest(http=request("/"), request_id="r"), chrome=Chrome(person=person)
    )
    nav = response.get_body().decode().split('<nav aria-label="Main">', 1)[1].split("</nav>", 1)[0]
    gated = {"/mail", "/audit", "/reports", "/auth/admin-consent"}
    assert {href for href in gated if f'href="{href}"' in nav} == shown
    assert 'href="/me"' in nav  # every person's links stay
