"""Fixtures for the local tenant's own tests: one emulator process per test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.emulator.webhook_receiver import Receiver, https_receiver
from tests.support.tenant import LocalTenant, trusted_tenant


@pytest.fixture(scope="session")
def tenant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTenant]:
    with trusted_tenant(Path(tmp_path_factory.mktemp("tenant")), users=60) as t:
        yield t


@pytest.fixture
def fresh(tenant: LocalTenant) -> Iterator[LocalTenant]:
    """The tenant, reset to its seeded state after the test (for tests that mutate it)."""
    try:
        yield tenant
    finally:
        tenant.reset()


@pytest.fixture(scope="module")
def receiver(tenant: LocalTenant) -> Iterator[Receiver]:
    """A loopback HTTPS webhook receiver trusted by the tenant (change-notification tests)."""
    from tests.emulator.notify_kit import HTTP

    with https_receiver(tenant.state_dir) as r:
        yield r
    HTTP.close()  # let the tenant shut down without waiting for our idle keep-alive connection


@pytest.fixture
def hook(fresh: LocalTenant, receiver: Receiver) -> Iterator[Receiver]:
    """The receiver, cleared, against a tenant whose deliveries run only on flush (deterministic)."""
    receiver.clear()
    fresh.control("PUT", "/graph/notifications/settings", {"autoDeliver": False})
    yield receiver
    receiver.clear()
