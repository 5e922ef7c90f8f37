"""The report container: JSON blobs with conditional writes, the report dates present, and the run lease.

Every azure-storage failure leaves this module as :class:`~shared.core.errors.StorageUnavailable` (503),
never a raw azure exception, except the conflicts the callers branch on (returned as values).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from shared.core.errors import StorageUnavailable
from shared.report import layout

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient, BlobLeaseClient, BlobServiceClient, ContainerClient

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
#: Seconds a run's lease lasts without renewal (Azure allows 15-60): a crashed run frees the date this fast.
LEASE_SECONDS = 15
_RENEW_EVERY = 5.0


def _storage(action: str, call: Callable[[], _T]) -> _T:
    from azure.core.exceptions import AzureError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

    try:
        return call()
    except AzureError as exc:
        logger.error("Report storage failed while %s: %s", action, type(exc).__name__)
        raise StorageUnavailable(f"Report storage is unavailable ({action})") from exc


class ReportStore:
    """The container ``REPORT_CONTAINER`` of the app's storage account (created on first write)."""

    def __init__(self, service: BlobServiceClient, container: str) -> None:
        self._service = service
        self.container_name = container
        self._container: ContainerClient = service.get_container_client(container)
        self._created = False

    @property
    def service(self) -> BlobServiceClient:
        return self._service

    def blob(self, name: str) -> BlobClient:
        return self._container.get_blob_client(name)

    def ensure_container(self) -> None:
        from azure.core.exceptions import ResourceExistsError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        if self._created:
            return

        def create() -> None:
            with contextlib.suppress(ResourceExistsError):
                self._container.create_container()

        _storage("creating the report container", create)
        self._created = True

    def read_json(self, name: str) -> tuple[dict[str, Any], str] | None:
        """The JSON object stored at ``name`` and its ETag, None when absent (or the container is)."""
        from azure.core.exceptions import ResourceNotFoundError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        def read() -> tuple[dict[str, Any], str] | None:
            try:
                downloader = self.blob(name).download_blob()
            except ResourceNotFoundError:
                return None
            body = json.loads(downloader.readall())
            return (body if isinstance(body, dict) else {}), str(downloader.properties.etag)

        return _storage(f"reading {name}", read)

    def create_json(self, name: str, body: dict[str, Any]) -> bool:
        """Write ``body`` only if ``name`` does not exist (``If-None-Match: *``). False if it existed."""
        from azure.core.exceptions import ResourceExistsError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        def create() -> bool:
            try:
                self.blob(name).upload_blob(_encode(body), overwrite=False, content_settings=_json_settings())
            except ResourceExistsError:
                return False
            return True

        self.ensure_container()
        return _storage(f"creating {name}", create)

    def replace_json(self, name: str, body: dict[str, Any], *, etag: str | None) -> bool:
        """Overwrite ``name`` if its ETag is still ``etag`` (None: create it only if absent). False when
        another writer changed it in between."""
        from azure.core import MatchConditions  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        if etag is None:
            return self.create_json(name, body)

        def replace() -> bool:
            try:
                self.blob(name).upload_blob(
                    _encode(body),
                    overwrite=True,
                    etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                    content_settings=_json_settings(),
                )
            except (ResourceModifiedError, ResourceExistsError):
                return False
            return True

        return _storage(f"replacing {name}", replace)

    def put_json(self, name: str, body: dict[str, Any]) -> None:
        """Overwrite ``name`` unconditionally (status and state blobs, written by the lease holder)."""
        self.ensure_container()
        _storage(
            f"writing {name}",
            lambda: self.blob(name).upload_blob(
                _encode(body), overwrite=True, content_settings=_json_settings()
            ),
        )

    def delete(self, name: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        def delete() -> None:
            with contextlib.suppress(ResourceNotFoundError):
                self.blob(name).delete_blob()

        _storage(f"deleting {name}", delete)

    def leased(self, name: str) -> bool:
        """Whether blob ``name`` is under a live lease (a run holds it and keeps renewing it)."""
        from azure.core.exceptions import ResourceNotFoundError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        def state() -> bool:
            try:
                return str(self.blob(name).get_blob_properties().lease.state) == "leased"
            except ResourceNotFoundError:
                return False

        return _storage(f"checking the lease of {name}", state)

    def exists(self, name: str) -> bool:
        return _storage(f"checking {name}", lambda: bool(self.blob(name).exists()))

    def report_dates(self) -> list[dt.date]:
        """Every date with a ``users/D/`` folder, newest first (completed or not: check summary.json)."""
        from azure.core.exceptions import ResourceNotFoundError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        def walk() -> list[dt.date]:
            try:
                names = [item.name for item in self._container.walk_blobs(name_starts_with=layout.PREFIX)]
            except ResourceNotFoundError:
                return []
            return sorted(
                {d for name in names if (d := layout.date_of_prefix(name)) is not None}, reverse=True
            )

        return _storage("listing report dates", walk)

    @contextlib.contextmanager
    def lease(self, name: str) -> Iterator[BlobLeaseClient | None]:
        """Hold the lease of blob ``name`` (created if absent) for the block, renewed in the background;
        yields None when another run holds it. A crashed holder's lease lapses after LEASE_SECONDS."""
        from azure.core.exceptions import HttpResponseError, ResourceExistsError  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

        self.ensure_container()
        client = self.blob(name)

        def acquire() -> BlobLeaseClient | None:
            with contextlib.suppress(ResourceExistsError):
                client.upload_blob(b"", overwrite=False)
            try:
                return client.acquire_lease(lease_duration=LEASE_SECONDS)
            except HttpResponseError as exc:
                if exc.status_code == 409:  # LeaseAlreadyPresent
                    return None
                raise

        lease = _storage(f"leasing {name}", acquire)
        if lease is None:
            yield None
            return
        stop = threading.Event()
        renewer = threading.Thread(target=_renew, args=(lease, stop), name=f"lease-{name}", daemon=True)
        renewer.start()
        try:
            yield lease
        finally:
            stop.set()
            renewer.join()
            with contextlib.suppress(Exception):  # an unreleased lease lapses on its own
                lease.release()


def _renew(lease: BlobLeaseClient, stop: threading.Event) -> None:
    while not stop.wait(_RENEW_EVERY):
        try:
            lease.renew()
        except Exception as exc:  # keep renewing: the conditional commit guards the rest
            logger.warning("Renewing the report lease failed: %s", type(exc).__name__)


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=False).encode("utf-8")


def _json_settings() -> Any:
    from azure.storage.blob import ContentSettings  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

    return ContentSettings(content_type="application/json; charset=utf-8")
