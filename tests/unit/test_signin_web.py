"""Unit checks of the browser side of sign-in: ``next`` validation, cookies, claims challenges."""

from __future__ import annotations

import base64
from http.cookies import SimpleCookie

import pytest

from shared.graph.errors import claims_challenge
from shared.web.cookies import clear_cookie, cookie_name, safe_next, set_cookie

from .fakes import FakeResponse, respond


@pytest.mark.parametrize(
    "value",
    [
        "/",
        "/users",
        "/users?search=a%20b&cursor=xyz",
        "/me#top",
        "/sharepoint?x=%2Fok",
    ],
)
def test_same_origin_paths_are_kept(value: str) -> None:
    assert safe_next(value) == value


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "users",
        "//evil.example",
        "//evil.example/x",
        "/\\evil.example",
        "\\\\evil.example",
        "https:evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "%2F%2Fevil.example",
        "/%2F%2Fevil.example",
        "/%2f%2fevil.example",
        "/%5Cevil.example",
        "/%5cevil.example",
        "/%252F%252Fevil.example",
        "/%25252F%25252Fevil.example",
        "/\tevil",
        "/\nevil",
        "/ evil",
        "/" + "a" * 3000,
        "/%00",
    ],
)
def test_everything_else_goes_home(value: str | None) -> None:
    assert safe_next(value) == "/"


def test_cookies_on_https_use_the_host_prefix_and_secure() -> None:
    header = set_cookie("gf_session", "abc", origin="https://app.contoso.com", max_age=3600)
    assert cookie_name("gf_session", "https://app.contoso.com") == "__Host-gf_session"
    parsed = SimpleCookie()
    parsed.load(header)
    morsel = parsed["__Host-gf_session"]
    assert morsel.value == "abc"
    assert morsel["path"] == "/" and morsel["secure"] and morsel["httponly"] and morsel["samesite"] == "Lax"
    assert morsel["max-age"] == "3600" and not morsel["domain"]


def test_cookies_on_http_localhost_have_no_prefix_and_no_secure() -> None:
    header = set_cookie("gf_session", "abc", origin="http://localhost:7071", max_age=None)
    assert header.startswith("gf_session=abc")
    assert "Secure" not in header and "HttpOnly" in header and "SameSite=Lax" in header
    assert "Max-Age=0" in clear_cookie("gf_flow", origin="http://localhost:7071")


def _response(header: str) -> FakeResponse:
    return respond(401, {}, headers={"WWW-Authenticate": header})


def test_cae_claims_challenge_is_decoded() -> None:
    claims = '{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}'
    encoded = base64.b64encode(claims.encode()).decode().rstrip("=")
    header = (
        'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
        f'error="insufficient_claims", claims="{encoded}"'
    )
    assert claims_challenge(_response(header)) == claims


@pytest.mark.parametrize(
    "header",
    ['Bearer realm=""', 'Bearer error="invalid_token"', 'Bearer error="insufficient_claims"', ""],
)
def test_other_challenges_are_not_claims_challenges(header: str) -> None:
    assert claims_challenge(_response(header)) is None
