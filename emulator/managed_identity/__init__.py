"""The App Service / Azure Functions managed-identity endpoint of the local tenant (``IDENTITY_ENDPOINT``).

Module: :mod:`endpoint`. Documented in ``emulator/docs/vault-identity-sharepoint.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emulator.managed_identity.endpoint import IdentityApp
    from emulator.state import EmulatorState


def build_app(state: EmulatorState) -> IdentityApp:
    """The managed-identity origin's ASGI app."""
    from emulator.managed_identity.endpoint import build_app as build

    return build(state)
