"""The tenant directory of a multi-tenant deployment: the home tenant always, and every onboarded,
active organisation of the :class:`~shared.tenants.registry.TenantRegistry` (the allow-list).

An organisation that is not served gets a 403 whose code says why and what to do:

* never onboarded: ``tenant_not_onboarded`` (its administrator can onboard at ``/onboard``);
* ``suspended`` / ``offboarded`` by this app's operator: ``tenant_suspended`` / ``tenant_offboarded``;
* ``consent_revoked``: ``tenant_consent_revoked`` (an administrator re-onboards at ``/onboard``).

Each organisation's data lives under its own prefix (:attr:`~shared.identity.tenancy.Tenant.
storage_prefix` = ``t{tenant id without dashes}``): report blobs and audit partitions; the home tenant
keeps the empty prefix, so a single-tenant deployment's data keeps its layout.
"""

from __future__ import annotations

from collections.abc import Iterator

from shared.core.errors import TenantRefused
from shared.core.patterns import is_guid
from shared.identity.tenancy import Tenant, TenantDirectory
from shared.tenants.registry import Organisation, TenantRegistry

NOT_ONBOARDED = (
    "Your organisation has not onboarded this app. An administrator of your organisation can onboard it "
    "at /onboard."
)


def storage_prefix(tenant_id: str) -> str:
    """The prefix of an onboarded organisation's blobs and audit partitions (letters and digits only,
    valid in a blob name and a table key)."""
    return "t" + tenant_id.lower().replace("-", "")


def tenant_of(authority_host: str, tenant_id: str) -> Tenant:
    """The :class:`Tenant` of an onboarded organisation."""
    key = tenant_id.lower()
    return Tenant(tenant_id=key, authority=f"{authority_host}/{key}", storage_prefix=storage_prefix(key))


def refusal(org: Organisation | None) -> TenantRefused:
    """Why ``org`` (None: never onboarded) is not served."""
    status = org.status if org is not None else None
    if status == "suspended":
        return TenantRefused(
            "Your organisation's access to this app is suspended by the app's operator. Contact them to "
            "resume it.",
            code="tenant_suspended",
        )
    if status == "offboarded":
        return TenantRefused(
            "Your organisation was offboarded from this app. An administrator of your organisation can "
            "onboard it again at /onboard.",
            code="tenant_offboarded",
        )
    if status == "consent_revoked":
        return TenantRefused(
            "Your organisation removed this app's consent (or the app itself), so the app can no longer act "
            "in it. An administrator of your organisation can restore access by onboarding again at "
            "/onboard.",
            code="tenant_consent_revoked",
        )
    return TenantRefused(NOT_ONBOARDED, code="tenant_not_onboarded")


class RegistryDirectory(TenantDirectory):
    """The home tenant plus the registry's active organisations (module docstring)."""

    def __init__(self, home: Tenant, registry: TenantRegistry, *, authority_host: str) -> None:
        super().__init__(home)
        self._registry = registry
        self._host = authority_host

    def get(self, tenant_id: str) -> Tenant:
        """The tenant ``tenant_id`` if it is served.

        Raises:
            TenantRefused: not onboarded, or not active (403, code per status).
            StorageUnavailable: the registry cannot be read (503).
        """
        key = tenant_id.lower()
        if key == self.home.tenant_id:
            return self.home
        if not is_guid(key):
            raise TenantRefused(NOT_ONBOARDED, code="tenant_not_onboarded")
        org = self._registry.get(key)
        if org is None or not org.active:
            raise refusal(org)
        return tenant_of(self._host, key)

    def organisation(self, tenant_id: str) -> Organisation | None:
        """The registry's row of ``tenant_id`` (None for the home tenant and the never onboarded)."""
        return self._registry.get(tenant_id)

    def __iter__(self) -> Iterator[Tenant]:
        """The home tenant, then every active organisation."""
        yield self.home
        for org in self._registry.active():
            if org.tenant_id != self.home.tenant_id:
                yield tenant_of(self._host, org.tenant_id)
