"""The edge: the one place where a request (HTTP, timer or queue message) becomes a :class:`Call`: the
caller, the caller's tenant and that tenant's services, handed to the handler.

Per HTTP request: the request id is assigned and made current (:func:`shared.web.api.http_function`); the
process's services are looked up (the only lookup, :func:`shared.app.services.current`); the caller is
identified once (:func:`shared.edge.identify.identify`: a bearer token wins, else the session) and held
against the endpoint's declared :class:`~shared.identity.access.Access`; the caller's tenant is resolved
from the tenant directory; the handler runs with one :class:`Call`; errors are rendered in one place (JSON
envelopes by :mod:`shared.web.api`, pages by :mod:`shared.web.pages`, a sign-in for
:class:`~shared.core.errors.SignInRequired` on pages).

Endpoints declare their access in the decorator::

    @bp.route(route="api/users", methods=["GET"])
    @api(Access(kinds=APPLICATIONS | PEOPLE, app_role=AppRole.USERS_READ))
    def list_users(call: Call) -> JsonBody: ...

``None`` declares a public endpoint (no caller is identified; no settings are read until used).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import azure.functions as func

from shared.app import services as process
from shared.app.services import Runtime
from shared.core.errors import Forbidden, GraphFunctionsError, SignInRequired
from shared.core.params import reject_empty
from shared.edge.call import Call, sign_in_origin
from shared.edge.identify import identify
from shared.identity.access import Access
from shared.identity.principal import PEOPLE
from shared.signin.web import sign_in_redirect
from shared.web.api import HttpFunction, JsonBody, JsonResponse, http_function, json_endpoint
from shared.web.cookies import app_origin, from_another_site
from shared.web.pages import (
    Chrome,
    Page,
    PageRequest,
    Redirect,
    error_page,
    internal_error_page,
    redirect_response,
    render,
    require_same_origin,
)

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
ApiHandler = Callable[[Call], JsonBody | JsonResponse]
PageHandler = Callable[[Call], Page | Redirect]
#: Identifies whoever is signed in on a browser, for the chrome of an error page.
_ANY_PERSON = Access(kinds=PEOPLE, optional=True)


def _call(http: func.HttpRequest, request_id: str, access: Access | None, runtime: Runtime) -> Call:
    request = PageRequest(http=http, request_id=request_id)
    if access is None:
        return Call(request=request, principal=None, runtime=runtime, origin="")
    origin = app_origin(http, runtime.settings().public_base_url)
    found = identify(http, access, runtime=runtime, origin=origin)
    tenant = runtime.tenants().get(found.principal.tenant_id) if found.principal is not None else None
    return Call(
        request=request,
        principal=found.principal,
        runtime=runtime,
        origin=origin,
        tenant=tenant,
        session=found.session,
        refusal=found.refusal,
        assertion=found.assertion,
    )


def _named_like(run: Callable[..., _T], handler: Callable[..., object]) -> Callable[..., _T]:
    run.__name__ = handler.__name__
    run.__qualname__ = handler.__qualname__
    run.__doc__ = handler.__doc__
    run.__module__ = handler.__module__
    return run


def _cross_site(call: Call, http: func.HttpRequest) -> Forbidden | None:
    """The refusal of a request another site started on the cookie of a signed-in person (None: it is
    not one). A bearer caller chose to send its token; a cookie rides along with any top-level GET."""
    if call.session is None or not from_another_site(http.headers):
        return None
    return Forbidden(
        "You followed a link from another site to a page that reads a mailbox. Nothing was read. If you "
        "meant to read it, continue: the read is recorded in the audit trail under your name.",
        code="cross_site_navigation",
    )


def api(access: Access | None, *, refuse_cross_site: bool = False) -> Callable[[ApiHandler], HttpFunction]:
    """A JSON endpoint open to ``access`` (None: public). The function has the exact signature the worker
    binds, ``(req: HttpRequest)``; errors become the JSON envelope (:func:`shared.web.api.json_endpoint`).

    A query parameter with an empty value is a 400 once the caller is identified (the host drops empty
    values: :func:`shared.core.params.reject_empty`).

    ``refuse_cross_site``: a request another site started (``Sec-Fetch-Site`` neither ``same-origin`` nor
    ``none``) authenticated by a person's session cookie is a 403 ``cross_site_navigation`` before the
    handler runs (the mailbox reads: a link must not make a reader read, audited under their name).
    """

    def decorate(handler: ApiHandler) -> HttpFunction:
        def run(http: func.HttpRequest, request_id: str) -> JsonBody | JsonResponse:
            call = _call(http, request_id, access, process.current())
            reject_empty(http.url)
            refused = _cross_site(call, http) if refuse_cross_site else None
            if refused is not None:
                raise refused
            try:
                return handler(call)
            except SignInRequired as error:
                if call.assertion is None:
                    raise
                # A person's bearer caller gets a claims challenge or a stable refusal, not a sign-in.
                raise call.bearer_answer(error) from error

        return json_endpoint(_named_like(run, handler))

    return decorate


def page(
    access: Access | None,
    *,
    same_origin_first: bool = False,
    sign_in_next: str | None = None,
    confirm_cross_site: bool = False,
) -> Callable[[PageHandler], HttpFunction]:
    """An HTML page open to ``access`` (None: public).

    ``same_origin_first``: a POST must come from this app's own pages, checked before the caller is
    identified (a cross-site form is refused even for nobody). ``sign_in_next``: where a sign-in started
    by this page returns (default: the page itself; a form's target cannot be replayed after sign-in).
    ``confirm_cross_site``: a GET with a query (what names a mailbox) that another site started, on a
    signed-in person's cookie, is not handled: a 403 ``cross_site_navigation`` page offers a same-origin
    "Continue" link to the same address instead (the mail pages: following it is the person's choice).
    A sign-in needed (:class:`SignInRequired`) redirects to Entra and back; any other error is the
    friendly error page (a refusal still shows who is signed in); anything else a 500 page, no trace.
    """

    def decorate(handler: PageHandler) -> HttpFunction:
        name = handler.__name__

        def respond(req: func.HttpRequest, request_id: str) -> func.HttpResponse:
            runtime = process.current()
            request = PageRequest(http=req, request_id=request_id)
            try:
                if same_origin_first and request.method == "POST":
                    require_same_origin(request, app_origin(req, runtime.settings().public_base_url))
                call = _call(req, request_id, access, runtime)
                if confirm_cross_site and request.method == "GET" and req.params:
                    refused = _cross_site(call, req)
                    if refused is not None:
                        logger.info(
                            "%s: cross-site navigation held for confirmation (request %s)", name, request_id
                        )
                        return error_page(
                            refused,
                            request=request,
                            chrome=call.chrome(),
                            retry_href=request.path_and_query,
                            retry_label="Continue",
                        )
                result = handler(call)
                if isinstance(result, Redirect):
                    return redirect_response(result, request_id=request_id)
                return render(
                    result.template,
                    result.context,
                    request=request,
                    chrome=call.chrome(),
                    status=result.status,
                    cookies=result.cookies,
                )
            except SignInRequired as error:
                logger.info("%s needs a sign-in (%s, request %s)", name, error.code, request_id)
                return _sign_in(request, error, runtime, sign_in_next)
            except GraphFunctionsError as error:
                _log_page_error(name, request_id, error)
                # A refusal (403, 404, 400) still shows who is signed in and the sign-out form; after a
                # 5xx the session's storage may be what failed, so the page does not ask it again.
                chrome = (
                    _viewer(request, runtime)
                    if error.status < 500
                    else Chrome(sign_in_origin=sign_in_origin(runtime))
                )
                return error_page(error, request=request, chrome=chrome)
            except Exception:
                logger.exception("Unhandled error in %s (request %s)", name, request_id)
                return internal_error_page(request=request, sign_in_origin=sign_in_origin(runtime))

        return http_function(handler, respond)

    return decorate


def _sign_in(
    request: PageRequest, error: SignInRequired, runtime: Runtime, next_path: str | None
) -> func.HttpResponse:
    try:
        origin = app_origin(request.http, runtime.settings().public_base_url)
        redirect = sign_in_redirect(request, error, services=runtime, origin=origin, next_path=next_path)
        return redirect_response(redirect, request_id=request.request_id)
    except GraphFunctionsError as failure:
        return error_page(failure, request=request, chrome=Chrome(sign_in_origin=sign_in_origin(runtime)))


def _viewer(request: PageRequest, runtime: Runtime) -> Chrome:
    """The chrome for whoever is signed in on this browser, whatever their roles (nobody when there is
    no valid session)."""
    try:
        call = _call(request.http, request.request_id, _ANY_PERSON, runtime)
    except GraphFunctionsError:
        return Chrome(sign_in_origin=sign_in_origin(runtime))
    return call.chrome()


def _log_page_error(name: str, request_id: str, error: GraphFunctionsError) -> None:
    if error.status >= 500:  # operator details (never secrets) go to the log, as in shared.web.api
        logger.error(
            "%s failed with %d %s: %s (request %s)", name, error.status, error.code, error.message, request_id
        )
    else:
        logger.info("%s answered %d %s (request %s)", name, error.status, error.code, request_id)


def background(work: Callable[[Runtime], _T]) -> _T:
    """Run a timer's or queue message's ``work`` with the process's services, looked up here as for a
    request (``runtime.tenant()`` is the home tenant's)."""
    return work(process.current())
