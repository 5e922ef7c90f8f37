"""The HTML layer every page goes through: Jinja2 rendering, security headers, friendly error pages, and
the checks state-changing forms pass. The edge (:func:`shared.edge.page`) runs page handlers with it.

* Templates come from ``shared/web/templates``, autoescaped for every template (``StrictUndefined``: a
  missing variable is a bug, not an empty string); the request id shows in the page footer.
* A strict Content-Security-Policy (no inline script or style at all, ``frame-ancestors 'none'``, forms may
  post only to this app, redirects after a form only to the tenant's sign-in host), plus
  ``X-Frame-Options: DENY``, ``nosniff``, ``Referrer-Policy: same-origin`` and ``Cache-Control: no-store``.
* :func:`error_page` is the friendly HTML page of a :class:`GraphFunctionsError` (its status and stable
  code, never a trace); :func:`internal_error_page` the 500 ``internal_error`` one.

Forms that change state are checked by :func:`require_same_origin` (the browser's ``Origin`` header, or
``Sec-Fetch-Site``, must name this app) and carry a per-session CSRF token (:func:`require_csrf_token`).
Jinja2 is imported on first use.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from shared.core.errors import BadRequest, Forbidden, GraphFunctionsError
from shared.core.records import Record
from shared.identity.principal import Principal
from shared.web.templating import environment

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)

#: A page without variables of its own (read-only: one value shared by every such page).
EMPTY: Mapping[str, Any] = MappingProxyType({})

#: The pages' static files (the one stylesheet).
STATIC_DIR = Path(__file__).with_name("static")
#: Largest form body a page accepts (the app's forms post a few hidden fields).
MAX_FORM_BYTES = 16 * 1024

#: Headers of every HTML response; the CSP gets ``form-action`` for the sign-in host added per settings.
BASE_HTML_HEADERS: Mapping[str, str] = {
    "content-type": "text/html; charset=utf-8",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}


def content_security_policy(sign_in_origin: str) -> str:
    """The pages' CSP. ``form-action`` lists the tenant's sign-in origin because Chromium applies it to the
    redirect that follows a form post too (sign-out and admin consent redirect there)."""
    return (
        "default-src 'none'; style-src 'self'; img-src 'self'; "
        f"form-action 'self' {sign_in_origin}; frame-ancestors 'none'; base-uri 'none'"
    )


class PageRequest:
    """What a handler sees: the Functions request, the request id, cookies and the form body."""

    def __init__(self, *, http: func.HttpRequest, request_id: str) -> None:
        self.http = http
        self.request_id = request_id

    @property
    def method(self) -> str:
        return str(self.http.method).upper()

    @property
    def params(self) -> Mapping[str, str]:
        return cast(Mapping[str, str], self.http.params)

    @property
    def route_params(self) -> Mapping[str, str]:
        return cast(Mapping[str, str], self.http.route_params)

    @property
    def headers(self) -> Mapping[str, str]:
        return cast(Mapping[str, str], self.http.headers)

    @property
    def path(self) -> str:
        return urlsplit(self.http.url).path or "/"

    @property
    def path_and_query(self) -> str:
        """The page's own path and query, the ``next`` that brings the person back here after sign-in."""
        parts = urlsplit(self.http.url)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    @functools.cached_property
    def form(self) -> Mapping[str, str]:
        """The ``application/x-www-form-urlencoded`` body (first value of each field; empty for GET).

        Raises:
            BadRequest: a body larger than :data:`MAX_FORM_BYTES` or not URL-encoded text.
        """
        body = self.http.get_body() or b""
        if not body:
            return {}
        if len(body) > MAX_FORM_BYTES:
            raise BadRequest("The form is too large", code="invalid_form")
        try:
            pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadRequest("The form could not be read", code="invalid_form") from exc
        out: dict[str, str] = {}
        for key, value in pairs:
            out.setdefault(key, value)
        return out


class Page(Record):
    """A rendered page: a template under ``shared/web/templates`` and its variables."""

    template: str
    context: Mapping[str, Any] = EMPTY
    status: int = 200
    #: ``Set-Cookie`` header values (several allowed; the host keeps each).
    cookies: Sequence[str] = ()


class Redirect(Record):
    """A redirect (303 by default: the browser follows with a GET, whatever the request's method)."""

    location: str
    status: int = 303
    cookies: Sequence[str] = ()


class Chrome(Record):
    """What every page shows around its content, resolved by the edge: the signed-in person (None for
    nobody, or a bearer caller), their forms' CSRF token, and the tenant's sign-in origin (the CSP's
    ``form-action``)."""

    person: Principal | None = None
    csrf_token: str = ""
    sign_in_origin: str = ""


def render(
    template: str,
    context: Mapping[str, Any],
    *,
    request: PageRequest,
    chrome: Chrome,
    status: int = 200,
    cookies: Sequence[str] = (),
) -> func.HttpResponse:
    """Render ``template`` with the variables every page has (``person``, ``csrf_token``, ``here``,
    ``request_id``, ``title``, ``active``, ``extra_nav``) under ``context``'s, with the HTML headers."""
    person = chrome.person if chrome.person is not None and chrome.person.is_person else None
    base: dict[str, Any] = {
        "person": person,
        "csrf_token": chrome.csrf_token if person is not None else "",
        # A callback's own URL carries a code and state: never echo it into a link.
        "here": "/" if request.path in _RETRY_FROM else request.path_and_query,
        "request_id": request.request_id,
        "title": "Graph Functions",
        "active": "",
        "extra_nav": (),
    }
    html = environment().get_template(template).render({**base, **context})
    return html_response(
        html,
        status=status,
        request_id=request.request_id,
        sign_in_origin=chrome.sign_in_origin,
        cookies=cookies,
    )


