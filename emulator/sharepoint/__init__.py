"""SharePoint Online REST of the local tenant, on its own origin (``SHAREPOINT_SITE_URL``).

Modules: :mod:`api` (the ``/_api`` endpoints), :mod:`odata` (content negotiation and the OData
serialisations), :mod:`people` (site user and user profile entities).
Documented in ``emulator/docs/vault-identity-sharepoint.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emulator.sharepoint.api import SharePointApp
    from emulator.state import EmulatorState


def build_app(state: EmulatorState) -> SharePointApp:
    """The SharePoint origin's ASGI app."""
    from emulator.sharepoint.api import build_app as build

    return build(state)
