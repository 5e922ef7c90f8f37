"""The browser side of sign-in: the app's public origin and redirect URI, cookies, ``next`` validation, and
the steps of the flow (start, callback, sign-out) that ``blueprints/auth.py`` and the pages call.

* **Origin and redirect URI.** ``PUBLIC_BASE_URL`` when set (behind a reverse proxy or a custom domain);
  otherwise the scheme and host of the request URL the Functions host received (in Azure, the platform's
  own host name, ``WEBSITE_HOSTNAME``, over https). ``X-Forwarded-*`` headers are never trusted: anyone can
  send them, and a forged host would make the app send codes elsewhere. The redirect URI is
  ``{origin}/auth/callback``; it must be registered on the app registration.
* **Cookies.** The session cookie holds only an opaque 256-bit id (43 characters, whatever the token
  cache's size): ``HttpOnly; SameSite=Lax; Path=/``, plus ``Secure`` and the ``__Host-`` prefix on https (on
  http, i.e. localhost, browsers refuse both). The flow cookie binds a started sign-in to this browser (10
  minutes, same attributes). ``SameSite=Lax`` lets them ride the top-level GET redirect back from Entra
  (``response_mode=query``) and keeps them off cross-site POSTs.
* **next** accepts only same-origin relative paths (:func:`safe_next`): no scheme, no ``//host``, no
  backslash, no control characters, also after percent-decoding; anything else becomes ``/``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlencode, urlsplit

import azure.functions as func

from shared.core.errors import GraphFunctionsError, SignInRequired

if TYPE_CHECKING:
    from shared.web.pages import PageRequest, Redirect

logger = logging.getLogger(__name__)

CALLBACK_PATH = "/auth/callback"
CONSENT_CALLBACK_PATH = "/auth/admin-consent/callback"
SESSION_COOKIE = "gf_session"
FLOW_COOKIE = "gf_flow"
#: How long the flow cookie lives (the flow store keeps a flow 10 minutes).
FLOW_COOKIE_SECONDS = 600
_MAX_NEXT = 2048
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def app_origin(request: func.HttpRequest) -> str:
    """``PUBLIC_BASE_URL`` or the request URL's ``scheme://host[:port]`` (never ``X-Forwarded-*``)."""
    from shared.app import services as runtime

    configured = runtime.current().settings().public_base_url
    if configured:
        return configured.rstrip("/")
    parts = urlsplit(request.url)
    return f"{parts.scheme}://{parts.netloc}"


def is_https(origin: str) -> bool:
    return origin.lower().startswith("https://")


def redirect_uri(request: func.HttpRequest, path: str = CALLBACK_PATH) -> str:
    return app_origin(request) + path


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


def cookie_value(request: func.HttpRequest, base: str) -> str | None:
    """The value of cookie ``base`` under the name this origin uses (``__Host-`` on https only)."""
    value = request_cookies(request).get(cookie_name(base, app_origin(request)))
    return value or None


def session_id_of(request: func.HttpRequest) -> str | None:
    return cookie_value(request, SESSION_COOKIE)


def safe_next(value: str | None) -> str:
    """``value`` if it is a same-origin relative path (``/users?search=a``), else ``/``.

    Refused: anything not starting with one ``/``; whitespace, control characters or a backslash anywhere
    in the raw value; and, after each of up to three percent-decodings, a path starting with ``//`` or
    holding a backslash or a control character, or a scheme or host (browsers treat ``/\\host`` and
    ``%2F%2Fhost`` like ``//host``).
    """
    if not value or len(value) > _MAX_NEXT or not value.startswith("/") or _UNSAFE.search(value):
        return "/"
    candidate = value
    for _ in range(3):
        path = re.split(r"[?#]", candidate, maxsplit=1)[0]
        if not path.startswith("/") or path.startswith("//") or "\\" in path or _CONTROL.search(path):
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


# --- Steps of the flow ----------------------------------------------------------------------------


