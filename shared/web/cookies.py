"""The browser's side of the app: its public origin, cookies and ``next`` paths.

* **Origin.** ``PUBLIC_BASE_URL`` when set (behind a reverse proxy or a custom domain); otherwise the scheme
  and host of the request URL the Functions host received (in Azure, the platform's own host name,
  ``WEBSITE_HOSTNAME``, over https). ``X-Forwarded-*`` headers are never trusted: anyone can send them, and a
  forged host would make the app send codes elsewhere.
* **Cookies.** The session cookie holds only an opaque 256-bit id (43 characters, whatever the token
  cache's size): ``HttpOnly; SameSite=Lax; Path=/``, plus ``Secure`` and the ``__Host-`` prefix on https (on
  http, i.e. localhost, browsers refuse both). The flow cookie binds a started sign-in to this browser (10
  minutes, same attributes). ``SameSite=Lax`` lets them ride the top-level GET redirect back from Entra
  (``response_mode=query``) and keeps them off cross-site POSTs.
* **Cross-site navigations.** ``SameSite=Lax`` also sends the session cookie with a top-level GET that another
  site starts (a link, a redirect): :func:`from_another_site` tells such a request apart by the browser's
  ``Sec-Fetch-Site`` (Fetch Metadata: ``same-origin``, or ``none`` for a typed URL or a bookmark, are the
  app's own; ``same-site`` and ``cross-site`` are not), so the endpoints that read mail can refuse it.
* **next** accepts only same-origin relative paths (:func:`safe_next`): no scheme, no ``//host``, no
  backslash, no control characters, also after percent-decoding; anything else becomes ``/``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from http.cookies import SimpleCookie
from urllib.parse import unquote, urlsplit

import azure.functions as func

CALLBACK_PATH = "/auth/callback"
CONSENT_CALLBACK_PATH = "/auth/admin-consent/callback"
SESSION_COOKIE = "gf_session"
FLOW_COOKIE = "gf_flow"
#: How long the flow cookie lives (the sealed flow inside expires after as long: shared.signin.flows).
FLOW_COOKIE_SECONDS = 600
_MAX_NEXT = 2048
_UNSAFE = r"[\x00-\x20\x7f\\]"
_CONTROL = r"[\x00-\x1f\x7f]"


def app_origin(request: func.HttpRequest, public_base_url: str | None) -> str:
    """``public_base_url`` (``PUBLIC_BASE_URL``) or the request URL's ``scheme://host[:port]`` (never
    ``X-Forwarded-*``)."""
    configured = public_base_url
    if configured:
        return configured.rstrip("/")
    parts = urlsplit(request.url)
    return f"{parts.scheme}://{parts.netloc}"


def is_https(origin: str) -> bool:
    return origin.lower().startswith("https://")


def cookie_name(base: str, origin: str) -> str:
    return f"__Host-{base}" if is_https(origin) else base


def set_cookie(base: str, value: str, *, origin: str, max_age: int | None) -> str:
    """A ``Set-Cookie`` value (see module docstring); ``max_age=0`` clears the cookie."""
    morsel: SimpleCookie = SimpleCookie()
    name = cookie_name(base, origin)
    morsel[name] = value
    attributes = morsel[name]
    attributes["path"] = "/"
    attributes["httponly"] = True
    attributes["samesite"] = "Lax"
    if is_https(origin):
        attributes["secure"] = True
    if max_age is not None:
        attributes["max-age"] = max_age
    return attributes.OutputString()


def clear_cookie(base: str, *, origin: str) -> str:
    return set_cookie(base, "", origin=origin, max_age=0)


def request_cookies(request: func.HttpRequest) -> Mapping[str, str]:
    """The request's cookies (a malformed header counts as none)."""
    header = request.headers.get("cookie") or ""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # http.cookies raises CookieError for hostile headers
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


def cookie_value(request: func.HttpRequest, base: str, origin: str) -> str | None:
    """The value of cookie ``base`` under the name ``origin`` uses (``__Host-`` on https only)."""
    value = request_cookies(request).get(cookie_name(base, origin))
    return value or None


def session_id_of(request: func.HttpRequest, origin: str) -> str | None:
    """The session id in the request's session cookie, if any."""
    return cookie_value(request, SESSION_COOKIE, origin)


def from_another_site(headers: Mapping[str, str]) -> bool:
    """Whether the browser says another site (or a sibling subdomain) started this request: a
    ``Sec-Fetch-Site`` other than ``same-origin`` or ``none``. Without the header (an old browser, a
    script) it cannot tell, and says no."""
    site = headers.get("sec-fetch-site")
    return site is not None and site.strip().lower() not in ("same-origin", "none")


def safe_next(value: str | None) -> str:
    """``value`` if it is a same-origin relative path (``/users?search=a``), else ``/``.

    Refused: anything not starting with one ``/``; whitespace, control characters or a backslash anywhere
    in the raw value; and, after each of up to three percent-decodings, a path starting with ``//`` or
    holding a backslash or a control character, or a scheme or host (browsers treat ``/\\host`` and
    ``%2F%2Fhost`` like ``//host``).
    """
    if not value or len(value) > _MAX_NEXT or not value.startswith("/") or re.search(_UNSAFE, value):
        return "/"
    candidate = value
    for _ in range(3):
        path = re.split(r"[?#]", candidate, maxsplit=1)[0]
        if not path.startswith("/") or path.startswith("//") or "\\" in path or re.search(_CONTROL, path):
            return "/"
        try:
            parts = urlsplit(candidate)
        except ValueError:
            return "/"
        if parts.scheme or parts.netloc:
            return "/"
        decoded = unquote(candidate)
        if decoded == candidate:
            return value
        candidate = decoded
    return "/"
