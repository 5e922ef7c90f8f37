"""The operators' view of mail ingestion (``/subscriptions`` and ``GET /api/subscriptions``): each watched
target's subscription (resource, expiry, status), last notification, last lifecycle event and last
catch-up, from the notification table (one partition per tenant, never Graph)."""

from __future__ import annotations

from typing import Any

from shared.notifications.store import NotificationTable
from shared.web.pages import Page


def subscriptions_json(table: NotificationTable, tenant_id: str, mode: str) -> dict[str, Any]:
    """``{"mode", "value": [...]}``: every target of ``tenant_id``, the users subscription first, then
    mailboxes by UPN. Raises StorageUnavailable."""
    targets = sorted(table.targets(tenant_id), key=lambda t: (not t.is_users, t.upn or t.mailbox or ""))
    return {"mode": mode, "value": [target.to_json() for target in targets]}


def subscriptions_page(table: NotificationTable, tenant_id: str, mode: str) -> Page:
    """The ``/subscriptions`` page (same data as :func:`subscriptions_json`)."""
    data = subscriptions_json(table, tenant_id, mode)
    return Page(
        "subscriptions.html",
        {"title": "Subscriptions", "active": "subscriptions", "mode": mode, "rows": data["value"]},
    )
