"""The pages for people: home ``/``, ``/me``, ``/users`` (paged, search), ``/sharepoint``, and the
stylesheet ``/static/app.css``. Every page but home needs a signed-in person (else a sign-in that comes
back to the page); they call Graph and SharePoint with the person's delegated tokens.
"""

from __future__ import annotations

from urllib.parse import urlencode

import azure.functions as func

from shared.edge import Call, page
from shared.identity import PEOPLE, Access
from shared.users import UsersService, parse_list_query
from shared.web import STATIC_DIR, Page, Redirect, new_blueprint

bp = new_blueprint()

PERSON = Access(kinds=PEOPLE)

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
@page(Access(kinds=PEOPLE, optional=True))
def home(call: Call) -> Page | Redirect:
    """Who you are and where to go; a sign-in link when signed out."""
    return Page("home.html", {"title": "Home"})


@bp.function_name("page_me")
@bp.route(route="me", methods=[func.HttpMethod.GET])
@page(PERSON)
def me_page(call: Call) -> Page | Redirect:
    """The person's Graph profile."""
    profile = UsersService(call.delegated_graph()).me()
    fields = [(label, _shown(profile.get(name))) for label, name in PROFILE_ROWS]
    return Page("me.html", {"title": "Your profile", "active": "me", "fields": fields})


@bp.function_name("page_users")
@bp.route(route="users", methods=[func.HttpMethod.GET])
@page(PERSON)
def users_page(call: Call) -> Page | Redirect:
    """People, :data:`PAGE_SIZE` a page; ``search`` by name or address; ``cursor`` + ``back`` for paging."""
    request = call.request
    search = (request.params.get("search") or "").strip()
    cursor = request.params.get("cursor") or None
    trail = [part for part in (request.params.get("back") or "").split(" ") if part][-_MAX_TRAIL:]
    params = {"top": str(PAGE_SIZE), "select": ",".join(PAGE_FIELDS)}
    if search:
        params["search"] = search
    if cursor:
        params["cursor"] = cursor
    query = parse_list_query(params)
    listing = UsersService(call.delegated_graph()).list_users(query)
    base = {"search": search} if search else {}
    next_href = previous_href = None
    if listing.next_cursor:
        forward_trail = [*trail, cursor or "-"][-_MAX_TRAIL:]
        next_href = "/users?" + urlencode(
            {**base, "cursor": listing.next_cursor, "back": " ".join(forward_trail)}
        )
    if cursor:
        previous = trail[-1] if trail else "-"
        back = {"back": " ".join(trail[:-1])} if trail[:-1] else {}
        previous_href = "/users?" + urlencode(
            {**base, **({"cursor": previous} if previous != "-" else {}), **back}
        )
    context = {
        "title": "People",
        "active": "users",
        "users": listing.items,
        "search": search,
        "next_href": next_href,
        "previous_href": previous_href,
    }
    return Page("users.html", context)


@bp.function_name("page_sharepoint")
@bp.route(route="sharepoint", methods=[func.HttpMethod.GET])
@page(PERSON)
def sharepoint_page(call: Call) -> Page | Redirect:
    """The person's SharePoint user on ``SHAREPOINT_SITE_URL``."""
    profile = call.sharepoint_profile()
    site = call.runtime.settings().sharepoint_site_url or ""
    context = {
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
