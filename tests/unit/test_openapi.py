"""The OpenAPI document stays in sync with the registered routes, the code's rules and real responses."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
import requests
import schemathesis
from azure.functions.decorators.http import HttpTrigger
from cryptography.hazmat.primitives.asymmetric import rsa
from schemathesis.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok
from schemathesis.core.transport import Response

import function_app
from shared.app.openapi import ERROR_CODES, USER_FIELD_SCHEMAS, openapi_document
from shared.core import challenges as challenges_module
from shared.core import errors as errors_module
from shared.core.errors import BadRequest, GraphFunctionsError
from shared.graph.users import validate_user_id
from shared.identity.roles import AppRole
from shared.users.service import DEFAULT_TOP, MAX_TOP, USER_FIELDS

from .conftest import TokenFactory
from .fakes import graph_error, respond
from .test_endpoints import App, HttpFunction

ROOT = Path(__file__).resolve().parents[2]
PROTECTED_ERRORS = {"400", "401", "403", "500", "502", "503"}
#: Timer and queue functions: not part of the HTTP API.
NON_HTTP_FUNCTIONS = {
    "report_timer",
    "report_queue",
    "session_cleanup",
    "mail_notification_worker",
    "mail_subscriptions_timer",
}
APP_ROLES = {"Users.Read.All", "Reports.Read", "Reports.Run"}


@pytest.fixture(scope="module")
def functions() -> dict[str, HttpFunction]:
    function_app.app.functions_bindings = None
    return {str(f.get_function_name()): f.get_user_function() for f in function_app.app.get_functions()}


@pytest.fixture(scope="module")
def routes() -> set[tuple[str, str]]:
    function_app.app.functions_bindings = None
    found = set()
    for function in function_app.app.get_functions():
        trigger = function.get_trigger()
        if not isinstance(trigger, HttpTrigger):
            assert str(function.get_function_name()) in NON_HTTP_FUNCTIONS
            continue
        for method in trigger.methods or ():
            found.add((f"/{trigger.route}", str(method.value).lower()))
    return {(path, method) for path, method in found if path.startswith("/api/")}


#: HTML pages and their assets: for browsers, outside the JSON API and its document.
PAGE_ROUTES = {
    "/{ignored:maxlength(0)?}",
    "/me",
    "/users",
    "/sharepoint",
    "/static/app.css",
    "/auth/login",
    "/auth/callback",
    "/auth/logout",
    "/auth/admin-consent",
    "/auth/admin-consent/callback",
    "/mail",
    "/mail/message",
    "/audit",
    "/reports",
    "/reports/run",
    "/onboard",
    "/onboard/callback",
    "/tenants",
    "/spa/{*path}",  # the single-page client's files and configuration (public, no API)
    "/subscriptions",
}


def test_routes_outside_the_api_are_the_known_pages() -> None:
    function_app.app.functions_bindings = None
    outside = set()
    for function in function_app.app.get_functions():
        trigger = function.get_trigger()
        if not isinstance(trigger, HttpTrigger):
            continue  # timers (session_cleanup) have no route
        route = str(trigger.route)
        if not route.startswith("api/"):
            outside.add(f"/{route}")
    assert outside <= PAGE_ROUTES


def operations() -> set[tuple[str, str]]:
    return {(path, method) for path, item in openapi_document()["paths"].items() for method in item}


def test_every_registered_route_is_documented_and_vice_versa(routes: set[tuple[str, str]]) -> None:
    assert routes == operations()
    assert all(path.startswith("/api/") for path, _ in routes)  # JSON API under /api (routePrefix is "")


def test_path_parameters_match_route_templates() -> None:
    document = openapi_document()
    for path, item in document["paths"].items():
        template_names = set(re.findall(r"{(\w+)}", path))
        for operation in item.values():
            declared = {
                document["components"]["parameters"][p["$ref"].rsplit("/", 1)[1]]["name"]
                for p in operation.get("parameters", [])
                if document["components"]["parameters"][p["$ref"].rsplit("/", 1)[1]]["in"] == "path"
            }
            assert declared == template_names, path


def required_role(path: str) -> str:
    """The app role each protected JSON endpoint requires of a service (the code's constants)."""
    if path.startswith("/api/audit/"):
        return AppRole.AUDIT_READ
    if path == "/api/subscriptions":
        return AppRole.REPORTS_RUN
    if path.startswith("/api/reports/"):
        return "Reports.Run" if path == "/api/reports/users" else "Reports.Read"
    return AppRole.MAIL_READ if "/messages" in path else "Users.Read.All"


def test_protected_operations_document_every_error_and_the_role() -> None:
    for path, item in openapi_document()["paths"].items():
        for operation in item.values():
            if operation["security"]:
                assert set(operation["responses"]) >= PROTECTED_ERRORS, path
            if {"bearerAuth": []} in operation["security"]:
                assert operation["x-required-app-role"] == required_role(path)
            assert "200" in operation["responses"]


def test_schema_rules_match_the_code() -> None:
    document = openapi_document()
    assert tuple(USER_FIELD_SCHEMAS) == USER_FIELDS
    top = document["components"]["parameters"]["top"]["schema"]
    assert (top["maximum"], top["default"]) == (MAX_TOP, DEFAULT_TOP)


def test_every_error_code_in_the_code_is_documented() -> None:
    source = "\n".join(p.read_text() for p in (ROOT / "shared").rglob("*.py"))
    literal_codes = set(re.findall(r'code="([a-z_]+)"', source))
    default_codes = {
        cls.default_code
        for module in (errors_module, challenges_module)
        for cls in vars(module).values()
        if isinstance(cls, type) and issubclass(cls, GraphFunctionsError)
    }
    assert literal_codes | default_codes | {"internal_error"} == set(ERROR_CODES)
    errors_doc = (ROOT / "docs" / "errors.md").read_text()
    for code in ERROR_CODES:
        assert f"`{code}`" in errors_doc, code


def test_document_loads_as_openapi() -> None:
    schema = schemathesis.openapi.from_dict(openapi_document())
    loaded = [result for result in schema.get_all_operations() if isinstance(result, Ok)]
    assert {result.ok().path for result in loaded} == {p for p, _ in operations()}


# -- real responses validate against the document ---------------------------------------------------------


def validate(path: str, response: func.HttpResponse, *, url_path: str | None = None) -> None:
    schema = schemathesis.openapi.from_dict(openapi_document())
    request = requests.Request("GET", f"http://localhost{url_path or path}").prepare()
    converted = Response(
        status_code=response.status_code,
        headers={name: [value] for name, value in response.headers.items()},
        content=response.get_body(),
        request=request,
        elapsed=0.0,
        verify=True,
    )
    operation = schema[path]["GET"]
    parameters = {"id": url_path.rsplit("/", 1)[-1]} if url_path and "{id}" in path else None
    # The status is one the document lists for the operation, and the body, content type and headers are
    # the ones it documents for that status (schemathesis's conformance checks, as the fuzz suite runs them).
    operation.Case(path_parameters=parameters).validate_response(
        converted,
        checks=[
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
            response_schema_conformance,
        ],
    )


@pytest.fixture
def app(functions: dict[str, HttpFunction], rsa_key: rsa.RSAPrivateKey) -> App:
    return App(functions, rsa_key)


Scenario = Callable[[App, TokenFactory], func.HttpResponse]


def _list(app: App, make_token: TokenFactory) -> func.HttpResponse:
    app.transport.queue(
        respond(
            200,
            {
                "value": [
                    {
                        "id": "1",
                        "displayName": "Ada",
                        "accountEnabled": True,
                        "businessPhones": ["+1 555"],
                        "createdDateTime": None,
                    }
                ],
                "@odata.nextLink": "https://127.0.0.1:8444/v1.0/users?$skiptoken=x",
            },
        )
    )
    return app.call(
        "users_list",
        token=make_token(),
        params={"select": "displayName,accountEnabled,businessPhones,createdDateTime"},
    )


def _throttled(app: App, make_token: TokenFactory) -> func.HttpResponse:
    app.transport.queue(graph_error(429, "TooManyRequests", headers={"Retry-After": "99"}))
    return app.call("users_list", token=make_token())


def _get(app: App, make_token: TokenFactory) -> func.HttpResponse:
    app.transport.queue(respond(200, {"id": "1", "userPrincipalName": "ada@contoso.com"}))
    return app.call("users_get", token=make_token(), route={"id": "ada@contoso.com"})


def _missing(app: App, make_token: TokenFactory) -> func.HttpResponse:
    app.transport.queue(graph_error(404, "Request_ResourceNotFound"))
    return app.call("users_get", token=make_token(), route={"id": "ada@contoso.com"})


def _graph_forbidden(app: App, make_token: TokenFactory) -> func.HttpResponse:
    app.transport.queue(graph_error(403, "Authorization_RequestDenied"))
    return app.call("users_list", token=make_token())


SCENARIOS: list[tuple[str, str, int, Scenario]] = [
    ("/api/users", "list 200", 200, _list),
    ("/api/users", "401", 401, lambda app, tok: app.call("users_list")),
    ("/api/users", "403", 403, lambda app, tok: app.call("users_list", token=tok(roles=[]))),
    ("/api/users", "400", 400, lambda app, tok: app.call("users_list", token=tok(), params={"top": "0"})),
    ("/api/users", "502", 502, _graph_forbidden),
    ("/api/users", "503", 503, _throttled),
    ("/api/users/{id}", "get 200", 200, _get),
    ("/api/users/{id}", "404", 404, _missing),
    ("/api/health", "health", 200, lambda app, tok: app.call("health", url="http://localhost/api/health")),
    ("/api/openapi.json", "openapi", 200, lambda app, tok: app.call("openapi_document")),
]


@pytest.mark.parametrize(("path", "name", "status", "scenario"), SCENARIOS, ids=[s[1] for s in SCENARIOS])
def test_responses_conform_to_the_document(
    app: App, make_token: TokenFactory, path: str, name: str, status: int, scenario: Scenario
) -> None:
    response = scenario(app, make_token)
    # The scenario's own outcome first: a documented error is still the wrong answer to a good request.
    assert response.status_code == status, response.get_body()[:300]
    url_path = path.replace("{id}", "ada@contoso.com")
    validate(path, response, url_path=url_path)


def test_nonconforming_response_is_caught(app: App) -> None:
    bad = func.HttpResponse(
        b'{"status": "ok"}', status_code=200, headers={"content-type": "application/json"}
    )
    with pytest.raises(BaseExceptionGroup, match="version"):  # one entry per failed check
        validate("/api/health", bad)


def test_document_is_a_fresh_copy() -> None:
    first: dict[str, Any] = openapi_document()
    first["paths"].clear()
    assert openapi_document()["paths"]


@pytest.mark.parametrize(
    "value",
    [
        "8a0c4e7e-1b2d-4c5f-9a6b-7c8d9e0f1a2b",
        "ada@contoso.com",
        "o'neil@contoso.com",
        "$admin@contoso.com",
        "ada",
        "ada@-contoso.com",
        "8a0c4e7e-1b2d-4c5f-9a6b",
        "ada@contoso.com\n",
    ],
)
def test_user_id_pattern_accepts_exactly_what_the_code_accepts(value: str) -> None:
    schema = openapi_document()["components"]["parameters"]["userId"]["schema"]
    try:
        validate_user_id(value)
        accepted = True
    except BadRequest:
        accepted = False
    # ECMA 262 "$" never matches before a final newline; Python's does, so compare with \Z semantics.
    assert (re.search(schema["pattern"].removesuffix("$") + r"\Z", value) is not None) == accepted


def test_cursor_parameter_documents_the_repetition_rule() -> None:
    description = openapi_document()["components"]["parameters"]["cursor"]["description"]
    assert "same values as the first page" in description
    assert "invalid_parameter" in description and "invalid_cursor" in description
