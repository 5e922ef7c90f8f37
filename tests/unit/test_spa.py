"""The single-page client's files and configuration (shared.web.spa, blueprints/spa.py), in-process."""

from __future__ import annotations

import json

import azure.functions as func
import pytest

from shared.app import services as runtime

from . import test_endpoints
from .conftest import AUTHORITY_HOST, CLIENT, TENANT, make_settings
from .test_endpoints import HttpFunction, run

SPA_CLIENT = "66666666-6666-6666-6666-666666666666"

#: The module-scoped fixture of test_endpoints (the app's functions, indexed once per module).
functions = test_endpoints.functions


def get(functions: dict[str, HttpFunction], path: str) -> func.HttpResponse:
    request = func.HttpRequest("GET", f"http://localhost/spa/{path}", body=b"", route_params={"path": path})
    return run(functions["spa"], request)


def test_the_configuration_names_the_registration_and_the_scope(functions: dict[str, HttpFunction]) -> None:
    runtime.install(runtime.Runtime(settings=make_settings(SPA_CLIENT_ID=SPA_CLIENT)))
    response = get(functions, "config.json")
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    assert json.loads(response.get_body()) == {
        "clientId": SPA_CLIENT,
        "authority": f"{AUTHORITY_HOST}/{TENANT}",
        "knownAuthorities": [AUTHORITY_HOST.removeprefix("https://")],
        "apiScope": f"api://{CLIENT}/access_as_user",
    }


def test_without_a_client_id_or_settings_there_is_no_configuration(
    functions: dict[str, HttpFunction],
) -> None:
    runtime.install(runtime.Runtime(settings=make_settings()))
    assert get(functions, "config.json").status_code == 404
    runtime.install(runtime.Runtime(env={}))  # unconfigured: the page still loads, without a CSP origin
    assert get(functions, "config.json").status_code == 404
    assert get(functions, "").status_code == 200


def test_the_page_and_its_strict_csp(functions: dict[str, HttpFunction]) -> None:
    runtime.install(runtime.Runtime(settings=make_settings(SPA_CLIENT_ID=SPA_CLIENT)))
    page = get(functions, "")
    csp = page.headers["content-security-policy"]
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self';" in csp and f"connect-src 'self' {AUTHORITY_HOST};" in csp
    assert f"frame-src {AUTHORITY_HOST};" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp
    html = page.get_body().decode()
    assert '<script type="module" src="/spa/app.js"></script>' in html and "<script>" not in html
    # MSAL.js first (deferred scripts run in document order, the module after it), from this origin.
    msal_tag = '<script src="/spa/vendor/msal-browser.min.js" defer></script>'
    assert html.index(msal_tag) < html.index("/spa/app.js")
    script = get(functions, "app.js")
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert b"globalThis.msal" in script.get_body() and b"import " not in script.get_body()


@pytest.mark.parametrize(
    "path",
    [
        "../spa.py",
        "vendor/../../spa.py",
        "app.py",
        "missing.js",
        "/etc/passwd",
        "a//b.js",
        "index.html%00",
        "x\\y.js",
    ],
)
def test_only_the_clients_files_are_served(functions: dict[str, HttpFunction], path: str) -> None:
    runtime.install(runtime.Runtime(settings=make_settings()))
    assert get(functions, path).status_code == 404
