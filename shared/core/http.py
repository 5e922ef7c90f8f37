"""The outbound HTTP seam: a tiny :class:`Transport` protocol and its ``requests`` implementation.

Graph calls, OpenID metadata and JWKS fetches go through :class:`Transport`, so unit tests pass a fake that
records requests and returns canned responses (``tests/unit/fakes.py``) instead of patching libraries.

:class:`RequestsTransport` owns ONE pooled ``requests.Session`` per process, shared with MSAL through
:meth:`RequestsTransport.msal_http_client`. TLS trust comes from the environment: requests applies
``REQUESTS_CA_BUNDLE`` and it overrides any ``Session.verify``, so the session's ``verify`` is
deliberately left alone (see ``sdk-facts`` Q2). The session reads the environment (that and the proxy
variables) once per origin, on its first request there, not on every request as requests does.
``requests`` itself is imported on first use, not at import time, to keep the Functions cold start short.

Each CA bundle is loaded ONCE per process into a shared ``ssl.SSLContext`` (:class:`_SharedTrustAdapter`):
left to itself, requests makes urllib3 build a context and parse the whole bundle for every new connection
(about 40 ms of CPU for the system bundle here), which at a cold start with 50 concurrent callers is seconds
of CPU spent before the first Graph byte. Verification is unchanged: the same bundle, ``CERT_REQUIRED`` and
OpenSSL's hostname check.
"""

from __future__ import annotations

import os
import re
import ssl
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    import requests

#: Connections kept per host. The Functions Python worker runs sync invocations on a thread pool;
#: 32 covers its default size with room for MSAL and metadata calls.
POOL_MAXSIZE = 32

