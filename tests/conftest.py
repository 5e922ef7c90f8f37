"""Root fixtures: Azurite and devhost helpers, and the integration/fuzz session fixtures.

Registered here (not imported into conftest modules) so that one Azurite and one local tenant serve every
directory of a session.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.devhost.fixtures", "tests.integration.fixtures"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The log scan reads the logs every other test produced, so it runs last."""
    items.sort(key=lambda item: item.nodeid.startswith("tests/integration/test_log_scan.py"))
