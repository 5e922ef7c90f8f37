"""A small Microsoft Graph v1.0 client: bearer auth, bounded retries, paging, typed errors.

No msgraph-sdk (it costs about a second of cold start); just the HTTP semantics the app needs:

* **Retries** on 429/503/504 honour ``Retry-After`` (seconds or HTTP date); without it, exponential backoff
  with jitter. All waits fit in one time budget (``GRAPH_RETRY_BUDGET_SECONDS``) and ``GRAPH_MAX_RETRIES``;
  when the next wait would not fit, the call fails with :class:`UpstreamThrottled` carrying the upstream
  ``Retry-After``. Connection failures and timeouts are retried the same way (idempotent methods only).
* **Token renewal**: a 401 ``InvalidAuthenticationToken`` drops the cached token once and retries.
* **Paging** follows ``@odata.nextLink`` as a whole URL, and re-sends ``ConsistencyLevel`` on every page
  because Graph does not carry request headers into next links.
* **Safety**: absolute URLs (next links, cursors) are only followed on the configured Graph origin, so the
  bearer token is never sent anywhere else.
"""

from __future__ import annotations

import dataclasses
import email.utils
import logging
import math
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

from shared.context import correlation_guid
from shared.errors import (
    BadRequest,
    GraphFunctionsError,
    NotFound,
    UpstreamError,
    UpstreamThrottled,
)
from shared.http import Response, Transport, TransportError
from shared.settings import Settings
from shared.version import __version__

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({429, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 8.0
_USER_AGENT = f"graph-functions/{__version__}"
_DELTA_SECONDS = re.compile(r"[0-9]{1,9}")


class TokenSource(Protocol):
    """What the client needs from :class:`shared.tokens.TokenProvider`."""

    def get_token(self, scope: str) -> str: ...

    def invalidate(self, scope: str, token: str | None = None) -> None: ...


@dataclasses.dataclass(frozen=True)
class GraphPage:
    """One page of a Graph collection: its items, the next link (None on the last page), ``@odata.count``."""

    items: list[dict[str, Any]]
    next_link: str | None
    count: int | None = None


class GraphClient:
    """Calls Microsoft Graph v1.0 at ``{GRAPH_ENDPOINT}/v1.0`` with app-only tokens. Thread-safe."""

    def __init__(
        self,
        *,
        settings: Settings,
        tokens: TokenSource,
        transport: Transport,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._origin = settings.graph_endpoint
        self._base = settings.graph_base_url
        self._scope = settings.graph_scope
        self._tokens = tokens
        self._transport = transport
        self._timeout = settings.graph_timeout_seconds
        self._budget = settings.graph_retry_budget_seconds
        self._max_retries = settings.graph_max_retries
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter

    @property
    def base_url(self) -> str:
        return self._base

    def is_graph_url(self, url: str) -> bool:
        """True when ``url`` is an https URL on the configured Graph origin, under ``/v1.0/``."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return False
        origin = urlsplit(self._origin)
        return (
            parts.scheme == "https"
            and not parts.username
            and not parts.password
            and (parts.hostname or "") == (origin.hostname or "")
            and (port or 443) == (origin.port or 443)
            and parts.path.startswith("/v1.0/")
            and not parts.fragment
            and "\\" not in url
        )

    def resolve(self, path_or_url: str) -> str:
        """The absolute URL for a ``/users``-style path, or a checked absolute Graph URL.

        Raises:
            UpstreamError: an absolute URL outside the configured Graph origin (never followed).
        """
        if "://" in path_or_url:
            if not self.is_graph_url(path_or_url):
                raise UpstreamError(
                    "Refused to follow a link outside the configured Microsoft Graph endpoint"
                )
            return path_or_url
        return f"{self._base}/{path_or_url.lstrip('/')}"

    def get_json(
        self,
        path_or_url: str,
        *,
        params: Mapping[str, str] | None = None,
        eventual: bool = False,
        client_input: bool = False,
    ) -> dict[str, Any]:
        """GET a Graph resource and return its JSON object.

        ``eventual`` adds ``ConsistencyLevel: eventual`` (needed by ``$search`` and ``$count`` on directory
        objects). ``client_input`` says the URL or query carries our caller's input, so a Graph 400 is the
        caller's :class:`BadRequest` rather than our :class:`UpstreamError`.

        Raises:
            NotFound: Graph 404.
            BadRequest: Graph 400 with ``client_input``.
            UpstreamThrottled: 429/503 past the retry budget (503, ``Retry-After``).
            UpstreamError: anything else Graph or the network did wrong (502).
            CredentialUnavailable, ConfigurationError: from token acquisition.
        """
        response = self._send(
            "GET", self.resolve(path_or_url), params=params, eventual=eventual, client_input=client_input
        )
        try:
            body = response.json()
        except ValueError as exc:
            raise UpstreamError("Microsoft Graph returned a response that is not JSON") from exc
        if not isinstance(body, dict):
            raise UpstreamError("Microsoft Graph returned JSON that is not an object")
        return body

    def get_page(
        self,
        path_or_url: str,
        *,
        params: Mapping[str, str] | None = None,
        eventual: bool = False,
        client_input: bool = False,
    ) -> GraphPage:
        """GET one page of a collection. Pass a path + ``params`` for the first page, the next link after.

        Raises the same errors as :meth:`get_json`, and UpstreamError for a body without a ``value`` list.
        """
        body = self.get_json(path_or_url, params=params, eventual=eventual, client_input=client_input)
        items = body.get("value")
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise UpstreamError("Microsoft Graph returned a collection without a 'value' list")
        next_link = body.get("@odata.nextLink")
        count = body.get("@odata.count")
        return GraphPage(
            items=items,
            next_link=next_link if isinstance(next_link, str) and next_link else None,
            count=count if isinstance(count, int) else None,
        )

    def iter_pages(
        self,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        eventual: bool = False,
        max_pages: int | None = None,
    ) -> Iterator[GraphPage]:
        """Yield every page of a collection, following ``@odata.nextLink`` (re-sending ConsistencyLevel)."""
        page = self.get_page(path, params=params, eventual=eventual)
        pages = 1
        yield page
        while page.next_link and (max_pages is None or pages < max_pages):
            page = self.get_page(page.next_link, eventual=eventual)
            pages += 1
            yield page

    # -- the retry loop -------------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None,
        eventual: bool,
        client_input: bool,
    ) -> Response:
        deadline = self._clock() + self._budget
        headers = {
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
            "client-request-id": correlation_guid(),  # one id for all attempts of this logical call
            "return-client-request-id": "true",
        }
        if eventual:
            headers["ConsistencyLevel"] = "eventual"
        path = urlsplit(url).path
        retries = 0
        renewed_token = False
        while True:
            token = self._tokens.get_token(self._scope)
            remaining = max(deadline - self._clock(), 0.0)
            try:
                response = self._transport.send(
                    method,
                    url,
                    headers={**headers, "Authorization": f"Bearer {token}"},
                    params=params,
                    timeout=min(self._timeout, max(remaining, 1.0)),
                )
            except TransportError as exc:
                wait = self._backoff(retries)
                if method not in IDEMPOTENT_METHODS or not self._may_retry(retries, wait, deadline):
                    logger.error("Graph %s %s failed after %d retries: %s", method, path, retries, exc)
                    raise UpstreamError("Microsoft Graph is unreachable or timed out") from exc
                logger.warning(
                    "Graph %s %s failed (%s); retry %d in %.2fs", method, path, exc, retries + 1, wait
                )
                self._sleep(wait)
                retries += 1
                continue
            status = response.status_code
            if 200 <= status < 300:
                return response
            if status in RETRYABLE_STATUSES:
                upstream_retry_after = parse_retry_after(response.headers.get("Retry-After"))
                wait = upstream_retry_after if upstream_retry_after is not None else self._backoff(retries)
                if not self._may_retry(retries, wait, deadline):
                    raise self._give_up(response, retries, upstream_retry_after, wait, method, path)
                logger.warning(
                    "Graph %s %s answered %d; retry %d in %.2fs", method, path, status, retries + 1, wait
                )
                self._sleep(wait)
                retries += 1
                continue
            if (
                status == 401
                and not renewed_token
                and _graph_error(response)[0] == "InvalidAuthenticationToken"
            ):
                # The token was revoked or signed with retired keys: renew it once, transparently.
                logger.warning("Graph rejected the app token (InvalidAuthenticationToken); renewing it once")
                self._tokens.invalidate(self._scope, token)
                renewed_token = True
                continue
            raise error_from_response(response, client_input=client_input)

    def _may_retry(self, retries: int, wait: float, deadline: float) -> bool:
        return retries < self._max_retries and self._clock() + wait <= deadline

    def _backoff(self, retries: int) -> float:
        """Exponential backoff with "equal jitter": half fixed, half random, capped."""
        ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * (2.0**retries))
        return ceiling / 2 + self._jitter() * ceiling / 2

    def _give_up(
        self,
        response: Response,
        retries: int,
        upstream_retry_after: float | None,
        wait: float,
        method: str,
        path: str,
    ) -> GraphFunctionsError:
        graph_code, _, request_id = _graph_error(response)
        logger.error(
            "Graph %s %s still answered %d after %d retries (request-id %s); giving up",
            method,
            path,
            response.status_code,
            retries,
            request_id,
        )
        if response.status_code == 504:
            return UpstreamError(
                "Microsoft Graph timed out repeatedly", graph_code=graph_code, graph_request_id=request_id
            )
        retry_after = math.ceil(upstream_retry_after if upstream_retry_after is not None else wait)
        return UpstreamThrottled(
            "Microsoft Graph is throttling requests; retry after the indicated delay",
            retry_after=max(1, retry_after),
            graph_code=graph_code,
            graph_request_id=request_id,
        )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), None if absent/invalid."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _graph_error(response: Response) -> tuple[str | None, str | None, str | None]:
    """(code, message, request-id) from a Graph error response; any part may be None."""
    request_id = response.headers.get("request-id")
    try:
        body = response.json()
    except ValueError:
        return None, None, request_id
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, None, request_id
    inner = error.get("innerError") or error.get("innererror") or {}
    if request_id is None and isinstance(inner, dict):
        inner_id = inner.get("request-id")
        request_id = inner_id if isinstance(inner_id, str) else None
    code = error.get("code")
    message = error.get("message")
    return (
        code if isinstance(code, str) else None,
        message[:300] if isinstance(message, str) else None,
        request_id,
    )


def error_from_response(response: Response, *, client_input: bool = False) -> GraphFunctionsError:
    """Map a non-success Graph response to a typed error (codes documented in ``docs/errors.md``)."""
    status = response.status_code
    graph_code, graph_message, request_id = _graph_error(response)
    ids: dict[str, Any] = {"graph_code": graph_code, "graph_request_id": request_id}
    logger.warning("Graph answered %d %s (request-id %s)", status, graph_code, request_id)
    if status == 404:
        return NotFound("The requested object does not exist in the directory", **ids)
    if status == 400 and client_input:
        detail = f": {graph_message}" if graph_message else ""
        return BadRequest(f"Microsoft Graph rejected the query{detail}", **ids)
    if status == 400:
        return UpstreamError(
            f"Microsoft Graph rejected the app's request ({graph_code})", code="upstream_bad_request", **ids
        )
    if status == 401:
        return UpstreamError(
            "Microsoft Graph rejected the app's access token", code="upstream_unauthorized", **ids
        )
    if status == 403:
        return UpstreamError(
            "Microsoft Graph denied the app access: grant the app registration the required application "
            "permission (e.g. User.Read.All) with admin consent",
            code="upstream_forbidden",
            **ids,
        )
    return UpstreamError(f"Microsoft Graph answered HTTP {status}", **ids)
