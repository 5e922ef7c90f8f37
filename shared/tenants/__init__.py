"""Several organisations (``ENTRA_TENANCY=multi``): the onboarded-organisation registry, the tenant
directory backed by it (the allow-list), onboarding by admin consent, operators' suspension and
offboarding, revoked-consent detection and the daily report's fan-out."""

from shared.tenants.directory import RegistryDirectory, refusal, storage_prefix, tenant_of
from shared.tenants.fanout import FanOut, fan_out, tenant_of_message
from shared.tenants.management import ACTIONS, TenantAdmin, actions_for
from shared.tenants.onboarding import (
    ONBOARD_CALLBACK_PATH,
    ONBOARD_PATH,
    REQUIRED_ROLES,
    Onboarding,
    start_page,
)
from shared.tenants.registry import STATUSES, Organisation, Status, TenantRegistry
from shared.tenants.revocation import RevocationWatch

__all__ = [
    "ACTIONS",
    "ONBOARD_CALLBACK_PATH",
    "ONBOARD_PATH",
    "REQUIRED_ROLES",
    "STATUSES",
    "FanOut",
    "Onboarding",
    "Organisation",
    "RegistryDirectory",
    "RevocationWatch",
    "Status",
    "TenantAdmin",
    "TenantRegistry",
    "actions_for",
    "fan_out",
    "refusal",
    "start_page",
    "storage_prefix",
    "tenant_of",
    "tenant_of_message",
]