def html_response(
    html: str, *, status: int, request_id: str, sign_in_origin: str, cookies: Sequence[str] = ()
) -> func.HttpResponse:
    """An HTML response with the pages' headers (the CSP names ``sign_in_origin`` in ``form-action``)."""
    headers = {
        **BASE_HTML_HEADERS,
        "content-security-policy": content_security_policy(sign_in_origin),
        "x-request-id": request_id,
    }
    response = func.HttpResponse(html.encode("utf-8"), status_code=status, headers=headers)
    _add_cookies(response, cookies)
    return response


def redirect_response(redirect: Redirect, *, request_id: str) -> func.HttpResponse:
    headers = {"location": redirect.location, "cache-control": "no-store", "x-request-id": request_id}
    response = func.HttpResponse(b"", status_code=redirect.status, headers=headers)
    _add_cookies(response, redirect.cookies)
    return response


def _add_cookies(response: func.HttpResponse, cookies: Sequence[str]) -> None:
    for cookie in cookies:
        response.headers.add("Set-Cookie", cookie)  # werkzeug Headers: one header per cookie


#: Headline and "try again" wording of the error page, by status.
_HEADINGS: Mapping[int, str] = {
    400: "That request could not be handled",
    401: "Please sign in again",
    403: "You do not have access to this page",
    404: "Not found",
    409: "That would replace something that must stay",
    502: "A Microsoft service answered unexpectedly",
    503: "A service is temporarily unavailable",
}


#: Pages whose "try again" must start over elsewhere (a callback cannot be repeated).
_RETRY_FROM: Mapping[str, str] = {
    "/auth/callback": "/auth/login?next=/",
    "/auth/admin-consent/callback": "/auth/admin-consent",
    "/onboard/callback": "/onboard",
    "/auth/logout": "/auth/logout",
}


def error_page(
    error: GraphFunctionsError,
    *,
    request: PageRequest,
    chrome: Chrome,
    retry_href: str | None = None,
    retry_label: str = "Try again",
) -> func.HttpResponse:
    """The friendly HTML error page for ``error``: its status, heading, public message, stable code and a
    "try again" link (``retry_href``; default the page itself for GET, else home), never a trace."""
    href = (
        retry_href
        or _RETRY_FROM.get(request.path)
        or (request.path_and_query if request.method == "GET" else "/")
    )
    context = {
        "title": _HEADINGS.get(error.status, "Something went wrong"),
        "heading": _HEADINGS.get(error.status, "Something went wrong"),
        "message": error.public_message,
        "code": error.code,
        "retry_href": href,
        "retry_label": retry_label,
    }
    response = render("error.html", context, request=request, chrome=chrome, status=error.status)
    for name, value in error.response_headers().items():
        if name.lower() == "retry-after":
            response.headers["Retry-After"] = value
    return response


def internal_error_page(*, request: PageRequest, sign_in_origin: str) -> func.HttpResponse:
    """The 500 ``internal_error`` page (no trace; a plain page if the template itself fails)."""
    error = GraphFunctionsError("An unexpected error occurred. Quote the request id when reporting it.")
    try:
        return error_page(
            error, request=request, chrome=Chrome(sign_in_origin=sign_in_origin), retry_href="/"
        )
    except Exception:  # the template itself failed: a plain page, still no trace
        logger.exception("The error page could not be rendered (request %s)", request.request_id)
        html = "<!doctype html><title>Error</title><main><h1>Something went wrong</h1></main>"
        return html_response(html, status=500, request_id=request.request_id, sign_in_origin=sign_in_origin)


# --- Forms that change state ---------------------------------------------------------------------


def require_same_origin(request: PageRequest, app_origin: str) -> None:
    """Refuse a cross-site form post (login CSRF, logout CSRF): the browser's ``Origin`` must be
    ``app_origin``; without ``Origin``, ``Sec-Fetch-Site`` must be ``same-origin``; with neither (no
    current browser omits both on a POST) the post is refused.

    Raises:
        Forbidden: ``cross_origin_request``.
    """
    origin = request.headers.get("origin")
    if origin is not None:
        if origin.rstrip("/").lower() == app_origin.rstrip("/").lower():
            return
    elif request.headers.get("sec-fetch-site") == "same-origin":
        return
    raise Forbidden(
        "This form can only be sent from this app's own pages. Go back, reload the page and try again.",
        code="cross_origin_request",
    )


def require_csrf_token(request: PageRequest, verify: Callable[[str], bool] | None) -> None:
    """The form's ``csrf`` field must pass ``verify`` (the session's check: an HMAC verified in constant
    time; tokens signed with an earlier session key still verify after a rotation). None: no session.

    Raises:
        Forbidden: ``csrf_token_invalid``.
    """
    sent = request.form.get("csrf", "")
    if verify is None or not verify(sent):
        raise Forbidden(
            "This form has expired. Go back, reload the page and try again.", code="csrf_token_invalid"
        )
