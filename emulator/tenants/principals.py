"""Service principals of a multi-tenant app in the other organisations.

An app registration lives in its home tenant; another organisation holds only a *service principal* for
it, created by the first consent there (howto-convert-app-to-be-multi-tenant; v2-admin-consent). Until
then the organisation's directory answers for the app with a **pending view** (the registration's
redirect URIs, permissions and credentials, no service principal): the sign-in and consent pages can be
shown, consent turns the view into the service principal (:func:`materialize`), and the token endpoint
refuses it (AADSTS7000229, :func:`require_service_principal`).

A single-tenant registration (``AzureADMyOrg``) has no view in other organisations: the app is "not found
in the directory" (AADSTS700016), as for an app registered nowhere.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from emulator.clock import CLOCK
from emulator.directory.model import Application, ClientSecret, Directory

if TYPE_CHECKING:
    from emulator.entra.context import EntraError

MULTI_TENANT = "AzureADMultipleOrgs"

#: Fields that belong to the app registration (the application object in the home tenant): a service
#: principal in another organisation always shows their current values.
_REGISTRATION_FIELDS = (
    "display_name",
    "is_public",
    "access_token_version",
    "identifier_uris",
    "app_roles",
    "delegated_scopes",
    "secrets",
    "certificates",
    "federated_credentials",
    "redirect_uris",
    "post_logout_redirect_uris",
    "required_permissions",
    "sign_in_audience",
    "optional_claims",
)


@dataclass
class OrganizationDirectory(Directory):
    """A customer organisation's directory: apps registered elsewhere appear through their service
    principals, or as a pending view while none exists."""

    #: The home tenant's app registrations by client id (a callable: a reset replaces the home directory).
    registrations: Callable[[str], Application | None] = field(default=lambda _app_id: None)
    #: Pending views by client id, kept so repeated lookups within a flow see one object.
    pending: dict[str, Application] = field(default_factory=dict)
    #: Whether members may consent to apps themselves. Off by default, as for an app of an unverified
    #: publisher under Microsoft's current default consent setting: members get "Need admin approval".
    user_consent: bool = False
    #: Client ids of apps registered in this organisation itself (a customer's own service calling the app).
    local_apps: set[str] = field(default_factory=set)

    def registration(self, app_id: str) -> Application | None:
        """The home registration of a multi-tenant app (None: unknown, single-tenant, or not an app)."""
        reg = self.registrations(app_id)
        if reg is None or reg.is_managed_identity or reg.is_first_party_resource:
            return None
        return reg if reg.sign_in_audience == MULTI_TENANT else None

    def app(self, app_id: str) -> Application | None:
        own = self.apps.get(app_id)
        reg = self.registration(app_id)
        if own is not None:
            if own.is_first_party_resource or app_id in self.local_apps:
                return own
            if reg is None:  # the registration went single-tenant (or away): unusable here
                return None
            _sync(own, reg)
            return own
        if reg is None:
            return None
        view = self.pending.get(app_id)
        if view is None:
            view = dataclasses.replace(
                reg,
                sp_id=str(uuid.uuid4()),  # a new object at each (re-)consent, as in Entra
                enabled=True,
            )
            self.pending[app_id] = view
        _sync(view, reg)
        return view

    def has_service_principal(self, app_id: str) -> bool:
        return app_id in self.apps


def _sync(sp: Application, reg: Application) -> None:
    for name in _REGISTRATION_FIELDS:
        setattr(sp, name, getattr(reg, name))


def materialize(directory: Directory, app: Application) -> Application:
    """Consent creates the service principal: a pending view becomes the organisation's service principal
    (same ``sp_id``); anything else is returned unchanged."""
    pending = isinstance(directory, OrganizationDirectory) and directory.pending.get(app.app_id) is app
    if isinstance(directory, OrganizationDirectory) and pending and app.app_id not in directory.apps:
        directory.pending.pop(app.app_id)
        directory.apps[app.app_id] = app
    return app


def remove_service_principal(directory: OrganizationDirectory, app_id: str) -> bool:
    """Delete the service principal with its app role assignments and delegated grants (the enterprise
    app deleted in the customer's portal). Returns whether there was one."""
    sp = directory.apps.pop(app_id, None)
    directory.pending.pop(app_id, None)
    if sp is None:
        return False
    directory.app_role_assignments[:] = [
        a for a in directory.app_role_assignments if a.principal_id != sp.sp_id
    ]
    directory.delegated_grants[:] = [g for g in directory.delegated_grants if g.client_app_id != app_id]
    return True


def require_service_principal(directory: Directory, app: Application) -> None:
    """Raise AADSTS7000229 when a multi-tenant app asks for a token in an organisation holding no service
    principal for it (Azure/Commercial-Marketplace-SaaS-Accelerator#830; Azure/azure-sdk-for-net#46762:
    ``invalid_client``; HTTP 401 **[INFERRED]**, as for the other ``invalid_client`` errors)."""
    if isinstance(directory, OrganizationDirectory) and not directory.has_service_principal(app.app_id):
        raise missing_service_principal(app.app_id, directory.tenant_id)


def missing_service_principal(app_id: str, tenant_id: str) -> EntraError:
    from emulator.entra.context import fail  # lazily: entra.context imports the state, which imports this

    return fail(
        7000229,
        "invalid_client",
        f"The client application {app_id} is missing service principal in the tenant {tenant_id}. See "
        "instructions here: https://go.microsoft.com/fwlink/?linkid=2225119",
        status=401,
    )


def user_consent_allowed(directory: Directory) -> bool:
    """Whether a non-admin may consent for themselves here (the home tenant: yes, as before)."""
    return not isinstance(directory, OrganizationDirectory) or directory.user_consent


def register_client(
    directory: OrganizationDirectory, name: str, *, required: dict[str, tuple[str, ...]]
) -> tuple[Application, str]:
    """Register a single-tenant confidential client in ``directory`` (with its service principal there);
    ``required``: resource app id -> application permissions it lists. Returns it and its secret value."""
    now = CLOCK.now()
    secret = secrets.token_urlsafe(30)
    client = Application(
        app_id=str(uuid.uuid4()),
        object_id=str(uuid.uuid4()),
        sp_id=str(uuid.uuid4()),
        display_name=name[:120],
        secrets=[ClientSecret(str(uuid.uuid4()), "control API", secret, now, now + dt.timedelta(days=365))],
        required_permissions={rid: {"scopes": (), "roles": roles} for rid, roles in required.items()},
    )
    directory.apps[client.app_id] = client
    directory.local_apps.add(client.app_id)
    return client, secret
