"""Short-lived, read-only SAS URLs of a report's CSVs, so the API answers ``303 See Other`` and the file
goes from Blob Storage to the caller without passing through (or being held in) the worker's memory.

* **Identity-based storage** (production: ``AzureWebJobsStorage__accountName`` / service URIs and a managed
  identity; no account key exists): a **user-delegation SAS**, signed with a user delegation key fetched
  with the identity (``Get User Delegation Key``; needs the *Storage Blob Delegator* action, included in
  *Storage Blob Data Reader/Contributor*). The key is cached for its first half-life.
* **Key-based connection strings** (Azurite locally, or an account still on keys): a service SAS signed
  with the account key. Azurite refuses ``Get User Delegation Key`` without a bearer token, as Azure does
  ("Only authentication scheme Bearer is supported"), so the key-signed SAS is the form that works there.

Either way: read permission only, on that one blob, ``https`` only where the endpoint is https, valid
from one minute ago (clock skew) for :data:`LIFETIME`, with ``Content-Disposition: attachment``.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

from shared.core.errors import NotFound
from shared.report import layout
from shared.report.store import ReportStore, _storage

LIFETIME = dt.timedelta(minutes=5)
_KEY_LIFETIME = dt.timedelta(hours=2)


def download_name(date: dt.date, name: str) -> str:
    """``users-2026-12-01.csv``: the file name a browser saves."""
    return f"{name.removesuffix('.csv')}-{date.isoformat()}.csv"


class CsvLinks:
    """Builds the SAS URL of ``users.csv`` / ``changes.csv`` of a completed report."""

    def __init__(
        self, store: ReportStore, *, now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    ):
        self._store = store
        self._now = now
        self._lock = threading.Lock()
        self._key: Any = None
        self._key_renew_at: dt.datetime | None = None

    @property
    def signer(self) -> str:
        """``account-key`` or ``user-delegation``: how this deployment's links are signed."""
        return "account-key" if self._account_key() is not None else "user-delegation"

    def url(self, date: dt.date, name: str) -> str:
        """The SAS URL of ``name`` in the report of ``date``.

        Raises:
            NotFound: ``report_not_found`` when the report of that date is not complete.
            StorageUnavailable: storage (or the user delegation key request) failed.
        """
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        summary = self._store.read_json(layout.blob(date, "summary.json"))
        if summary is None:
            raise NotFound(f"There is no completed report for {date.isoformat()}", code="report_not_found")
        blob_name = layout.report_blob(date, summary[0], name)
        now = self._now()
        options: dict[str, Any] = {
            "permission": BlobSasPermissions(read=True),
            "start": now - dt.timedelta(minutes=1),
            "expiry": now + LIFETIME,
            "content_disposition": f'attachment; filename="{download_name(date, name)}"',
            "content_type": "text/csv; charset=utf-8",
        }
        client = self._store.blob(blob_name)
        if client.url.startswith("https://"):
            options["protocol"] = "https"
        key = self._account_key()
        if key is not None:
            options["account_key"] = key
        else:
            options["user_delegation_key"] = self._delegation_key(now)
        token = generate_blob_sas(
            str(self._store.service.account_name), self._store.container_name, blob_name, **options
        )
        return f"{client.url}?{token}"

    def _account_key(self) -> str | None:
        credential = getattr(self._store.service, "credential", None)
        key = getattr(credential, "account_key", None)
        return key if isinstance(key, str) and key else None

    def _delegation_key(self, now: dt.datetime) -> Any:
        with self._lock:
            if self._key is None or self._key_renew_at is None or now >= self._key_renew_at:
                self._key = _storage(
                    "getting a user delegation key",
                    lambda: self._store.service.get_user_delegation_key(
                        now - dt.timedelta(minutes=1), now + _KEY_LIFETIME
                    ),
                )
                self._key_renew_at = now + _KEY_LIFETIME / 2
            return self._key
