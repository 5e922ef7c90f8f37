"""Catch-up by delta: what notifications lost, found from each mailbox's inbox delta link.

Graph's notifications say "something changed" and may be lost (an outage, throttling, ``missed``, a
subscription removed); delta says what. Each mailbox target keeps its inbox delta link
(``GET /users/{id}/mailFolders/inbox/messages/delta``, application permission ``Mail.Read``, the
app's). :meth:`CatchUp.run` follows it to the end: every message it names
that is not ``@removed`` goes through :meth:`~shared.notifications.ingest.MailIngest.ingest` (the ledger
drops those already published), then the new delta link is stored. A run that fails part-way stores
nothing and is retried from the same link: what it published already is a duplicate then, not an event.

A link Graph no longer knows (410 Gone, ``syncStateNotFound``, ``resyncRequired``) starts a full round
again; messages received before the mailbox was watched are filtered by their ``receivedDateTime`` before
any read. A link that leaves this mailbox's delta (not a Graph URL, another path) is refused.

Runs on a catch-up work message: at start (each new target), on ``missed`` and ``subscriptionRemoved``,
after a reauthorization, on the timer's periodic sweep (an outage Graph did not report), and on every
poll in ``MAIL_INGESTION_MODE=poll``.
"""

from __future__ import annotations

import datetime
import logging
import re
from collections.abc import Callable
from urllib.parse import urlsplit

from shared.core.errors import NotFound, UpstreamError
from shared.graph.client import GraphClient
from shared.notifications.ingest import MailIngest, parse_time
from shared.notifications.store import NotificationTable, Target

logger = logging.getLogger(__name__)

#: Fields delta returns per message: enough to filter old mail before reading it.
DELTA_SELECT = "id,receivedDateTime"
#: Messages per delta page (Graph's default is 10).
PAGE_SIZE = 50
#: Pages one run follows at most (a huge backlog continues on the next run from the stored link).
MAX_PAGES = 400
_RESYNC_CODES = frozenset({"syncStateNotFound", "resyncRequired", "SyncStateNotFound"})


def delta_path(mailbox: str) -> str:
    return f"users/{mailbox}/mailFolders/inbox/messages/delta"


class CatchUpResult(dict[str, int]):
    """Outcome counts of one run (``published``, ``duplicate``, ``old``, ...)."""


class CatchUp:
    """Delta catch-up of one mailbox (module docstring). Thread-safe."""

    def __init__(
        self,
        graph: GraphClient,
        table: NotificationTable,
        ingest: MailIngest,
        *,
        now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self._graph = graph
        self._table = table
        self._ingest = ingest
        self._now = now

    def _own_link(self, link: str, mailbox: str) -> bool:
        if not self._graph.is_graph_url(link):
            return False
        path = urlsplit(link).path.lower()
        return path.endswith(f"/{delta_path(mailbox).lower()}") or bool(
            re.fullmatch(r"/v1\.0/users/[^/]+/mailfolders/[^/]+/messages/delta", path)
            and f"/users/{mailbox.lower()}/" in path
        )

    def run(self, target: Target, *, channel: str, request_id: str) -> CatchUpResult:
        """Follow ``target``'s delta to its end and publish what is new; store the new delta link.

        Raises:
            ClaimHeldError, StorageUnavailable, UpstreamError, UpstreamThrottled, ...: nothing is
                stored; the work is retried.
        """
        mailbox = str(target.mailbox)
        counts = CatchUpResult()
        link = target.delta_link
        if link is not None and not self._own_link(link, mailbox):
            logger.warning("Stored delta link of a mailbox is not its own; starting a full round")
            link = None
        try:
            delta_link = self._follow(target, link, counts, channel=channel, request_id=request_id)
        except (UpstreamError, NotFound) as error:
            if link is None or not (error.graph_code in _RESYNC_CODES or "HTTP 410" in error.message):
                raise
            logger.info("Delta link expired (%s); starting a full round", error.graph_code)
            delta_link = self._follow(target, None, counts, channel=channel, request_id=request_id)
        self._table.update(
            target.tenant_id,
            target.key,
            delta_link=delta_link,
            last_catch_up=self._now(),
            catch_up_requested=False,
        )
        logger.info("Catch-up of a mailbox (%s): %s", channel, dict(counts))
        return counts

    def _follow(
        self, target: Target, link: str | None, counts: CatchUpResult, *, channel: str, request_id: str
    ) -> str | None:
        mailbox = str(target.mailbox)
        prefer = f"odata.maxpagesize={PAGE_SIZE}"
        if link is None:
            body = self._graph.get_json(delta_path(mailbox), params={"$select": DELTA_SELECT}, prefer=prefer)
        else:
            body = self._graph.get_json(link, prefer=prefer)
        for _ in range(MAX_PAGES):
            items = body.get("value")
            if not isinstance(items, list):
                raise UpstreamError("Microsoft Graph returned a delta page without a 'value' list")
            for item in items:
                if not isinstance(item, dict) or "@removed" in item:
                    continue
                message_id = item.get("id")
                if not isinstance(message_id, str) or not message_id:
                    continue
                outcome = self._ingest.ingest(
                    target,
                    message_id,
                    channel=channel,
                    request_id=request_id,
                    received=parse_time(item.get("receivedDateTime")),
                )
                counts[outcome] = counts.get(outcome, 0) + 1
            delta = body.get("@odata.deltaLink")
            if isinstance(delta, str) and delta:
                if not self._own_link(delta, mailbox):
                    raise UpstreamError("Microsoft Graph returned a delta link outside this mailbox's inbox")
                return delta
            next_link = body.get("@odata.nextLink")
            if not isinstance(next_link, str) or not self._own_link(next_link, mailbox):
                raise UpstreamError(
                    "Microsoft Graph returned a delta page without a usable next or delta link"
                )
            body = self._graph.get_json(next_link, prefer=prefer)
        # A backlog longer than one run: keep the place (the next link) and go on next time.
        return str(body.get("@odata.nextLink") or link or "") or None
