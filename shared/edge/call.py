"""What a handler receives: one :class:`Call` per request, built by the edge (:mod:`shared.edge.endpoints`).

A call carries the request, the caller (:class:`~shared.identity.principal.Principal`, or None on public
endpoints), the services of the caller's tenant, and, for a person, their session: their delegated tokens,
Graph acting for them and their forms' CSRF token come from it.
"""

from __future__ import annotations

import functools
from typing import Any

from shared.app.services import Runtime
from shared.app.tenants import TenantServices
from shared.core.errors import Forbidden, GraphFunctionsError, SignInRequired
from shared.graph.client import GraphClient
from shared.graph.scoped_tokens import PermissionScoped
from shared.graph.token_source import TokenSource
from shared.identity.obo_exchange import CLAIMS, REVOKED, ExchangeRefusedError
from shared.identity.on_behalf_of import OboTokens
from shared.identity.principal import Principal
from shared.identity.tenancy import Tenant
from shared.identity.user_tokens import UserAssertion
from shared.signin.client import SIGN_IN_PERMISSIONS
from shared.signin.delegated import DelegatedTokens
from shared.signin.people import csrf_token, verify_csrf
from shared.signin.sessions import Session
from shared.web.pages import Chrome, PageRequest


class Call:
    """One request, its caller and the services for it.

    Attributes:
        request: the request (query, route parameters, headers, form, request id).
        principal: the caller; None on public endpoints and for nobody on optional ones.
        runtime: the process's services (sign-in, sessions, settings).
        origin: this app's public origin (``PUBLIC_BASE_URL`` or the request's); empty on public
            endpoints, which read no settings.
        tenant: the caller's tenant (None: the home tenant); :attr:`services` are its services.
        session: a person's session (None for bearer callers and nobody).
        refusal: on audited endpoints, why the identified caller may not proceed (to be recorded).
        assertion: a person's bearer token for this API, validated (kind ``user``; None otherwise): their
            Graph tokens are exchanged on their behalf (:mod:`shared.identity.on_behalf_of`).
    """

    # A plain class: a call is built once per request and never compared or copied, and a dataclass's
    # generated methods cost the cold start more than they give here.
    def __init__(
        self,
        *,
        request: PageRequest,
        principal: Principal | None,
        runtime: Runtime,
        origin: str,
        tenant: Tenant | None = None,
        session: Session | None = None,
        refusal: Forbidden | None = None,
        assertion: UserAssertion | None = None,
    ) -> None:
        self.request = request
        self.assertion = assertion
        self._obo_tokens: OboTokens | None = None
        self.principal = principal
        self.runtime = runtime
        self.origin = origin
        self.tenant = tenant
        self.session = session
        self.refusal = refusal

    @functools.cached_property
    def services(self) -> TenantServices:
        """The services of the caller's tenant (the home tenant when there is no caller), built on first
        use: a public endpoint that needs none never reads the settings."""
        return self.runtime.tenant(self.tenant)

    @property
    def request_id(self) -> str:
        return self.request.request_id

    @property
    def caller(self) -> Principal:
        """The identified caller (endpoints that declare an access always have one)."""
        if self.principal is None:
            raise Forbidden("This endpoint needs an identified caller", code="caller_kind_not_allowed")
        return self.principal

    @functools.cached_property
    def delegated(self) -> DelegatedTokens:
        """The person's delegated tokens (one per request).

        Raises:
            Forbidden: the caller is not a person with a session (``caller_kind_not_allowed``).
        """
        if self.session is None:
            raise Forbidden(
                "Only people signed in to this app act with delegated tokens", code="caller_kind_not_allowed"
            )
        return DelegatedTokens(
            sign_in=self.runtime.sign_in(), sessions=self.runtime.sessions(), session=self.session
        )

    def person_tokens(self, permissions: tuple[str, ...] = SIGN_IN_PERMISSIONS) -> TokenSource:
        """The tokens acting for the calling person, whichever way they call: exchanged on their behalf
        for a bearer caller (``permissions`` on Graph), their session's delegated tokens otherwise.

        Raises:
            Forbidden: the caller is neither (``caller_kind_not_allowed``).
        """
        if self.assertion is not None:
            settings = self.runtime.settings()
            self._obo_tokens = OboTokens(
                self.services.on_behalf_of(),
                self.assertion,
                graph_endpoint=settings.graph_endpoint,
                permissions=permissions,
                client_id=settings.client_id,
            )
            return self._obo_tokens
        if set(permissions) <= set(SIGN_IN_PERMISSIONS):
            return self.delegated
        (permission,) = permissions  # a session asks for one more permission at a time
        return PermissionScoped(
            self.delegated, graph_endpoint=self.runtime.settings().graph_endpoint, permission=permission
        )

    def delegated_graph(self, permissions: tuple[str, ...] = SIGN_IN_PERMISSIONS) -> GraphClient:
        """Graph acting for the calling person with ``permissions`` (claims challenges are answered inside
        the client)."""
        return self.services.delegated_graph(self.person_tokens(permissions))

    def bearer_answer(self, error: SignInRequired) -> GraphFunctionsError:
        """What a person's bearer caller is answered for ``error`` (Graph or SharePoint still refused the
        exchanged token, or sent a second claims challenge): a claims challenge or a stable refusal, as for
        a refused exchange (:func:`shared.identity.on_behalf_of.refusal_for`); ``error`` itself for anyone
        else."""
        if self.assertion is None:
            return error
        tokens = self._obo_tokens or self.person_tokens()
        assert isinstance(tokens, OboTokens)  # noqa: S101 - person_tokens gives a bearer caller OboTokens
        kind = CLAIMS if error.claims else REVOKED
        return tokens.refusal(ExchangeRefusedError(error.message, kind=kind, claims=error.claims))

    def sharepoint_profile(self) -> dict[str, Any]:
        """The person's SharePoint user on ``SHAREPOINT_SITE_URL`` (the API and the page share it).

        Raises:
            ConfigurationError: ``SHAREPOINT_SITE_URL`` is not set.
            SignInRequired: SharePoint keeps refusing the person's token, or Entra needs the person.
            UpstreamError: SharePoint unreachable or failing (502).
        """
        scope = self.runtime.sign_in().sharepoint_scopes()[0]
        return self.services.sharepoint_profile(self.person_tokens(), scope)

    @property
    def csrf_token(self) -> str:
        """The person's forms' CSRF token (empty without a session)."""
        if self.session is None:
            return ""
        return csrf_token(self.runtime.session_keys(), self.session)

    def verify_csrf(self, token: str) -> bool:
        return self.session is not None and verify_csrf(self.runtime.session_keys(), self.session, token)

    def chrome(self) -> Chrome:
        """What the page around the content shows for this call."""
        person = self.principal if self.principal is not None and self.principal.is_person else None
        return Chrome(
            person=person,
            csrf_token=self.csrf_token if person is not None else "",
            sign_in_origin=sign_in_origin(self.runtime),
        )


def sign_in_origin(runtime: Runtime) -> str:
    """The tenant's sign-in origin (``ENTRA_AUTHORITY_HOST``) for the pages' CSP; empty when the settings
    are invalid (the page that says so must still render)."""
    try:
        return runtime.settings().authority_host
    except GraphFunctionsError:  # a ConfigurationError: the error page itself is what the person sees
        return ""
