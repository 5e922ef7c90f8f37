"""The organisations this deployment serves: the :class:`TenantDirectory`.

Today it holds one tenant, ``ENTRA_TENANT_ID`` (the home tenant, where the app is registered). Every
per-tenant service set (:mod:`shared.app.tenants`) is keyed by a :class:`Tenant` from here, so serving
several organisations means adding entries, not threading a tenant id through the code.
"""

from __future__ import annotations

from collections.abc import Iterator

from shared.core.errors import Unauthenticated
from shared.core.records import Record


class Tenant(Record):
    """One organisation.

    Attributes:
        tenant_id: the directory (tenant) id.
        authority: ``{authority host}/{tenant_id}``: where its tokens and signing keys come from.
        storage_prefix: prefix of this tenant's blobs (report) and audit partitions; empty for the home
            tenant, so a single-tenant deployment's data keeps its layout.
    """

    tenant_id: str
    authority: str
    storage_prefix: str = ""

    @property
    def metadata_url(self) -> str:
        """The tenant's OpenID configuration (issuer, signing keys)."""
        return f"{self.authority}/v2.0/.well-known/openid-configuration"


class TenantDirectory:
    """The tenants served, by id. Immutable once built."""

    def __init__(self, home: Tenant, others: tuple[Tenant, ...] = ()) -> None:
        self._home = home
        self._by_id = {tenant.tenant_id: tenant for tenant in (home, *others)}

    @classmethod
    def single(cls, *, tenant_id: str, authority: str) -> TenantDirectory:
        """A directory of one tenant (``ENTRA_TENANT_ID`` at ``authority``)."""
        return cls(Tenant(tenant_id=tenant_id, authority=authority))

    @property
    def home(self) -> Tenant:
        return self._home

    def get(self, tenant_id: str) -> Tenant:
        """The tenant ``tenant_id``.

        Raises:
            Unauthenticated: the deployment does not serve that tenant (401).
        """
        tenant = self._by_id.get(tenant_id.lower())
        if tenant is None:
            raise Unauthenticated("The caller's organisation is not served by this app")
        return tenant

    def __iter__(self) -> Iterator[Tenant]:
        return iter(self._by_id.values())
