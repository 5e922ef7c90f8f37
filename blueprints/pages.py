"""The pages for people: home ``/``, ``/me``, ``/users`` (paged, search), ``/sharepoint``, and the
stylesheet ``/static/app.css``. Every page but home needs a signed-in person (else a sign-in that comes
back to the page); they call Graph and SharePoint with the person's delegated tokens.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import azure.functions as func

from shared.app import services as runtime
from shared.core.errors import SignInRequired
from shared.graph.sharepoint import sharepoint_profile
from shared.identity.bearer import PEOPLE
from shared.identity.principal import Principal, identify
from shared.signin.delegated import answering_claims
from shared.users.service import UsersService, parse_list_query
from shared.web.api import new_blueprint
from shared.web.pages import Page, PageRequest, Redirect, page_endpoint

bp = new_blueprint()

STATIC_DIR = Path(__file__).resolve().parent.parent / "shared" / "web" / "static"
#: Rows per page of the people list.
PAGE_SIZE = 15
PAGE_FIELDS = ("id", "displayName", "mail", "userPrincipalName", "jobTitle")
#: The profile page's rows: (label, Graph property).
PROFILE_ROWS = (
    ("Name", "displayName"),
    ("Given name", "givenName"),
    ("Surname", "surname"),
    ("Email", "mail"),
    ("Sign-in name", "userPrincipalName"),
    ("Job title", "jobTitle"),
    ("Office", "officeLocation"),
    ("Mobile", "mobilePhone"),
    ("Phones", "businessPhones"),
    ("Language", "preferredLanguage"),
)
#: Previous-page cursors carried in the page link (the newest few): enough to go back without state.
_MAX_TRAIL = 20


@bp.function_name("page_home")
@bp.route(route="{ignored:maxlength(0)?}", methods=[func.HttpMethod.GET])
@page_endpoint
def home(request: PageRequest) -> Page | Redirect:
    """Who you are and where to go; a sign-in link when signed out."""
    principal: Principal | None
    try:
        principal = identify(request.http, kinds=PEOPLE)
    except SignInRequired:
        principal = None
    return Page("home.html", {"principal": principal, "title": "Home"})


@bp.function_name("page_me")
@bp.route(route="me", methods=[func.HttpMethod.GET])
@page_endpoint
def me_page(request: PageRequest) -> Page | Redirect:
    principal = identify(request.http, kinds=PEOPLE)
    services = runtime.current()
    tokens = principal.delegated()
    graph = services.delegated_graph(tokens)
    profile = answering_claims(tokens, services.settings().graph_scope, lambda: UsersService(graph).me())
    fields = [(label, _shown(profile.get(name))) for label, name in PROFILE_ROWS]
    return Page(
        "me.html", {"principal": principal, "title": "Your profile", "active": "me", "fields": fields}
    )


@bp.function_name("page_users")
@bp.route(route="users", methods=[func.HttpMethod.GET])
@page_endpoint
def users_page(request: PageRequest) -> Page | Redirect:
    """People, :data:`PAGE_SIZE` a page; ``search`` by name or address; ``cursor`` + ``back`` for paging."""
    principal = identify(request.http, kinds=PEOPLE)
    search = (request.params.get("search") or "").strip()
    cursor = request.params.get("cursor") or None
    trail = [part for part in (request.params.get("back") or "").split(" ") if part][-_MAX_TRAIL:]
    params = {"top": str(PAGE_SIZE), "select": ",".join(PAGE_FIELDS)}
    if search:
        params["search"] = search
    if cursor:
        params["cursor"] = cursor
    query = parse_list_query(params)
    services = runtime.current()
    tokens = principal.delegated()
    people = UsersService(services.delegated_graph(tokens))
    page = answering_claims(tokens, services.settings().graph_scope, lambda: people.list_users(query))
    base = {"search": search} if search else {}
    next_href = previous_href = None
    if page.next_cursor:
        forward_trail = [*trail, cursor or "-"][-_MAX_TRAIL:]
        next_href = "/users?" + urlencode(
            {**base, "cursor": page.next_cursor, "back": " ".join(forward_trail)}
        )
    if cursor:
        previous = trail[-1] if trail else "-"
        back = {"back": " ".join(trail[:-1])} if trail[:-1] else {}
        previous_href = "/users?" + urlencode(
            {**base, **({"cursor": previous} if previous != "-" else {}), **back}
        )
    context = {
        "principal": principal,
        "title": "People",
        "active": "users",
        "users": page.items,
        "search": search,
        "next_href": next_href,
        "previous_href": previous_href,
    }
    return Page("users.html", context)


@bp.function_name("page_sharepoint")
@bp.route(route="sharepoint", methods=[func.HttpMethod.GET])
@page_endpoint
def sharepoint_page(request: PageRequest) -> Page | Redirect:
    principal = identify(request.http, kinds=PEOPLE)
    profile = sharepoint_profile(principal.delegated())
    site = runtime.current().settings().sharepoint_site_url or ""
    context = {
        "principal": principal,
        "title": "SharePoint",
        "active": "sharepoint",
        "profile": profile,
        "site_url": site,
    }
    return Page("sharepoint.html", context)


@bp.function_name("static_css")
@bp.route(route="static/app.css", methods=[func.HttpMethod.GET])
def stylesheet(req: func.HttpRequest) -> func.HttpResponse:
    """The pages' one stylesheet (cacheable for an hour; it has no per-user content)."""
    body = (STATIC_DIR / "app.css").read_bytes()
    return func.HttpResponse(
        body,
        status_code=200,
        headers={
            "content-type": "text/css; charset=utf-8",
            "cache-control": "public, max-age=3600",
            "x-content-type-options": "nosniff",
        },
    )


def _shown(value: object) -> str | None:
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or None
    return None if value in (None, "") else str(value)
