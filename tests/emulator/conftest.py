"""Fixtures for the local tenant's own tests: one emulator process per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.tenant import LocalTenant, start_tenant


@pytest.fixture(scope="session")
def tenant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTenant]:
    t = start_tenant(Path(tmp_path_factory.mktemp("tenant")), users=60)
    previous = t.trust()
    try:
        yield t
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        t.stop()


@pytest.fixture
def fresh(tenant: LocalTenant) -> Iterator[LocalTenant]:
    """The tenant, reset to its seeded state after the test (for tests that mutate it)."""
    try:
        yield tenant
    finally:
        tenant.reset()
