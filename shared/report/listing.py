"""Every directory user, streamed page by page: ``GET /users?$top=999&$select=<the report's fields>``.

Required Graph permission: ``User.Read.All`` (application); sign-in activity also needs ``AuditLog.Read.All``
and a Microsoft Entra ID P1/P2 licence. Without them Graph refuses a ``$select`` naming ``signInActivity``
(403 ``Authentication_RequestFromNonPremiumTenantOrB2CTenant`` without the licence, 403
``Authorization_RequestDenied`` without the permission); the report then lists users without it and says
why in the summary, instead of failing.

Pages are fetched through :meth:`shared.graph.GraphClient.get_page` (its retries honour ``Retry-After``
within the per-call budget); :class:`PageFetcher` adds the run's own budget on top, re-asking for the same
page URL after a per-call give-up, so a page is either written once, whole, or the run fails.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from shared.errors import GraphFunctionsError, UpstreamError, UpstreamThrottled
from shared.graph import GraphClient, GraphPage

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
    ``signInActivity`` could be selected. One page in memory at a time."""
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
    # The next page is fetched while the caller writes this one (one page ahead, at most two in memory):
    # the run then takes about as long as the listing itself.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="report-prefetch") as pool:
        while True:
            ahead = pool.submit(fetcher.page, page.next_link) if page.next_link else None
            try:
                yield page.items
            except GeneratorExit:
                if ahead is not None:
                    ahead.cancel()
                raise
            if ahead is None:
                return
            page = ahead.result()


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_FIRST = frozenset(_FORMULA_STARTS)


def cell(value: Any) -> str:
    """A CSV cell: booleans as ``true``/``false``, None as empty, and text that a spreadsheet would run as
    a formula (``= + - @``, tab, CR first) prefixed with ``'`` (OWASP "CSV injection")."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


def user_row(user: Mapping[str, Any]) -> list[str]:
    """The users.csv row of one Graph user object, in :data:`CSV_COLUMNS` order (:func:`cell` per value,
    inlined for plain strings: this runs once per user)."""
    activity = user.get(SIGN_IN_FIELD)
    activity = activity if isinstance(activity, dict) else {}
    row: list[str] = []
    for source, names in ((user, USER_FIELDS), (activity, SIGN_IN_COLUMNS)):
        for name in names:
            value = source.get(name)
            if value.__class__ is str:
                row.append(f"'{value}" if value[:1] in _FORMULA_FIRST else value)
            else:
                row.append(cell(value))
    return row
