"""What operators of the home tenant do to onboarded organisations from ``/tenants`` (app role
``Tenants.Manage``): suspend, resume and offboard. Each change is recorded in the registry first and then
drops what the process holds for that organisation: its services and its cached app tokens (its realm
only; every other organisation keeps its tokens). Its callers are refused at once in this process, and in
another instance within the registry's cache period (:data:`~shared.tenants.registry.CACHE_SECONDS`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from shared.core.errors import BadRequest, Forbidden
from shared.core.patterns import is_guid
from shared.identity.principal import Principal
from shared.tenants.registry import Organisation, Status, TenantRegistry
from shared.web.pages import Page

logger = logging.getLogger(__name__)

#: action -> (status it sets, statuses it applies to, label, what the page says after it)
ACTIONS: Mapping[str, tuple[Status, tuple[Status, ...], str, str]] = {
    "suspend": ("suspended", ("active",), "Suspend", "suspended: its people and callers are refused"),
    "resume": ("active", ("suspended",), "Resume", "active again"),
    "offboard": (
        "offboarded",
        ("active", "suspended", "consent_revoked"),
        "Offboard",
        "offboarded: its administrator must onboard it again to be served",
    ),
}


def actions_for(org: Organisation) -> list[tuple[str, str]]:
    """The (action, label) pairs that apply to ``org`` now."""
    return [(name, spec[2]) for name, spec in ACTIONS.items() if org.status in spec[1]]


class TenantAdmin:
    """Operators' changes to organisations (module docstring)."""

    def __init__(
        self, registry: TenantRegistry, *, home_tenant_id: str, forget: Callable[[str], int]
    ) -> None:
        """``forget(tid)``: drop the organisation's services and cached tokens; returns tokens removed."""
        self._registry = registry
        self._home = home_tenant_id.lower()
        self._forget = forget

    def require_operator(self, person: Principal) -> None:
        """Only people of the home tenant manage organisations (a customer's own ``Tenants.Manage``
        assignment means nothing here).

        Raises:
            Forbidden: ``forbidden``.
        """
        if person.tenant_id.lower() != self._home:
            raise Forbidden("Only operators of this app's own organisation manage organisations")

    def page(self, done: str = "") -> Page:
        """The ``/tenants`` page: every organisation, its status and the actions that apply."""
        return Page(
            "tenants.html",
            {
                "title": "Organisations",
                "active": "tenants",
                "organisations": self._registry.all(),
                "actions": actions_for,
                "done": done,
            },
        )

    def apply(self, form: Mapping[str, str], operator: Principal) -> Page:
        """Apply the form's ``action`` to its ``tenant``; returns the page with what was done.

        Raises:
            BadRequest: ``invalid_parameter``, an unknown action or tenant id, or an action that does not
                apply to the organisation's status.
            NotFound: ``tenant_not_found``.
            StorageUnavailable.
        """
        action, tenant_id = form.get("action", ""), form.get("tenant", "").lower()
        spec = ACTIONS.get(action)
        if spec is None or not is_guid(tenant_id):
            raise BadRequest("Choose an action (suspend, resume, offboard) and an organisation")
        status, applies_to, _, said = spec
        current = self._registry.get(tenant_id)
        if current is not None and current.status not in applies_to:
            raise BadRequest(f"The organisation is {current.status}: it cannot be {action}ed now")
        who = operator.user_principal_name or operator.object_id or "an operator"
        changed = self._registry.set_status(tenant_id, status, f"{action} by {who}")
        removed = self._forget(tenant_id)
        logger.info(
            "Organisation %s %s by operator %s (%d cached tokens removed)",
            tenant_id,
            status,
            operator.object_id,
            removed,
        )
        return self.page(done=f"{changed.name} is {said}.")
