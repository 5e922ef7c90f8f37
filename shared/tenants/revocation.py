"""Revoked consent, detected at the next token request: an onboarded organisation's app tokens wrapped in
:class:`RevocationWatch`.

When a customer deletes the app (its service principal), disables it or removes its consent, Entra answers
the app's next client-credentials request in that tenant with AADSTS7000229, 700016 or 7000112
(:class:`~shared.core.errors.AppNotProvisioned`; shared/reference/multi-tenant-and-obo.md A.7). The watch
then marks the organisation ``consent_revoked`` (the operator sees it on ``/tenants``), has the process
drop that organisation's services and tokens (its realm only), and answers 403 ``tenant_consent_revoked``
with what to do, instead of a 500. Tokens issued before the revocation stay valid until they expire
(Entra does not recall them), so the first failing request comes at the latest when the cached token
is renewed. Every other organisation is untouched: each has its own provider, held failures and memo.
Re-onboarding makes it ``active`` again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from shared.core.errors import AppNotProvisioned, GraphFunctionsError, TenantRefused
from shared.graph.token_source import TokenSource
from shared.tenants.directory import refusal
from shared.tenants.registry import TenantRegistry

logger = logging.getLogger(__name__)


class RevocationWatch:
    """A :class:`TokenSource` of one onboarded organisation that turns "the app is gone from that tenant"
    into ``consent_revoked`` (module docstring)."""

    def __init__(
        self,
        inner: TokenSource,
        *,
        tenant_id: str,
        registry: TenantRegistry,
        forget: Callable[[str], object],
    ) -> None:
        self._inner = inner
        self._tenant = tenant_id.lower()
        self._registry = registry
        self._forget = forget
        self._lock = threading.Lock()
        self._recorded: TenantRefused | None = None  # concurrent callers record the revocation once

    @property
    def inner(self) -> TokenSource:
        return self._inner

    def get_token(self, scope: str) -> str:
        """The inner source's token.

        Raises:
            TenantRefused: ``tenant_consent_revoked`` (403): the organisation removed the app or its consent.
            Whatever the inner source raises otherwise.
        """
        try:
            return self._inner.get_token(scope)
        except AppNotProvisioned as error:
            raise self._revoked(error) from error

    def invalidate(self, scope: str, token: str | None = None) -> None:
        self._inner.invalidate(scope, token)

    def _revoked(self, error: AppNotProvisioned) -> TenantRefused:
        """The refusal, recorded once however many callers met the failure together (each gets its own
        exception object: one raised in several threads at once would share its traceback)."""
        with self._lock:
            if self._recorded is None:
                self._recorded = self._record(error)
            recorded = self._recorded
        return TenantRefused(recorded.message, code=recorded.code)

    def _record(self, error: AppNotProvisioned) -> TenantRefused:
        codes = ",".join(str(code) for code in sorted(error.aadsts)) or "-"
        logger.warning(
            "Organisation %s: the app is no longer provisioned there (AADSTS %s)", self._tenant, codes
        )
        try:
            org = self._registry.set_status(
                self._tenant, "consent_revoked", f"token request refused: AADSTS{codes}"
            )
        except GraphFunctionsError as failure:  # the refusal stands; the next request records it again
            logger.error("Organisation %s: recording consent_revoked failed (%s)", self._tenant, failure.code)
            org = None
        self._forget(self._tenant)
        if org is not None:
            return refusal(org)
        return TenantRefused(
            "Your organisation removed this app's consent (or the app itself). An administrator of your "
            "organisation can restore access by onboarding again at /onboard.",
            code="tenant_consent_revoked",
        )
