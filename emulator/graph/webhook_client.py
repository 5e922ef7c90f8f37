"""The local tenant's outbound HTTPS client: Graph calling a subscriber's notification and lifecycle URLs.

It trusts the combined bundle (system roots plus the local CA, ``state.tls.bundle``), so an app serving
https on loopback with a certificate the local CA signed is reachable exactly as Graph reaches a public
endpoint, and anything else (self-signed, expired, wrong name) fails the TLS handshake as it would in the
cloud. Only loopback hosts are called: the local tenant never sends traffic off the machine [EMULATOR].

``requests`` runs on a small thread pool (no async HTTP client is in the requirements); the caller awaits
the result with the deadline Graph applies (10 s for validation, 3 s for notifications), and a reply that
comes later counts as no reply.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus, urlsplit, urlunsplit

if TYPE_CHECKING:
    import requests
    import requests.adapters

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
USER_AGENT = "Microsoft-Graph-ChangeNotifications/1.0 (local tenant)"  # [INFERRED] value


@dataclass(frozen=True)
class Reply:
    """What a subscriber's endpoint answered. ``status`` None = no answer (``error`` says why)."""

    status: int | None
    content_type: str
    body: bytes
    elapsed: float  # seconds from sending to the full reply (or to giving up)
    error: str | None = None  # timeout | tls | connect | unreachable

    @property
    def reason(self) -> str:
        """The status as .NET names it (``Forbidden``, ``NotFound``…), as Graph quotes it in errors."""
        from http import HTTPStatus

        try:
            return HTTPStatus(self.status or 0).phrase.replace(" ", "").replace("-", "")
        except ValueError:
            return str(self.status)


def is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "").lower() in LOOPBACK_HOSTS


def with_query(url: str, name: str, value: str) -> str:
    """``url`` with ``name=value`` appended to its query (the subscriber's own parameters are kept)."""
    parts = urlsplit(url)
    extra = f"{name}={quote_plus(value)}"
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _preloaded_trust_adapter(context: ssl.SSLContext) -> requests.adapters.HTTPAdapter:
    """An adapter whose https pools verify with ``context`` (already holding the session's bundle) instead of
    loading the bundle again for every connection."""
    from requests.adapters import HTTPAdapter

    class _PreloadedTrust(HTTPAdapter):
        def build_connection_pool_key_attributes(self, request: Any, verify: Any, cert: Any = None) -> Any:
            host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
            if verify is not False:
                pool_kwargs.pop("ca_certs", None)
                pool_kwargs.pop("ca_cert_dir", None)
                pool_kwargs["ssl_context"] = context
            return host_params, pool_kwargs

        def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
            super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]
            if verify is not False:  # the pool's context holds the bundle already
                conn.ca_certs = None
                conn.ca_cert_dir = None

    return _PreloadedTrust()


class WebhookClient:
    """POSTs to subscriber endpoints on loopback; thread-pooled ``requests`` with one session per thread."""

    def __init__(self, ca_bundle: str, workers: int = 16) -> None:
        self.ca_bundle = ca_bundle
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="graph-webhook")
        self._local = threading.local()
        self._context_lock = threading.Lock()
        self._context: ssl.SSLContext | None = None

    def _trust(self) -> ssl.SSLContext:
        """One verifying context holding the bundle, shared by every thread's session: with ``verify`` set
        to a path, urllib3 loads the bundle into each new connection's context (about 100 ms of CPU for the
        system roots)."""
        from urllib3.util.ssl_ import create_urllib3_context

        with self._context_lock:
            if self._context is None:
                context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
                context.load_verify_locations(cafile=self.ca_bundle)
                self._context = context
            return self._context

    def _session(self) -> requests.Session:
        import requests  # deferred: the tenant starts without it until a subscription is validated

        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # never a proxy: the endpoint is on loopback
            session.verify = self.ca_bundle
            session.mount("https://", _preloaded_trust_adapter(self._trust()))
            self._local.session = session
        return session

    def _send(self, url: str, body: bytes, content_type: str, timeout: float) -> Reply:
        import requests

        started = time.perf_counter()
        try:
            if not is_loopback(url):
                return Reply(None, "", b"", 0.0, "unreachable")
        except ValueError:
            return Reply(None, "", b"", 0.0, "unreachable")
        try:
            resp = self._session().post(
                url,
                data=body,
                headers={"Content-Type": content_type, "User-Agent": USER_AGENT},
                timeout=(timeout, timeout),
                allow_redirects=False,
            )
            content = resp.content
        except requests.exceptions.SSLError:
            return Reply(None, "", b"", time.perf_counter() - started, "tls")
        except requests.exceptions.Timeout:
            return Reply(None, "", b"", time.perf_counter() - started, "timeout")
        except requests.exceptions.RequestException:
            return Reply(None, "", b"", time.perf_counter() - started, "connect")
        elapsed = time.perf_counter() - started
        if elapsed > timeout:
            return Reply(None, "", b"", elapsed, "timeout")
        return Reply(resp.status_code, resp.headers.get("content-type", ""), content, elapsed)

    async def post(self, url: str, body: bytes, content_type: str, timeout: float) -> Reply:
        """POST and wait at most ``timeout`` seconds (then: ``Reply(None, error="timeout")``)."""
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        future = loop.run_in_executor(self._pool, self._send, url, body, content_type, timeout)
        try:
            return await asyncio.wait_for(future, timeout + 0.5)
        except TimeoutError:
            return Reply(None, "", b"", time.perf_counter() - started, "timeout")

    async def validate(self, url: str, token: str, timeout: float) -> Reply:
        """The validation handshake: ``POST {url}?validationToken={url-encoded token}``, empty body."""
        return await self.post(
            with_query(url, "validationToken", token), b"", "text/plain; charset=utf-8", timeout
        )
