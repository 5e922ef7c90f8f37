"""Start-up options of the local tenant and the origins derived from them.

Each service has its own HTTPS origin (its own port) so that token audiences stay distinct exactly as
in the cloud: Graph tokens are minted for the Graph origin, SharePoint tokens for the SharePoint origin.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

#: Offsets from ``--port`` of each service's port. Kept stable: tests and docs name them.
SERVICE_OFFSETS: dict[str, int] = {
    "login": 0,  # Entra ID v2 (authority host) and the control API under /_emulator
    "graph": 1,
    "vault": 2,
    "sharepoint": 3,
    "identity": 4,  # App Service managed-identity endpoint
}

CONTROL_PREFIX = "/_emulator"
#: Values of an app registration's ``signInAudience`` the local tenant supports.
SIGN_IN_AUDIENCES = ("AzureADMyOrg", "AzureADMultipleOrgs")
LOOPBACK = "127.0.0.1"

#: Real first-party resource identifiers the emulator also recognises.
GRAPH_CLOUD_AUDIENCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
SHAREPOINT_APP_ID = "00000003-0000-0ff1-ce00-000000000000"
VAULT_AUDIENCE = "https://vault.azure.net"
STORAGE_AUDIENCE = "https://storage.azure.com"
TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"


#: Production host names served in ``--production-hostnames`` mode (all on port 443, told apart by the
#: Host header), so a client run with a private hosts file needs zero endpoint overrides.
PRODUCTION_HOSTS: dict[str, str] = {
    "login": "login.microsoftonline.com",
    "graph": "graph.microsoft.com",
    "vault": "kv-graph-functions.vault.azure.net",
    "sharepoint": "contoso.sharepoint.com",
}
#: Names on the server certificate in that mode (the wildcards cover other vault and tenant names).
PRODUCTION_SANS: tuple[str, ...] = (*PRODUCTION_HOSTS.values(), "*.vault.azure.net", "*.sharepoint.com")


@dataclasses.dataclass(frozen=True)
class Lifetimes:
    """Token and artefact lifetimes in seconds (configurable so tests can exercise expiry)."""

    access_token: int = 3600
    id_token: int = 3600
    refresh_token: int = 90 * 24 * 3600
    auth_code: int = 600
    managed_identity: int = 24 * 3600


@dataclasses.dataclass(frozen=True)
class EmulatorConfig:
    """Everything the command line decides. Frozen: runtime changes go through the control API."""

    port: int = 8443
    host: str = LOOPBACK
    state_dir: Path = Path(".local/tenant")
    env_file: Path | None = None
    users: int = 25
    seed: int = 42
    lifetimes: Lifetimes = dataclasses.field(default_factory=Lifetimes)
    production_hostnames: bool = False
    #: Customer organisations seeded besides the home tenant (the first is the customer of the env file).
    tenants: int = 1
    #: ``signInAudience`` of Graph Functions' registration: AzureADMyOrg (single tenant) or
    #: AzureADMultipleOrgs (``make run`` with ENTRA_TENANCY=multi).
    sign_in_audience: str = "AzureADMyOrg"

    def port_of(self, service: str) -> int:
        if self.production_hostnames and service in PRODUCTION_HOSTS:
            return 443
        return self.port + SERVICE_OFFSETS[service]

    def origin(self, service: str) -> str:
        if self.production_hostnames and service in PRODUCTION_HOSTS:
            return f"https://{PRODUCTION_HOSTS[service]}"
        return f"https://{self.host}:{self.port_of(service)}"

    @property
    def control_origin(self) -> str:
        """Where tests reach the control API: the identity origin stays on loopback in every mode."""
        return self.origin("identity") if self.production_hostnames else self.origin("login")

    @property
    def authority_host(self) -> str:
        return self.origin("login")

    @property
    def graph_origin(self) -> str:
        return self.origin("graph")

    @property
    def vault_origin(self) -> str:
        return self.origin("vault")

    @property
    def sharepoint_origin(self) -> str:
        return self.origin("sharepoint")

    @property
    def identity_endpoint(self) -> str:
        return f"{self.origin('identity')}/msi/token"
