"""The local tenant: a strict, offline HTTPS emulator of Entra ID v2, Microsoft Graph, Key Vault,
SharePoint and the App Service managed-identity endpoint.

Dev-only. Production code never imports this package. Start it with ``python -m emulator``.
"""

__version__ = "0.1.0"
