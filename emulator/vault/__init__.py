"""Azure Key Vault (secrets data plane) of the local tenant, on its own origin (``KEY_VAULT_URL``).

Modules: :mod:`api` (the data plane), :mod:`wire` (SecretBundle / SecretItem shapes, body parsing,
paging), :mod:`store` (secret versions and access rules), :mod:`control` (control routes).
Documented in ``emulator/docs/vault-identity-sharepoint.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emulator.state import EmulatorState
    from emulator.vault.api import VaultApp


def build_app(state: EmulatorState) -> VaultApp:
    """The vault origin's ASGI app (imported lazily: the state module imports :mod:`store`)."""
    from emulator.vault.api import build_app as build

    return build(state)