def sign_in_redirect(
    request: PageRequest,
    error: SignInRequired | None = None,
    *,
    next_path: str | None = None,
    prompt: str | None = None,
) -> Redirect:
    """Start a sign-in that returns to ``next_path`` (default: the page asked for): MSAL's flow is stored
    in the flow table, the browser gets the binding cookie and goes to Entra's authorize endpoint.

    ``error`` (a :class:`SignInRequired` from silent acquisition or a claims challenge) brings its claims
    and the scopes that needed the person.
    """
    from shared.app import services as runtime
    from shared.web.pages import Redirect

    services = runtime.current()
    origin = app_origin(request.http)
    target = safe_next(next_path if next_path is not None else request.path_and_query)
    # One resource per flow: Entra redeems a code for one resource only (AADSTS28000), so a sign-in for a
    # scope another resource needs (SharePoint, incremental consent) asks for that scope alone; the Graph
    # tokens come from the same refresh token afterwards.
    scopes = (
        list(error.scopes) if error is not None and error.scopes else list(services.sign_in().graph_scopes)
    )
    flow = services.sign_in().begin(
        redirect_uri=origin + CALLBACK_PATH,
        scopes=scopes,
        claims=error.claims if error is not None else None,
        prompt=prompt,
    )
    binding = services.auth_flows().put(flow, extra={"kind": "sign-in", "next": target})
    cookie = set_cookie(FLOW_COOKIE, binding, origin=origin, max_age=FLOW_COOKIE_SECONDS)
    return Redirect(str(flow["auth_uri"]), status=302, cookies=(cookie,))


def complete_sign_in(request: PageRequest) -> Redirect:
    """The callback: take the flow (one-time, bound to this browser), redeem the code, replace any previous
    session of this browser with a new one (a new id at every sign-in), and go to the flow's ``next``.

    Raises:
        AuthFlowUnknown, AuthFlowReplayed, AuthFlowMismatch: the state is unknown or expired, was already
            used, or belongs to another browser (400, HTML error page).
        SignInFailed: Entra's error, or the code redemption failed (400).
    """
    from shared.app import services as runtime
    from shared.signin.sessions import SessionClaims
    from shared.web.pages import Redirect

    services = runtime.current()
    origin = app_origin(request.http)
    response = _callback_parameters(request)
    taken = services.auth_flows().take(response.get("state"), cookie_value(request.http, FLOW_COOKIE))
    extra: Mapping[str, Any] = taken.extra or {}
    if extra.get("kind") != "sign-in":
        from shared.core.errors import AuthFlowUnknown

        raise AuthFlowUnknown("This sign-in response does not belong to a sign-in started here")
    signed_in = services.sign_in().finish(taken.flow, response)
    claims = signed_in.claims
    roles = claims.get("roles") or []
    session = services.sessions().create(
        SessionClaims(
            oid=str(claims["oid"]),
            tid=str(claims["tid"]),
            name=_text(claims.get("name")),
            preferred_username=_text(claims.get("preferred_username")),
            roles=tuple(str(role) for role in roles) if isinstance(roles, list) else (),
        ),
        signed_in.token_cache,
    )
    previous = session_id_of(request.http)
    if previous:
        try:
            services.sessions().delete(previous)
        except GraphFunctionsError:  # the old row expires on its own; the new sign-in must not fail
            logger.warning("The previous session of a browser could not be deleted at sign-in")
    cookies = (
        set_cookie(
            SESSION_COOKIE,
            session.id,
            origin=origin,
            max_age=services.settings().session_max_age_hours * 3600,
        ),
        clear_cookie(FLOW_COOKIE, origin=origin),
    )
    return Redirect(safe_next(str(extra.get("next") or "/")), status=303, cookies=cookies)


def sign_out(request: PageRequest) -> Redirect:
    """Delete the session, clear the cookie and end the Entra session (``end_session_endpoint`` with the
    registered post-logout URI ``{origin}/``)."""
    from shared.app import services as runtime
    from shared.web.pages import Redirect

    services = runtime.current()
    origin = app_origin(request.http)
    services.sessions().delete(session_id_of(request.http))
    settings = services.settings()
    query = urlencode({"post_logout_redirect_uri": origin + "/", "client_id": settings.client_id})
    location = f"{settings.authority}/oauth2/v2.0/logout?{query}"
    return Redirect(location, status=303, cookies=(clear_cookie(SESSION_COOKIE, origin=origin),))


def _callback_parameters(request: PageRequest) -> dict[str, str]:
    """The authorization response: the query (``response_mode=query``) or the form (``form_post``)."""
    source: Mapping[str, str] = request.form if request.method == "POST" else request.params
    return {key: str(value) for key, value in source.items()}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
