"""Every directory user, streamed page by page: ``GET /users?$top=999&$select=<the report's fields>``.

Required Graph permission: ``User.Read.All`` (application); sign-in activity also needs ``AuditLog.Read.All``
and a Microsoft Entra ID P1/P2 licence. Without them Graph refuses a ``$select`` naming ``signInActivity``
(403 ``Authentication_RequestFromNonPremiumTenantOrB2CTenant`` without the licence, 403
``Authorization_RequestDenied`` without the permission); the report then lists users without it and says
why in the summary, instead of failing.

Pages are fetched through :meth:`shared.graph.client.GraphClient.get_page` (its retries honour ``Retry-After``
within the per-call budget); :class:`PageFetcher` adds the run's own budget on top, re-asking for the same
page URL after a per-call give-up, so a page is either written once, whole, or the run fails.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from shared.core.errors import GraphFunctionsError, UpstreamError, UpstreamThrottled
from shared.graph.client import GraphClient, GraphPage

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

PAGE_SIZE = 999  # Graph's maximum $top for users
USER_FIELDS: tuple[str, ...] = (
    "id",
    "userPrincipalName",
    "displayName",
    "mail",
    "department",
    "jobTitle",
    "accountEnabled",
    "userType",
    "createdDateTime",
)
SIGN_IN_FIELD = "signInActivity"
SIGN_IN_COLUMNS: tuple[str, ...] = ("lastSignInDateTime", "lastNonInteractiveSignInDateTime")
#: users.csv columns, fixed whether or not sign-in activity is available (empty cells then).
CSV_COLUMNS: tuple[str, ...] = USER_FIELDS + SIGN_IN_COLUMNS
#: Graph codes meaning "signInActivity is not available to this app / tenant".
SIGN_IN_REFUSALS = frozenset(
    {"Authentication_RequestFromNonPremiumTenantOrB2CTenant", "Authorization_RequestDenied"}
)


class RunBudgetExhaustedError(GraphFunctionsError):
    """Graph kept throttling (or failing) past the run's overall budget: the run fails, visibly."""

    status = 503
    default_code = "upstream_throttled"


@dataclasses.dataclass
class FetchStats:
    """Counted by :class:`PageFetcher` for the summary and the status resource."""

    pages: int = 0
    run_retries: int = 0
    waited_seconds: float = 0.0


class PageFetcher:
    """Gets pages with a run-wide budget: after the Graph client gives up on a page (its per-call budget),
    the same URL is asked again after ``Retry-After`` while the run's budget lasts.

    ``budget_seconds`` bounds the total time this run spends waiting for Graph to recover; ``deadline`` (a
    ``clock()`` value) is when the run must stop anyway (the host's ``functionTimeout`` minus a margin).
    """

    def __init__(
        self,
        graph: GraphClient,
        *,
        budget_seconds: float,
        deadline: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._graph = graph
        self._budget = budget_seconds
        self._deadline = deadline
        self._sleep = sleep
        self._clock = clock
        self.stats = FetchStats()

    def page(self, path_or_url: str, params: Mapping[str, str] | None = None) -> GraphPage:
        """One page (``params`` for the first page of a path, none for a next link).

        Raises:
            RunBudgetExhaustedError: Graph still throttled or failed when the run's budget ran out.
            GraphFunctionsError: any other Graph failure (permission, bad request): not retried.
        """
        return self._call(lambda: self._graph.get_page(path_or_url, params=params))

    def body(self, path_or_url: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """A whole JSON answer (delta rounds need ``@odata.deltaLink``), with :meth:`page`'s budget."""
        return self._call(lambda: self._graph.get_json(path_or_url, params=params))

    def _call(self, fetch: Callable[[], _T]) -> _T:
        while True:
            if self._clock() >= self._deadline:
                raise RunBudgetExhaustedError(
                    "The report run reached its time limit (the host's functionTimeout) before Microsoft "
                    "Graph answered every page"
                )
            try:
                result = fetch()
            except (UpstreamThrottled, UpstreamError) as exc:
                if exc.code not in ("upstream_throttled", "upstream_error") or exc.message.endswith(
                    "HTTP 410"
                ):
                    raise  # a 400/401/403/410 does not heal by waiting
                wait = float(exc.retry_after or 1)
                if self.stats.waited_seconds + wait > self._budget or self._clock() + wait >= self._deadline:
                    raise RunBudgetExhaustedError(
                        f"Microsoft Graph kept failing or throttling past the run's budget of "
                        f"{self._budget:g} s ({exc.message})",
                        retry_after=exc.retry_after,
                        graph_code=exc.graph_code,
                        graph_request_id=exc.graph_request_id,
                    ) from exc
                logger.warning("Report page failed (%s); the run retries it in %.1f s", exc.code, wait)
                self._sleep(wait)
                self.stats.waited_seconds += wait
                self.stats.run_retries += 1
                continue
            self.stats.pages += 1
            return result


@dataclasses.dataclass
class SignInAvailability:
    included: bool
    reason: str | None = None


def iter_user_pages(fetcher: PageFetcher, availability: SignInAvailability) -> Iterator[list[dict[str, Any]]]:
    """Yield the users of each page (``$top=999``) in Graph's order; ``availability`` says on return whether
    ``signInActivity`` could be selected. Pages are fetched ahead by a thread (:func:`_fetched_ahead`): at
    most four pages in memory, whatever the tenant's size."""
    params = {"$top": str(PAGE_SIZE), "$select": ",".join((*USER_FIELDS, SIGN_IN_FIELD))}
    try:
        page = fetcher.page("/users", params)
        availability.included = True
    except UpstreamError as exc:
        if exc.graph_code not in SIGN_IN_REFUSALS:
            raise
        availability.included = False
        availability.reason = (
            "Microsoft Graph refused signInActivity"
            f" ({exc.graph_code}): it needs a Microsoft Entra ID P1/P2 licence and AuditLog.Read.All"
        )
        logger.warning("signInActivity unavailable (%s); the report lists users without it", exc.graph_code)
        params["$select"] = ",".join(USER_FIELDS)
        page = fetcher.page("/users", params)
    if page.next_link is None:
        yield page.items
        return
    yield from _fetched_ahead(fetcher, page)


#: Pages a fetching thread may hold ready for the writer (besides the one being written and the one being
#: fetched): a blob block upload (tens of ms) then does not stall the listing.
_PAGES_AHEAD = 2


def _fetched_ahead(fetcher: PageFetcher, first: GraphPage) -> Iterator[list[dict[str, Any]]]:
    """``first``'s items, then each following page's, fetched back to back by a thread while the caller
    writes (the next link is known only once a page is parsed, so the listing itself stays sequential; the
    thread keeps it busy). At most ``_PAGES_AHEAD + 2`` pages are in memory. A fetch failure is raised here,
    in the caller's thread, after the pages before it; closing the generator stops the thread."""
    ready: queue.Queue[GraphPage | BaseException | None] = queue.Queue(maxsize=_PAGES_AHEAD)  # None: done
    stop = threading.Event()

    def hand_over(item: GraphPage | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def fetch_all(link: str | None) -> None:
        try:
            while link is not None and not stop.is_set():
                page = fetcher.page(link)
                if not hand_over(page):
                    return
                link = page.next_link
        except BaseException as exc:  # handed to the caller's thread, raised there
            hand_over(exc)
            return
        hand_over(None)

    worker = threading.Thread(target=fetch_all, args=(first.next_link,), name="report-prefetch", daemon=True)
    worker.start()
    try:
        yield first.items
        while True:
            item = ready.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item.items
    finally:
        stop.set()
        worker.join()
