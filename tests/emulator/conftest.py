"""Fixtures for the local tenant's own tests: one emulator process per test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
