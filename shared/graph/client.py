"""A small Microsoft Graph v1.0 client: bearer auth, bounded retries, paging, typed errors.

No msgraph-sdk (it costs about a second of cold start); just the HTTP semantics the app needs:

* **Retries** honour ``Retry-After`` (seconds or HTTP date); without it, exponential backoff with jitter.
  Idempotent methods (GET, PUT, DELETE, ...) are retried on 429, 503, 504, connection failures and timeouts.
  Other methods (POST: sendMail) may already have been executed, so they are retried only where Graph
  cannot have processed them: 429, 503 *with* ``Retry-After``, and a connection that was never established;
  never on a 504 or a connection lost after the request was sent.
* **Budget**: every attempt starts within ``GRAPH_RETRY_BUDGET_SECONDS`` of the call's start, no attempt's
  timeout exceeds what is left of it (1 s at least), and there are at most ``GRAPH_MAX_RETRIES`` retries.
  So one call lasts at most ``budget + 2 x GRAPH_TIMEOUT_SECONDS`` (requests applies the timeout to the
  connect and to the read separately; ``shared.core.retry_policy.worst_case_call_seconds``). When the next
  wait would not fit, the call fails with :class:`UpstreamThrottled` carrying the upstream ``Retry-After``.
* **Token renewal**: a 401 ``InvalidAuthenticationToken`` drops the cached token once and retries (within
  the budget).
* **Paging** follows ``@odata.nextLink`` as a whole URL, and re-sends ``ConsistencyLevel`` on every page
  because Graph does not carry request headers into next links.
* **Safety**: absolute URLs (next links, cursors) are only followed on the configured Graph origin, so the
  bearer token is never sent anywhere else, and only when every character is printable ASCII: ``urlsplit``
  silently drops tabs and line breaks, so ``graph.micro\tsoft.com`` would otherwise pass the origin check.
  A request that cannot be built (:class:`~shared.core.http.InvalidRequestError`) is never retried.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from shared.core.context import correlation_guid
from shared.core.errors import (
    BadRequest,
    ClaimsChallenge,
    GraphFunctionsError,
    UpstreamError,
    UpstreamThrottled,
)
from shared.core.http import InvalidRequestError, Response, Transport, TransportError
from shared.core.records import Record
from shared.core.retry_policy import (
    IDEMPOTENT_METHODS,
    RETRYABLE_STATUSES,
    backoff_seconds,
    may_resend,
    parse_retry_after,
)
from shared.graph.config import GraphConfig
from shared.graph.errors import claims_challenge, error_from_response, graph_error_details
from shared.graph.token_source import ChallengeableTokenSource, TokenSource
from shared.version import __version__

logger = logging.getLogger(__name__)

_USER_AGENT = f"graph-functions/{__version__}"
#: What an absolute URL we follow may contain: printable ASCII only (no space, control, DEL, non-ASCII).
_URL_CHARACTERS = r"[\x21-\x7e]+"


class GraphPage(Record):
    """One page of a Graph collection: its items, the next link (None on the last page), ``@odata.count``."""

    items: list[dict[str, Any]]
    next_link: str | None
    count: int | None = None


class GraphClient:
    """Calls Microsoft Graph v1.0 at ``{GRAPH_ENDPOINT}/v1.0`` with app-only tokens. Thread-safe."""

    def __init__(
        self,
        *,
        config: GraphConfig,
        tokens: TokenSource,
        transport: Transport,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._origin = config.endpoint
        self._base = config.base_url
        self._scope = config.scope
        self._tokens = tokens
        self._transport = transport
        self._timeout = config.timeout_seconds
        self._budget = config.retry_budget_seconds
        self._max_retries = config.max_retries
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter

    @property
    def base_url(self) -> str:
        return self._base

    def is_graph_url(self, url: str) -> bool:
        """True when ``url`` is an https URL on the configured Graph origin, under ``/v1.0/``, made only of
        printable ASCII characters (checked before parsing: ``urlsplit`` drops tabs and line breaks)."""
        if not re.fullmatch(_URL_CHARACTERS, url):
            return False
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
        prefer: str | None = None,
    ) -> dict[str, Any]:
        """GET a Graph resource and return its JSON object.

        ``eventual`` adds ``ConsistencyLevel: eventual`` (needed by ``$search`` and ``$count`` on directory
        objects). ``client_input`` says the URL or query carries our caller's input, so a Graph 400 is the
        caller's :class:`BadRequest` rather than our :class:`UpstreamError`. ``prefer`` is sent as the
        ``Prefer`` header (e.g. ``outlook.body-content-type="text"``).

        Raises:
            NotFound: Graph 404.
            BadRequest: Graph 400 with ``client_input``.
            UpstreamThrottled: 429/503 past the retry budget (503, ``Retry-After``).
            UpstreamError: anything else Graph or the network did wrong (502).
            CredentialUnavailable, ConfigurationError: from token acquisition.
        """
        response = self._send(
            "GET",
            self.resolve(path_or_url),
            params=params,
            eventual=eventual,
            client_input=client_input,
            prefer=prefer,
        )
        return _json_object(response)

    def post_json(
        self, path_or_url: str, body: Mapping[str, Any], *, client_input: bool = False
    ) -> dict[str, Any] | None:
        """POST a JSON body; return the JSON object answered, or None for an empty answer (202, 204).

        POST is not idempotent: it is retried only where Graph cannot have processed it (module docstring).

        Raises:
            The same errors as :meth:`get_json`.
        """
        response = self._send(
            "POST",
            self.resolve(path_or_url),
            params=None,
            eventual=False,
            client_input=client_input,
            data=json.dumps(body, separators=(",", ":")).encode("utf-8"),
        )
        if not response.text.strip():
            return None
        return _json_object(response)

    def patch_json(self, path_or_url: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """PATCH a JSON body (e.g. a subscription's expiry); the JSON object answered, or None when empty.

        Raises:
            The same errors as :meth:`get_json`.
        """
        response = self._send(
            "PATCH",
            self.resolve(path_or_url),
            params=None,
            eventual=False,
            client_input=False,
            data=json.dumps(body, separators=(",", ":")).encode("utf-8"),
        )
        return _json_object(response) if response.text.strip() else None

    def delete(self, path_or_url: str) -> None:
        """DELETE a resource (idempotent: retried like a GET).

        Raises:
            The same errors as :meth:`get_json` (NotFound for one already gone).
        """
        self._send("DELETE", self.resolve(path_or_url), params=None, eventual=False, client_input=False)

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
        data: bytes | None = None,
        prefer: str | None = None,
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
        if prefer is not None:
            headers["Prefer"] = prefer
        if data is not None:
            headers["Content-Type"] = "application/json"
        path = urlsplit(url).path
        retries = 0
        renewed_token = False
        answered_claims = False
        while True:
            token = self._tokens.get_token(self._scope)
            remaining = max(deadline - self._clock(), 0.0)
            try:
                response = self._transport.send(
                    method,
                    url,
                    headers={**headers, "Authorization": f"Bearer {token}"},
                    params=params,
                    data=data,
                    timeout=min(self._timeout, max(remaining, 1.0)),
                )
            except InvalidRequestError as exc:
                # Nothing was sent and nothing will change on a retry: the URL or a header is wrong.
                logger.error("Graph %s %s could not be sent: %s", method, _log_path(path), exc)
                if client_input:
                    raise BadRequest(
                        "The request cannot be sent to Microsoft Graph: invalid characters"
                    ) from exc
                raise
            except TransportError as exc:
                wait = self._backoff(retries)
                resendable = method in IDEMPOTENT_METHODS or not exc.sent  # never sent: not processed
                if not resendable or not self._may_retry(retries, wait, deadline):
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
                if not may_resend(method, status, upstream_retry_after) or not self._may_retry(
                    retries, wait, deadline
                ):
                    raise self._give_up(response, retries, upstream_retry_after, wait, method, path)
                logger.warning(
                    "Graph %s %s answered %d; retry %d in %.2fs", method, path, status, retries + 1, wait
                )
                self._sleep(wait)
                retries += 1
                continue
            if status == 401 and (claims := claims_challenge(response)) is not None:
                # CAE: the (delegated) token was revoked by a critical event; only a token obtained with
                # these claims is accepted, so renewing it as it is would fail again. A token source that
                # can answer the challenge does so once; a second challenge needs the person.
                if not answered_claims and isinstance(self._tokens, ChallengeableTokenSource):
                    logger.info("Graph sent a claims challenge; asking Entra for a token with the claims")
                    self._tokens.require_claims(claims, self._scope)
                    answered_claims = True
                    continue
                raise ClaimsChallenge(
                    "Your sign-in must be renewed (your organisation revoked it)", claims=claims
                )
            if (
                status == 401
                and not renewed_token
                and self._clock() <= deadline
                and graph_error_details(response)[0] == "InvalidAuthenticationToken"
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
        return backoff_seconds(retries, self._jitter())

    def _give_up(
        self,
        response: Response,
        retries: int,
        upstream_retry_after: float | None,
        wait: float,
        method: str,
        path: str,
    ) -> GraphFunctionsError:
        graph_code, _, request_id = graph_error_details(response)
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
                "Microsoft Graph timed out repeatedly"
                if method in IDEMPOTENT_METHODS
                else "Microsoft Graph timed out; the request may have been processed, so it was not repeated",
                graph_code=graph_code,
                graph_request_id=request_id,
            )
        retry_after = math.ceil(upstream_retry_after if upstream_retry_after is not None else wait)
        return UpstreamThrottled(
            "Microsoft Graph is throttling requests; retry after the indicated delay",
            retry_after=max(1, retry_after),
            graph_code=graph_code,
            graph_request_id=request_id,
        )


def _json_object(response: Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise UpstreamError("Microsoft Graph returned a response that is not JSON") from exc
    if not isinstance(body, dict):
        raise UpstreamError("Microsoft Graph returned JSON that is not an object")
    return body


def _log_path(path: str) -> str:
    """A path for a log line: non-printable characters escaped (it may come from a caller's cursor)."""
    return path.encode("unicode_escape").decode("ascii")
