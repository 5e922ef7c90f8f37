"""The outbound HTTP seam: a tiny :class:`Transport` protocol and its ``requests`` implementation.

Graph calls, OpenID metadata and JWKS fetches go through :class:`Transport`, so unit tests pass a fake that
records requests and returns canned responses (``tests/unit/fakes.py``) instead of patching libraries.

:class:`RequestsTransport` owns ONE pooled ``requests.Session`` per process, shared with MSAL through
:meth:`RequestsTransport.msal_http_client`. TLS trust comes from the environment: requests applies
``REQUESTS_CA_BUNDLE`` per request and it overrides any ``Session.verify``, so the session's ``verify`` is
deliberately left alone (see ``sdk-facts`` Q2). ``requests`` itself is imported on first use, not at import
time, to keep the Functions cold start short.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import requests

#: Connections kept per host. The Functions Python worker runs sync invocations on a thread pool;
#: 32 covers its default size with room for MSAL and metadata calls.
POOL_MAXSIZE = 32


class Response(Protocol):
    """The part of an HTTP response the app reads. ``headers`` must be case-insensitive."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


class Transport(Protocol):
    """Sends one HTTP request; never follows redirects; never retries (callers own retry policy)."""

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        data: bytes | str | Mapping[str, str] | None = None,
        timeout: float,
    ) -> Response:
        """Send the request and return the response, whatever its status.

        Raises:
            TransportError: no response arrived (connection refused or reset, DNS, TLS, timeout).
        """
        ...


class TransportError(Exception):
    """No HTTP response: the connection failed or timed out. ``timeout`` tells which."""

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


class RequestsTransport:
    """:class:`Transport` over one lazily built, pooled, cookie-less ``requests.Session``."""

    def __init__(self, *, default_timeout: float = 10.0, pool_maxsize: int = POOL_MAXSIZE) -> None:
        self._default_timeout = default_timeout
        self._pool_maxsize = pool_maxsize
        self._lock = threading.Lock()
        self._session: requests.Session | None = None

    def session(self) -> requests.Session:
        """The process-wide session, built on first use (thread-safe)."""
        session = self._session
        if session is None:
            with self._lock:
                if self._session is None:
                    self._session = self._build_session()
                session = self._session
        return session

    def _build_session(self) -> requests.Session:
        import http.cookiejar

        import requests
        from requests.adapters import HTTPAdapter

        session = requests.Session()
        # Retries are decided above this layer (Graph budget, MSAL), so urllib3 must not retry on its own.
        adapter = HTTPAdapter(pool_connections=8, pool_maxsize=self._pool_maxsize, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        # Stateless by design: cookies set by one dependency (e.g. Entra's) must never be replayed.
        session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        return session

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        data: bytes | str | Mapping[str, str] | None = None,
        timeout: float,
    ) -> Response:
        import requests

        try:
            response: Response = self.session().request(
                method,
                url,
                headers=dict(headers) if headers else None,
                params=dict(params) if params else None,
                data=data,
                timeout=timeout,
                allow_redirects=False,  # a redirect must never carry our bearer token elsewhere
            )
        except requests.Timeout as exc:
            raise TransportError(
                f"{method} {_safe_url(url)} timed out after {timeout:g}s", timeout=True
            ) from exc
        except requests.RequestException as exc:
            raise TransportError(f"{method} {_safe_url(url)} failed: {type(exc).__name__}") from exc
        return response

    def msal_http_client(self, *, timeout: float | None = None) -> MsalHttpClient:
        """An MSAL ``http_client`` sharing this session. MSAL ignores its own ``timeout`` argument when
        given an ``http_client``, so the timeout is applied here instead."""
        return MsalHttpClient(self, timeout or self._default_timeout)

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None


class MsalHttpClient:
    """MSAL's minimal ``HttpClient`` interface (``post``/``get``/``close``) over the shared session."""

    def __init__(self, transport: RequestsTransport, timeout: float) -> None:
        self._transport = transport
        self._timeout = timeout

    def post(self, url: str, params: Any = None, data: Any = None, headers: Any = None, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self._timeout)
        return self._transport.session().post(url, params=params, data=data, headers=headers, **kwargs)

    def get(self, url: str, params: Any = None, headers: Any = None, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self._timeout)
        return self._transport.session().get(url, params=params, headers=headers, **kwargs)

    def close(self) -> None:
        """No-op: the session is process-wide and outlives any MSAL application object."""


def _safe_url(url: str) -> str:
    """The URL without its query string (which may hold search terms or skip tokens) for messages."""
    return url.split("?", 1)[0]
