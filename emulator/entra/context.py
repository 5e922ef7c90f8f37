"""Shared pieces of the Entra service: tenant resolution, endpoint URLs, the rejection exception."""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from emulator.directory.model import Application
from emulator.errors import aadsts
from emulator.state import EmulatorState

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class EntraError(Exception):
    """Abort a handler with a ready response (an AADSTS JSON error, an error page, an error redirect)."""

    def __init__(self, response: Response) -> None:
        super().__init__(getattr(response, "status_code", 400))
        self.response = response


def fail(
    code: int, error: str, message: str, *, status: int = 400, suberror: str | None = None
) -> EntraError:
    """A token-endpoint style rejection (``{"error", "error_description": "AADSTS…", "error_codes"…}``)."""
    return EntraError(aadsts(code, error, message, status=status, suberror=suberror))


def missing_parameter(name: str) -> EntraError:
    return fail(
        900144, "invalid_request", f"The request body must contain the following parameter: '{name}'."
    )


@dataclass(frozen=True)
class Tenant:
    """The ``{tenant}`` path segment, resolved."""

    segment: str  # as sent
    kind: str  # "tenant" (id or verified domain) | "common" | "organizations"
    tenant_id: str

    @property
    def path(self) -> str:
        """The segment endpoints are published under: the tenant id, or ``common``/``organizations``."""
        return self.tenant_id if self.kind == "tenant" else self.kind


def resolve_tenant(state: EmulatorState, segment: str) -> Tenant | None:
    d = state.directory
    wanted = segment.lower()
    if wanted in (d.tenant_id.lower(), d.domain.lower()):
        return Tenant(segment, "tenant", d.tenant_id)
    if wanted in ("common", "organizations"):
        return Tenant(segment, wanted, d.tenant_id)
    return None  # consumers, other tenants and unknown domains: this emulator hosts one work tenant


def unknown_tenant_message(segment: str) -> str:
    return (
        f"Tenant '{segment}' not found. Check to make sure you have the correct tenant ID and are signing "
        "into the correct cloud. Check with your subscription administrator, this may happen if there are "
        "no active subscriptions for the tenant."
    )


def require_tenant(state: EmulatorState, request: Request, error: str = "invalid_request") -> Tenant:
    segment = request.path_params["tenant"]
    tenant = resolve_tenant(state, segment)
    if tenant is None:
        raise fail(90002, error, unknown_tenant_message(segment))
    return tenant


SINGLE_TENANT_MESSAGE = (
    "Application '{app_id}'({name}) is not configured as a multi-tenant application. Usage of the /common "
    "endpoint is not supported for such applications created after '10/15/2018'. Use a tenant-specific "
    "endpoint or configure the application to be multi-tenant."
)


def single_tenant_refused(client: Application, tenant: Tenant) -> str | None:
    """The AADSTS50194 message when a single-tenant app (``signInAudience`` AzureADMyOrg) signs users in
    under ``/common`` or ``/organizations``; None when allowed."""
    if tenant.kind == "tenant" or client.sign_in_audience != "AzureADMyOrg":
        return None
    return SINGLE_TENANT_MESSAGE.format(app_id=client.app_id, name=client.display_name)


def find_app(state: EmulatorState, client_id: str) -> Application | None:
    """An application by client id; GUIDs compare case-insensitively, as Entra's do."""
    return state.directory.app(client_id) or state.directory.app(client_id.lower())


def host(state: EmulatorState) -> str:
    return state.config.authority_host


def token_endpoint(state: EmulatorState, tenant_path: str) -> str:
    return f"{host(state)}/{tenant_path}/oauth2/v2.0/token"


def token_endpoint_audiences(state: EmulatorState, tenant: Tenant) -> set[str]:
    """``aud`` values a client assertion may carry: this token endpoint under the tenant id, the verified
    domain or the segment the request used (compared case-insensitively, trailing slash ignored)."""
    segments = {tenant.segment, state.directory.tenant_id, state.directory.domain}
    return {token_endpoint(state, s).lower() for s in segments}


def auth_code_lifetime(state: EmulatorState) -> int:
    from emulator.entra.store import get_store

    value = get_store(state).settings.auth_code_lifetime
    return state.config.lifetimes.auth_code if value is None else value


def refresh_token_lifetime(state: EmulatorState) -> int:
    from emulator.entra.store import get_store

    value = get_store(state).settings.refresh_token_lifetime
    return state.config.lifetimes.refresh_token if value is None else value


def attribute(request: Request, *, client_id: str | None = None, grant_type: str | None = None) -> None:
    """Name the client (and grant) on the request so the log and counters attribute it."""
    if client_id:
        request.state.client_id = client_id[:64]
    if grant_type:
        request.state.grant_type = grant_type[:64]
