"""What changed since the previous report, from the users **delta query** (``GET /users/delta``).

Required Graph permission: ``User.Read.All`` (application).

* The previous report's deltaLink (kept in its ``delta.json``, never served) is followed with ``Prefer:
  return=minimal`` (added by :class:`shared.report.transport.ReportTransport`), so a changed user comes
  with only the properties that changed: they are the ``changedFields`` column. A user created since comes
  in full (its ``createdDateTime`` is present): ``added``. ``@removed`` is ``removed`` (reason ``changed``:
  soft-deleted, restorable for 30 days; ``deleted``: permanent). Names of changed users are looked up in
  batches (``$filter=id in (...)``), since a minimal change does not carry them.
* No previous report: the baseline is set with ``$deltatoken=latest`` (no full sync needed) and the
  summary says so; changes appear from the next report.
* A deltaLink Graph no longer accepts (``400 syncStateNotFound``, documented for identity resources after
  7 days; ``410 Gone`` / ``resyncRequired`` elsewhere; an expired ``$skiptoken`` mid-round): **full resync**,
  i.e. a new baseline with ``$deltatoken=latest``, the changes written so far discarded, and the summary
  saying why. The report itself never fails for it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any, Literal

from shared.core.errors import UpstreamError
from shared.report.cells import cell
from shared.report.csv_blob import BlockCsvWriter
from shared.report.listing import USER_FIELDS, PageFetcher

logger = logging.getLogger(__name__)

CHANGE_COLUMNS: tuple[str, ...] = (
    "change",
    "id",
    "userPrincipalName",
    "displayName",
    "changedFields",
    "accountEnabled",
    "removedReason",
)
#: Properties tracked by the delta query: the report's fields (only selected properties are tracked).
TRACKED = tuple(name for name in USER_FIELDS if name != "id")
EXPIRED_CODES = frozenset(
    {"syncStateNotFound", "SyncStateNotFound", "resyncRequired", "Directory_ExpiredPageToken"}
)
_NAME_BATCH = 15  # ids per "$filter=id in (...)" lookup

Mode = Literal["baseline", "delta", "resync"]


@dataclasses.dataclass
class DeltaOutcome:
    mode: Mode
    delta_link: str
    added: int = 0
    changed: int = 0
    removed: int = 0
    disabled: int = 0
    enabled: int = 0
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "disabled": self.disabled,
            "enabled": self.enabled,
            "note": self.note,
        }


def is_expired(exc: UpstreamError) -> bool:
    """True when Graph refused a delta or page token because its sync state is gone."""
    return exc.graph_code in EXPIRED_CODES or exc.message.endswith("HTTP 410")


def _links(body: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None, str | None]:
    items = body.get("value")
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise UpstreamError("Microsoft Graph returned a delta page without a 'value' list")
    next_link, delta_link = body.get("@odata.nextLink"), body.get("@odata.deltaLink")
    return (
        items,
        next_link if isinstance(next_link, str) and next_link else None,
        delta_link if isinstance(delta_link, str) and delta_link else None,
    )


def baseline(fetcher: PageFetcher) -> str:
    """A deltaLink for the directory's current state (``$deltatoken=latest``)."""
    body = fetcher.body("/users/delta", {"$deltatoken": "latest", "$select": ",".join(TRACKED)})
    _, next_link, delta_link = _links(body)
    while next_link:  # "latest" answers one page; follow defensively
        _, next_link, delta_link = _links(fetcher.body(next_link))
    if delta_link is None:
        raise UpstreamError("Microsoft Graph ended a delta round without a deltaLink")
    return delta_link


def record_changes(
    fetcher: PageFetcher,
    previous_link: str | None,
    new_writer: Callable[[], BlockCsvWriter],
) -> tuple[DeltaOutcome, BlockCsvWriter]:
    """Write changes.csv rows since ``previous_link``; returns the outcome (with the new deltaLink) and the
    writer holding the rows (not committed). See the module docstring for baseline and resync."""
    writer = new_writer()
    if previous_link is None:
        note = "First report: the change baseline was set now; changes appear from the next report on."
        return DeltaOutcome("baseline", baseline(fetcher), note=note), writer
    outcome = DeltaOutcome("delta", "")
    try:
        link: str | None = previous_link
        while link is not None:
            items, next_link, delta_link = _links(fetcher.body(link))
            _write_page(fetcher, items, writer, outcome)
            if next_link is None:
                if delta_link is None:
                    raise UpstreamError("Microsoft Graph ended a delta round without a deltaLink")
                outcome.delta_link = delta_link
            link = next_link
    except UpstreamError as exc:
        if not is_expired(exc):
            raise
        logger.warning("The previous deltaLink expired (%s): full resync with a new baseline", exc.graph_code)
        note = (
            f"Change tracking restarted: Microsoft Graph no longer accepted the previous report's deltaLink "
            f"({exc.graph_code or 'expired'}); a new baseline was set, so this report lists no changes."
        )
        return DeltaOutcome("resync", baseline(fetcher), note=note), new_writer()
    return outcome, writer


def _write_page(
    fetcher: PageFetcher, items: list[dict[str, Any]], writer: BlockCsvWriter, outcome: DeltaOutcome
) -> None:
    rows: list[tuple[str, dict[str, Any]]] = []
    for item in items:
        if "@removed" in item:
            removed = item.get("@removed")
            reason = removed.get("reason") if isinstance(removed, dict) else None
            outcome.removed += 1
            writer.write(["removed", cell(item.get("id")), "", "", "", "", cell(reason)])
            continue
        fields = sorted(
            name for name in item if name != "id" and not name.startswith("@") and "@" not in name
        )
        if "createdDateTime" in item:
            kind = "added"
            outcome.added += 1
        else:
            kind = "changed"
            outcome.changed += 1
            if item.get("accountEnabled") is False:
                outcome.disabled += 1
            elif item.get("accountEnabled") is True:
                outcome.enabled += 1
        rows.append((kind, item | {"_fields": fields}))
    names = _names(
        fetcher, [item["id"] for kind, item in rows if kind == "changed" and "userPrincipalName" not in item]
    )
    for kind, item in rows:
        known = names.get(str(item.get("id")), {})
        writer.write(
            [
                kind,
                cell(item.get("id")),
                cell(item.get("userPrincipalName", known.get("userPrincipalName"))),
                cell(item.get("displayName", known.get("displayName"))),
                cell(";".join(item["_fields"]) if kind == "changed" else ""),
                cell(item.get("accountEnabled")),
                "",
            ]
        )


def _names(fetcher: PageFetcher, ids: list[Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    clean = [str(i) for i in ids if isinstance(i, str) and i.replace("-", "").isalnum()]
    for start in range(0, len(clean), _NAME_BATCH):
        chunk = clean[start : start + _NAME_BATCH]
        quoted = ",".join(f"'{i}'" for i in chunk)
        params = {"$filter": f"id in ({quoted})", "$select": "id,userPrincipalName,displayName"}
        page = fetcher.page("/users", params)
        for user in page.items:
            found[str(user.get("id"))] = user
    return found
