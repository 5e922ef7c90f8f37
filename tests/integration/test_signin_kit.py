"""Helpers of the sign-in integration tests (no tests here): a scripted browser (requests, real sockets, a
cookie jar like a browser's) that signs in through the app and the local tenant's own pages, and the
tenant-side setup an app host on a test port needs (its redirect and post-logout URIs registered).

Nothing is patched: the app runs under devhost, Entra is the local tenant, sessions live in Azurite.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from tests.devhost.fixtures import DevHostProcess
from tests.emulator.entra_flow import parse_page
from tests.support.tenant import LocalTenant

SESSION_COOKIE = "gf_session"  # http (loopback): no __Host- prefix
FLOW_COOKIE = "gf_flow"


#: The app's pages are parsed like the tenant's.
forms_of = parse_page


def register_app_host(tenant: LocalTenant, host: DevHostProcess) -> None:
    """Register ``host``'s callback, consent callback and post-logout URIs on the app registration."""
    app_id = tenant.env["ENTRA_CLIENT_ID"]
    current = tenant.control("GET", f"/apps/{app_id}")
    redirects = list(current["redirectUris"])
    for path in ("/auth/callback", "/auth/admin-consent/callback"):
        if host.url(path) not in redirects:
            redirects.append(host.url(path))
    logout = list(current["postLogoutRedirectUris"])
    if host.url("/") not in logout:
        logout.append(host.url("/"))
    tenant.control("PATCH", f"/apps/{app_id}", {"redirectUris": redirects, "postLogoutRedirectUris": logout})


@dataclasses.dataclass
class WebBrowser:
    """A person's browser: one cookie jar for the app (http on loopback) and the tenant (https)."""

    tenant: LocalTenant
    host: DevHostProcess
    session: requests.Session = dataclasses.field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        self.session.trust_env = False
        self.session.verify = self.tenant.ca_cert

    def get(self, path_or_url: str, **kwargs: Any) -> requests.Response:
        url = path_or_url if "://" in path_or_url else self.host.url(path_or_url)
        return self.session.get(url, allow_redirects=False, timeout=30, **kwargs)

    def post(self, path_or_url: str, data: dict[str, str], **kwargs: Any) -> requests.Response:
        url = path_or_url if "://" in path_or_url else self.host.url(path_or_url)
        return self.session.post(url, data=data, allow_redirects=False, timeout=30, **kwargs)

    @property
    def session_id(self) -> str | None:
        return self.session.cookies.get(SESSION_COOKIE)

    def start(self, next_path: str = "/") -> requests.Response:
        """``/auth/login?next=`` → the tenant's authorize endpoint; returns the tenant's sign-in page."""
        response = self.get("/auth/login", params={"next": next_path})
        assert response.status_code == 302, (response.status_code, response.text[:300])
        return self.get(response.headers["Location"])

    def through_tenant(
        self, page: requests.Response, username: str, password: str, *, accept: bool = True
    ) -> requests.Response:
        """Sign in (and consent, approve MFA) on the tenant's pages until the tenant redirects back to the
        app; returns that redirect (a 302 to the app's callback)."""
        response = page
        for _ in range(6):
            if response.status_code in (301, 302, 303):
                location = response.headers["Location"]
                if location.startswith(self.host.base_url):
                    return response
                response = self.get(location)
                continue
            assert response.status_code == 200, (response.status_code, response.text[:500])
            page_forms = forms_of(response.text)
            if "signin" in page_forms.ids:
                response = self._submit(response, {"username": username, "password": password})
            elif "permissions" in page_forms.ids:
                response = self._submit(response, {"action": "accept" if accept else "cancel"})
            elif "mfa-form" in page_forms.ids:
                response = self._submit(response, {"action": "approve" if accept else "deny"})
            else:
                raise AssertionError(f"unexpected tenant page: {response.text[:500]}")
        raise AssertionError("the tenant never redirected back to the app")

    def sign_in(self, username: str, password: str, next_path: str = "/") -> requests.Response:
        """The whole walk; returns the app's answer to its callback (a 303 to ``next`` when it worked)."""
        back = self.through_tenant(self.start(next_path), username, password)
        return self.get(back.headers["Location"])

    def _submit(self, page: requests.Response, extra: dict[str, str]) -> requests.Response:
        form = forms_of(page.text).forms[0]
        data = {**form["fields"], **extra}
        action = form["action"]
        url = action if "://" in action else self.tenant.env["ENTRA_AUTHORITY_HOST"] + action
        return self.session.post(url, data=data, allow_redirects=False, timeout=30)


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def session_row_exists(tenant: LocalTenant, host: DevHostProcess, session_id: str) -> bool:
    """Whether the sessions table holds a row for ``session_id`` (the row key is its SHA-256)."""
    from azure.data.tables import TableServiceClient

    from shared.storage.tables import hashed_key, partition_of

    settings = host_values(host)
    table = TableServiceClient.from_connection_string(settings["AzureWebJobsStorage"]).get_table_client(
        settings.get("SESSION_TABLE") or "sessions"
    )
    row = hashed_key(session_id)
    return any(
        True for _ in table.query_entities(f"PartitionKey eq '{partition_of(row)}' and RowKey eq '{row}'")
    )


def host_values(host: DevHostProcess) -> dict[str, str]:
    """The app settings ``host`` runs with (its ``local.settings.json`` values)."""
    return dict(json.loads((host.log_path.parent / "local.settings.json").read_text())["Values"])


def backdated_session(
    tenant: LocalTenant, host: DevHostProcess, *, age: datetime.timedelta, claims: Any
) -> str:
    """Store a session for ``claims`` as if created ``age`` ago (same key ring and table as ``host``), with
    the app's own SessionStore; returns its id. Used to test idle and absolute expiry without waiting."""
    from shared.app.services import Runtime
    from shared.signin.sessions import SessionStore
    from shared.storage.tables import EnsuredTable
    from tests.integration.fixtures import environment
    from tests.support.apphost import host_environment

    values = host_values(host)
    with environment(host_environment(tenant.env)):
        runtime = Runtime(env={**values, **host_environment(tenant.env)})
        settings = runtime.settings()
        now = datetime.datetime.now(datetime.UTC)
        then = now - age
        # The record is backdated, not its roles' confirmation: a made-up session has no refresh token
        # to re-confirm them with (shared.signin.roles), so they hold for one period from now.
        claims = claims._replace(roles_checked=now.timestamp())
        store = SessionStore(
            EnsuredTable(runtime.table_service(), settings.session_table),
            runtime.session_keys(),
            idle_minutes=settings.session_idle_minutes,
            max_age_hours=settings.session_max_age_hours,
            now=lambda: then,
        )
        return store.create(claims, "{}").id


def tenant_counters(tenant: LocalTenant) -> dict[str, Any]:
    return dict(tenant.control("GET", "/counters"))


def member(tenant: LocalTenant) -> tuple[str, str]:
    """The demo member's user name and password."""
    return tenant.env["DEMO_USER_USERNAME"], tenant.env["DEMO_USER_PASSWORD"]


@contextlib.contextmanager
def web_browser(tenant: LocalTenant, host: DevHostProcess) -> Iterator[WebBrowser]:
    """A signed-out scripted browser for ``host``, whose URIs are registered on the (reset) tenant first."""
    register_app_host(tenant, host)
    browser = WebBrowser(tenant, host)
    try:
        yield browser
    finally:
        browser.session.close()