_UNPRINTABLE = r"[^\x21-\x7e]"


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
            InvalidRequestError: the URL or a header is invalid; nothing was sent.
        """
        ...


class TransportError(Exception):
    """No HTTP response: the connection failed or timed out.

    Attributes:
        timeout: the attempt timed out (rather than failing outright).
        sent: the request may have reached the server (a read timeout, a connection dropped after sending).
            False only when no connection was ever established (refused, DNS, TLS handshake, connect
            timeout), so the server cannot have processed it and even a non-idempotent request may be resent.
    """

    def __init__(self, message: str, *, timeout: bool = False, sent: bool = True) -> None:
        super().__init__(message)
        self.timeout = timeout
        self.sent = sent


class InvalidRequestError(ValueError):
    """The request could not even be built (invalid URL or header, missing scheme): a programming or input
    error, not a network failure. Nothing was sent; retrying cannot help, so callers never retry it."""


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
        import http.cookiejar  # noqa: PLC0415 - only with requests, on first use

        session = _environment_once_session()
        # Retries are decided above this layer (Graph budget, MSAL), so urllib3 must not retry on its own.
        adapter = _shared_trust_adapter(pool_connections=8, pool_maxsize=self._pool_maxsize, max_retries=0)
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
        import requests  # noqa: PLC0415 - requests is heavy: imported on first use (cold start)

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
                f"{method} {_safe_url(url)} timed out after {timeout:g}s",
                timeout=True,
                sent=not isinstance(exc, requests.ConnectTimeout),
            ) from exc
        # InvalidURL, InvalidHeader, MissingSchema, InvalidSchema and InvalidJSONError are RequestExceptions
        # too, and http.client raises plain ValueErrors (UnicodeEncodeError for a non-latin-1 header): all
        # mean the request itself is wrong, so they must not look like a network failure worth retrying.
        except (requests.exceptions.URLRequired, requests.exceptions.InvalidJSONError, ValueError) as exc:
            raise InvalidRequestError(
                f"{method} {_safe_url(url)!r} is not a valid request: {type(exc).__name__}"
            ) from exc
        except requests.RequestException as exc:
            raise TransportError(
                f"{method} {_safe_url(url)} failed: {type(exc).__name__}", sent=_may_have_been_sent(exc)
            ) from exc
        return response

    def msal_http_client(self, *, timeout: float | None = None) -> MsalHttpClient:
        """An MSAL ``http_client`` sharing this session. MSAL ignores its own ``timeout`` argument when
        given an ``http_client``, so the timeout is applied here instead."""
        return MsalHttpClient(self, timeout or self._default_timeout)

    def azure_transport(self, *, timeout: float | None = None) -> Any:
        """An azure-core transport (``transport=`` of an Azure SDK client or credential) over this session,
        which it does not own, bounding each attempt's connect and each read by ``timeout`` seconds (this
        transport's default timeout when None).

        The bound must live here: an SDK client given a ``transport`` ignores its own ``connection_timeout``
        and ``read_timeout`` options (they only configure the transport it would build), and azure-core's
        default is 300 s. Its connections verify TLS with the session's cached contexts, and the
        environment is read once per origin (module docstring): azure-core's own session loads the CA
        bundle into a new context for every connection (about 100 ms of CPU each for the system roots)
        and scans the whole environment for proxies on every request."""
        from azure.core.pipeline.transport import RequestsTransport as AzureRequestsTransport  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        bound = self._default_timeout if timeout is None else timeout
        return AzureRequestsTransport(
            session=self.session(), session_owner=False, connection_timeout=bound, read_timeout=bound
        )

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None


def pooled(transport: Transport) -> RequestsTransport | None:
    """``transport`` when it is a :class:`RequestsTransport`, whose session Azure SDK clients can share; None
    for any other (a unit test's fake), whose SDK clients then build their own transports."""
    return transport if isinstance(transport, RequestsTransport) else None


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


def _environment_once_session() -> requests.Session:
    """A ``requests.Session`` that applies the environment (``trust_env``: the proxy variables with
    ``NO_PROXY``, ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``) exactly as requests does, but reads it once
    per origin instead of on every request. requests scans the whole process environment for proxies on
    each call (about 0.3 ms of CPU with 35 variables, more with the hundred or so a Functions worker has);
    the app's settings are frozen at start, so its environment is too."""
    import requests  # noqa: PLC0415 - requests is heavy: imported on first use (cold start)

    class _EnvironmentOnceSession(requests.Session):
        def __init__(self) -> None:
            super().__init__()
            self._environment: dict[tuple[str, str], dict[str, Any]] = {}

        def merge_environment_settings(
            self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
        ) -> Any:
            if not self.trust_env or (proxies and "no_proxy" in proxies):
                return super().merge_environment_settings(url, proxies, stream, verify, cert)
            parts = urlsplit(url)
            origin = (parts.scheme.lower(), parts.netloc.lower())
            defaults = self._environment.get(origin)
            if defaults is None:  # a race computes the same dict twice: harmless
                defaults = dict(super().merge_environment_settings(url, {}, None, True, None))
                self._environment[origin] = defaults
            if verify is None and defaults["verify"] is True:
                verify = self.verify  # no CA variable: the session's own setting, as requests
            elif verify is None or verify is True:
                verify = defaults["verify"]  # the CA variable (or True)
            # requests' order: the request's proxies, then the environment's, then the session's; a proxy
            # set to None is removed.
            merged = {**defaults["proxies"], **(proxies or {})}
            return {
                "proxies": {scheme: proxy for scheme, proxy in merged.items() if proxy is not None},
                "stream": stream if stream is not None else self.stream,
                "verify": verify,
                "cert": cert if cert is not None else self.cert,
            }

    return _EnvironmentOnceSession()


_PROCESS_CONTEXTS: dict[tuple[str | None, str | None, int, int], ssl.SSLContext] = {}
_PROCESS_CONTEXTS_LOCK = threading.Lock()


def _process_trust_context(
    ca_certs: str | None, ca_cert_dir: str | None, create: Callable[..., ssl.SSLContext]
) -> ssl.SSLContext:
    """ONE verifying context per bundle in the process, shared by every adapter (another transport, a
    credential's own): keyed by the bundle's path and its file's modification time and size, so a bundle
    rewritten in place is loaded again by the next adapter that needs it."""
    try:
        stat = os.stat(ca_certs) if ca_certs else None
    except OSError:
        stat = None  # load_verify_locations below raises the error a missing bundle deserves
    key = (ca_certs, ca_cert_dir, stat.st_mtime_ns if stat else 0, stat.st_size if stat else 0)
    with _PROCESS_CONTEXTS_LOCK:
        context = _PROCESS_CONTEXTS.get(key)
        if context is None:
            context = create(cert_reqs=ssl.CERT_REQUIRED)
            context.load_verify_locations(cafile=ca_certs, capath=ca_cert_dir)
            _PROCESS_CONTEXTS[key] = context
        return context


def _shared_trust_adapter(**kwargs: Any) -> Any:
    """A requests HTTPAdapter verifying TLS with one cached SSLContext per CA bundle (module docstring)."""
    from requests.adapters import HTTPAdapter  # noqa: PLC0415 - requests is heavy: imported on first use (cold start)
    from requests.utils import DEFAULT_CA_BUNDLE_PATH  # noqa: PLC0415 - requests is heavy: imported on first use (cold start)
    from urllib3.util.ssl_ import create_urllib3_context  # noqa: PLC0415 - urllib3 is heavy: imported on first use (cold start)

    class _SharedTrustAdapter(HTTPAdapter):
        def __init__(self, **adapter_kwargs: Any) -> None:
            self._contexts: dict[tuple[str | None, str | None], ssl.SSLContext] = {}
            self._contexts_lock = threading.Lock()
            super().__init__(**adapter_kwargs)

        def trust_context(self, ca_certs: str | None, ca_cert_dir: str | None) -> ssl.SSLContext:
            """The verifying context for one bundle (file or directory), built on first use."""
            key = (ca_certs, ca_cert_dir)
            with self._contexts_lock:
                context = self._contexts.get(key)
                if context is None:
                    context = _process_trust_context(ca_certs, ca_cert_dir, create_urllib3_context)
                    self._contexts[key] = context
                return context

        def build_connection_pool_key_attributes(self, request: Any, verify: Any, cert: Any = None) -> Any:
            attributes: Any = super().build_connection_pool_key_attributes(request, verify, cert)
            host_params: dict[str, Any] = attributes[0]
            pool_kwargs: dict[str, Any] = attributes[1]
            if host_params.get("scheme") == "https" and verify is not False:
                ca_certs = pool_kwargs.pop("ca_certs", None)
                ca_cert_dir = pool_kwargs.pop("ca_cert_dir", None)
                if ca_certs is None and ca_cert_dir is None:  # verify=True: requests' default bundle
                    ca_certs = DEFAULT_CA_BUNDLE_PATH
                pool_kwargs["ssl_context"] = self.trust_context(ca_certs, ca_cert_dir)
            return host_params, pool_kwargs

        def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
            super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]  # untyped in the stubs
            # The pool's context already holds this bundle: urllib3 would load it again per connection.
            if verify and getattr(conn, "conn_kw", {}).get("ssl_context") is not None:
                conn.ca_certs = None
                conn.ca_cert_dir = None

    return _SharedTrustAdapter(**kwargs)


def _may_have_been_sent(exc: Exception) -> bool:
    """False when ``exc`` (a requests ConnectionError) shows no connection was established, else True."""
    import requests  # noqa: PLC0415 - requests is heavy: imported on first use (cold start)
    from urllib3.exceptions import NewConnectionError  # DNS failures (NameResolutionError) included  # noqa: PLC0415 - urllib3 is heavy: imported on first use (cold start)

    if isinstance(exc, requests.exceptions.SSLError):
        return False  # the TLS handshake failed: no request bytes were written
    if not isinstance(exc, requests.ConnectionError):
        return True
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the underlying failure
    return not isinstance(reason, NewConnectionError)


def _safe_url(url: str) -> str:
    """The URL for messages: without its query string (which may hold search terms or skip tokens), and
    with control, space and non-ASCII characters percent-escaped so it cannot forge log lines."""
    return re.sub(_UNPRINTABLE, lambda match: quote(match.group(), safe=""), url.split("?", 1)[0])
