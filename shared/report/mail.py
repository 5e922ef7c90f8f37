"""The summary, mailed once per report date through Graph ``POST /users/{REPORT_SENDER}/sendMail``.

Required Graph permission: ``Mail.Send`` (application; scope it to the sender's mailbox with an application
access policy or RBAC for Applications).

The body is HTML from ``templates/mail.html``: every value escaped (autoescape), tables styled inline
(mail clients drop ``<style>``), no remote images, a link to the report page when ``PUBLIC_BASE_URL`` is set.

**Once per date**: ``users/D/mail.json`` is claimed with a conditional create before sending and marked
``sent`` after Graph's 202. A retried run finds ``sent`` (or a claim in progress) and does not send again; a
send that Graph refused is marked ``failed`` and the next run retries it. The one window left, a crash
between Graph's 202 and the mark, is resolved as at-most-once: a stale claim is never re-sent (the status
says so), because a duplicate mail to every admin is worse than one missing.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any
from urllib.parse import quote

from shared.core.errors import GraphFunctionsError
from shared.core.settings_parts import ReportSettings
from shared.graph.client import GraphClient
from shared.report import layout
from shared.report.store import ReportStore
from shared.report.templating import render

logger = logging.getLogger(__name__)


def subject(summary: dict[str, Any]) -> str:
    totals, changes = summary["totals"], summary["changes"]
    text = f"Daily user report {summary['reportDate']}: {totals['users']} users"
    if changes["mode"] == "delta":
        text += f", {changes['added']} added, {changes['changed']} changed, {changes['removed']} removed"
    return text


def html_body(summary: dict[str, Any], page_url: str | None) -> str:
    totals, changes = summary["totals"], summary["changes"]
    rows = [
        ("Users", totals["users"]),
        ("Enabled", totals["enabled"]),
        ("Disabled", totals["disabled"]),
        ("Members", totals["members"]),
        ("Guests", totals["guests"]),
        ("Created in the last 24 hours", totals["createdLast24h"]),
        ("Created in the last 7 days", totals["createdLast7d"]),
    ]
    change_rows = [
        ("Added", changes["added"]),
        ("Changed", changes["changed"]),
        ("Disabled", changes["disabled"]),
        ("Removed", changes["removed"]),
    ]
    return render("mail.html", summary=summary, totals=rows, changes=change_rows, page_url=page_url)


class ReportMailer:
    """Sends a completed report's summary to ``REPORT_RECIPIENTS`` once per date."""

    def __init__(self, settings: ReportSettings, store: ReportStore, graph: GraphClient) -> None:
        self._settings = settings
        self._store = store
        self._graph = graph

    @property
    def enabled(self) -> bool:
        return bool(self._settings.report_recipients) and self._settings.report_sender is not None

    def __call__(self, date: dt.date, summary: dict[str, Any]) -> None:
        self.send_once(date, summary)

    def send_once(self, date: dt.date, summary: dict[str, Any]) -> str:
        """Send unless already sent or claimed. Returns the marker state (``sent``, ``claimed``, ``off``).

        Raises:
            GraphFunctionsError: Graph refused or failed the send (the marker says ``failed``).
        """
        if not self.enabled:
            return "off"
        marker = layout.blob(date, "mail.json")
        found = self._store.read_json(marker)
        claim = {"state": "sending", "at": _now(), "recipients": len(self._settings.report_recipients)}
        if found is not None:
            state = found[0].get("state")
            if state != "failed":
                return "sent" if state == "sent" else "claimed"
            if not self._store.replace_json(marker, claim, etag=found[1]):
                return "claimed"
        elif not self._store.create_json(marker, claim):
            return "claimed"
        base = self._settings.public_base_url
        page_url = f"{base}/reports?date={date.isoformat()}" if base else None
        message = {
            "message": {
                "subject": subject(summary),
                "body": {"contentType": "HTML", "content": html_body(summary, page_url)},
                "toRecipients": [{"emailAddress": {"address": a}} for a in self._settings.report_recipients],
            },
            "saveToSentItems": True,
        }
        sender = quote(self._settings.report_sender or "", safe="@")
        try:
            self._graph.post_json(f"/users/{sender}/sendMail", message)
        except GraphFunctionsError as error:
            self._store.put_json(marker, {"state": "failed", "at": _now(), "errorCode": error.code})
            raise
        self._store.put_json(marker, {"state": "sent", "at": _now(), "recipients": claim["recipients"]})
        logger.info("Report %s: summary mailed to %d recipients", date, claim["recipients"])
        return "sent"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
