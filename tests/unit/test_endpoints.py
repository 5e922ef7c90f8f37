"""The HTTP functions end to end in-process: real blueprints, real HTTP layer, fakes at the HTTP seam."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import azure.functions as func
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

import function_app
from shared.app import services as runtime
from shared.app.tenants import graph_config
from shared.core.cursor import encode_cursor
from shared.core.errors import BadRequest, ConfigurationError
from shared.core.params import reject_empty
from shared.graph.client import GraphClient
from shared.identity.bearer import CallerAuthenticator
from shared.identity.signing_keys import SigningKeys
from shared.users.service import search_expression
from shared.version import __version__

from .conftest import AUTHORITY_HOST, GRAPH, TENANT, TokenFactory, jwk_of, make_settings
from .fakes import FakeClock, FakeTokens, FakeTransport, graph_error, respond

METADATA_URL = f"{AUTHORITY_HOST}/{TENANT}/v2.0/.well-known/openid-configuration"
JWKS_URL = f"{AUTHORITY_HOST}/{TENANT}/discovery/v2.0/keys"
USERS = f"{GRAPH}/v1.0/users"
HttpFunction = Callable[[func.HttpRequest], Any]  # async functions return an awaitable response


def run(function: HttpFunction, request: func.HttpRequest) -> func.HttpResponse:
    """Call a function as the worker does: sync ones directly, ``async def`` ones on an event loop."""
    result = function(request)
    if inspect.isawaitable(result):
        result = asyncio.run(_awaited(result))
    assert isinstance(result, func.HttpResponse)
    return result


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


@pytest.fixture(scope="module")
def functions() -> dict[str, HttpFunction]:
    function_app.app.functions_bindings = None  # get_functions() refuses to run twice otherwise
    return {str(f.get_function_name()): f.get_user_function() for f in function_app.app.get_functions()}


class App:
    """A runtime with fakes installed, and helpers to call the functions."""

    def __init__(self, functions: dict[str, HttpFunction], key: rsa.RSAPrivateKey) -> None:
        self.functions = functions
        self.transport = FakeTransport()
        self.transport.route(
            METADATA_URL, respond(200, {"issuer": f"{AUTHORITY_HOST}/{TENANT}/v2.0", "jwks_uri": JWKS_URL})
        )
        self.transport.route(JWKS_URL, respond(200, {"keys": [jwk_of(key, "key-1")]}))
        settings = make_settings()
        clock = FakeClock()
        self.tokens = FakeTokens()
        self.runtime = runtime.Runtime(
            settings=settings,
            transport=self.transport,
            tokens=self.tokens,
            authenticator=CallerAuthenticator(
                tenant_id=settings.tenant_id,
                audiences=settings.api_audiences,
                keys=SigningKeys(metadata_url=METADATA_URL, transport=self.transport),
            ),
        )
        # A Graph client with a fake clock so retry waits are instant.
        self.runtime.tenant()._graph = GraphClient(
            config=graph_config(settings),
            tokens=self.tokens,
            transport=self.transport,
            sleep=clock.sleep,
            clock=clock,
        )
        runtime.install(self.runtime)

    def call(
        self,
        name: str,
        *,
        token: str | None = None,
        params: Mapping[str, str] | None = None,
        route: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        url: str = "http://localhost/api/users",
    ) -> func.HttpResponse:
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        request = func.HttpRequest(
            "GET",
            url,
            headers=all_headers,
            params=dict(params or {}),
            route_params=dict(route or {}),
            body=b"",
        )
        return run(self.functions[name], request)

    def graph_requests(self) -> list[Any]:
        return [r for r in self.transport.requests if r.url.startswith(GRAPH)]


@pytest.fixture
def app(functions: dict[str, HttpFunction], rsa_key: rsa.RSAPrivateKey) -> App:
    return App(functions, rsa_key)


def body(response: func.HttpResponse) -> Any:
    return json.loads(response.get_body())


def assert_error(response: func.HttpResponse, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_body()
    payload = body(response)
    assert set(payload) == {"error"} and set(payload["error"]) == {"code", "message", "requestId"}
    assert payload["error"]["code"] == code
    assert payload["error"]["requestId"] == response.headers["x-request-id"]
    assert "Traceback" not in response.get_body().decode()
    return payload["error"]  # type: ignore[no-any-return]


def test_health_is_anonymous_and_needs_no_configuration(functions: dict[str, HttpFunction]) -> None:
    runtime.install(runtime.Runtime(env={}))  # completely unconfigured
    response = run(functions["health"], func.HttpRequest("GET", "http://localhost/api/health", body=b""))
    assert response.status_code == 200
    assert body(response) == {"status": "ok", "version": __version__}
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    uuid.UUID(response.headers["x-request-id"])


def test_list_users(app: App, make_token: TokenFactory) -> None:
    next_link = f"{USERS}?$top=1&$skiptoken=abc"
    app.transport.queue(
        respond(200, {"value": [{"id": "1", "displayName": "Ada"}], "@odata.nextLink": next_link})
    )
    response = app.call("users_list", token=make_token(), params={"top": "1", "select": "displayName"})
    assert response.status_code == 200
    payload = body(response)
    assert payload["value"] == [{"id": "1", "displayName": "Ada"}]
    assert isinstance(payload["nextCursor"], str)
    [graph_request] = app.graph_requests()
    assert graph_request.params == {"$top": "1", "$select": "id,displayName"}
    assert graph_request.headers["authorization"] == "Bearer token-1"
    # The cursor brings back the next page.
    app.transport.queue(respond(200, {"value": [{"id": "2", "displayName": "Grace"}]}))
    second = app.call("users_list", token=make_token(), params={"cursor": payload["nextCursor"]})
    assert body(second) == {"value": [{"id": "2", "displayName": "Grace"}], "nextCursor": None}
    assert app.graph_requests()[1].url == next_link


def test_anonymous_callers_get_401_before_parameter_checks(app: App) -> None:
    response = app.call("users_list", params={"bogus": "1"})
    assert_error(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert app.graph_requests() == []


def test_invalid_token_is_401_with_challenge(app: App, make_token: TokenFactory) -> None:
    response = app.call("users_list", token=make_token(aud="api://other"))
    error = assert_error(response, 401, "unauthenticated")
    assert "not issued for this API" in error["message"]
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


def test_missing_role_is_403(app: App, make_token: TokenFactory) -> None:
    response = app.call("users_get", token=make_token(roles=[]), route={"id": "ada@contoso.com"})
    assert_error(response, 403, "forbidden")
    assert app.graph_requests() == []


@pytest.mark.parametrize(
    "params",
    [
        {"bogus": "1"},
        {"top": "0"},
        {"top": "abc"},
        {"select": "password"},
        {"search": "x" * 201},
        {"cursor": "abc", "top": "0"},
    ],
)
def test_bad_parameters_are_400_never_500(app: App, make_token: TokenFactory, params: dict[str, str]) -> None:
    assert_error(app.call("users_list", token=make_token(), params=params), 400, "invalid_parameter")
    assert app.graph_requests() == []


def test_ssrf_cursor_is_rejected(app: App, make_token: TokenFactory) -> None:
    evil = encode_cursor("https://169.254.169.254/metadata/identity/oauth2/token", eventual=False)
    assert_error(app.call("users_list", token=make_token(), params={"cursor": evil}), 400, "invalid_cursor")
    assert [r.url for r in app.transport.requests if not r.url.startswith(AUTHORITY_HOST)] == []


@pytest.mark.parametrize(
    "cursor",
    [
        "%%%",
        encode_cursor(GRAPH.replace("844", "84\t4") + "/v1.0/users?$skiptoken=x", eventual=False),
        encode_cursor(f"{USERS}?$skiptoken=x\n", eventual=False),
    ],
)
def test_a_cursor_with_a_tab_or_line_break_is_400_at_once(
    app: App, make_token: TokenFactory, cursor: str
) -> None:
    assert_error(app.call("users_list", token=make_token(), params={"cursor": cursor}), 400, "invalid_cursor")
    assert app.graph_requests() == []


def test_a_stale_skiptoken_is_the_callers_invalid_cursor(app: App, make_token: TokenFactory) -> None:
    app.transport.queue(graph_error(400, "Request_BadRequest", "Invalid $skiptoken"))
    cursor = encode_cursor(f"{USERS}?$skiptoken=stale", eventual=False)
    response = app.call("users_list", token=make_token(), params={"cursor": cursor})
    assert_error(response, 400, "invalid_cursor")
    assert len(app.graph_requests()) == 1


def test_the_first_pages_query_may_be_repeated_with_its_cursor(app: App, make_token: TokenFactory) -> None:
    first_query = {"top": "1", "select": "displayName", "search": '"a\\b:c'}
    next_link = f"{USERS}?$top=1&$select=id,displayName&$search=x&$count=true&$skiptoken=abc"
    next_link = next_link.replace("$search=x", "$search=" + quote(search_expression('"a\\b:c'), safe=""))
    app.transport.queue(
        respond(200, {"value": [{"id": "1", "displayName": "Ada"}], "@odata.nextLink": next_link})
    )
    first = body(app.call("users_list", token=make_token(), params=first_query))
    app.transport.queue(respond(200, {"value": [{"id": "2", "displayName": "Grace"}]}))
    again = app.call("users_list", token=make_token(), params={**first_query, "cursor": first["nextCursor"]})
    assert body(again) == {"value": [{"id": "2", "displayName": "Grace"}], "nextCursor": None}
    differing = {**first_query, "top": "2", "cursor": first["nextCursor"]}
    assert_error(app.call("users_list", token=make_token(), params=differing), 400, "invalid_parameter")
    assert len(app.graph_requests()) == 2


def test_get_user_found_not_found_and_bad_id(app: App, make_token: TokenFactory) -> None:
    app.transport.queue(
        respond(200, {"id": "1", "mail": "ada@contoso.com"}), graph_error(404, "Request_ResourceNotFound")
    )
    found = app.call(
        "users_get", token=make_token(), route={"id": "ada@contoso.com"}, params={"select": "mail"}
    )
    assert found.status_code == 200 and body(found) == {"id": "1", "mail": "ada@contoso.com"}
    missing = app.call("users_get", token=make_token(), route={"id": "8a0c4e7e-1b2d-4c5f-9a6b-7c8d9e0f1a2b"})
    assert_error(missing, 404, "not_found")
    assert_error(
        app.call("users_get", token=make_token(), route={"id": "../groups"}), 400, "invalid_parameter"
    )
    assert_error(
        app.call(
            "users_get", token=make_token(), route={"id": "ada@contoso.com"}, params={"expand": "manager"}
        ),
        400,
        "invalid_parameter",
    )


def test_throttling_past_the_budget_is_503_with_retry_after(app: App, make_token: TokenFactory) -> None:
    app.transport.queue(graph_error(429, "TooManyRequests", headers={"Retry-After": "120"}))
    response = app.call("users_list", token=make_token())
    assert_error(response, 503, "upstream_throttled")
    assert response.headers["Retry-After"] == "120"


def test_graph_forbidden_is_502(app: App, make_token: TokenFactory) -> None:
    app.transport.queue(graph_error(403, "Authorization_RequestDenied"))
    error = assert_error(app.call("users_list", token=make_token()), 502, "upstream_forbidden")
    assert "User.Read.All" in error["message"]


def test_configuration_errors_are_500_with_actionable_message(
    functions: dict[str, HttpFunction], caplog: pytest.LogCaptureFixture
) -> None:
    runtime.install(runtime.Runtime(env={"ENTRA_CLIENT_ID": "x"}))
    with caplog.at_level(logging.ERROR):
        response = functions["users_list"](func.HttpRequest("GET", "http://localhost/api/users", body=b""))
    error = assert_error(response, 500, "configuration_error")
    # The actionable details go to the operator's log under the request id, never to the (anonymous) caller.
    assert "ENTRA_TENANT_ID" not in error["message"] and "ENTRA_CLIENT_ID" not in error["message"]
    assert "ENTRA_TENANT_ID is missing" in caplog.text and "ENTRA_CLIENT_ID is not a GUID" in caplog.text
    assert error["requestId"] in caplog.text


def test_unexpected_exceptions_are_500_without_details(
    app: App, make_token: TokenFactory, caplog: pytest.LogCaptureFixture
) -> None:
    class Exploding(FakeTokens):
        def get_token(self, scope: str) -> str:
            raise RuntimeError("secret-ish internal detail")

    app.runtime.tenant()._graph._tokens = Exploding()  # type: ignore[union-attr]
    token = make_token()
    with caplog.at_level(logging.ERROR):
        response = app.call("users_list", token=token)
    error = assert_error(response, 500, "internal_error")
    assert "secret-ish" not in response.get_body().decode()
    assert error["requestId"] in caplog.text and "RuntimeError" in caplog.text
    assert token not in caplog.text


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-request-id": "abc-123"}, "abc-123"),
        (
            {"client-request-id": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"},
            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        ),
        ({"x-request-id": "bad id\r\nx-injected: 1"}, None),
        ({"x-request-id": "a" * 129}, None),
    ],
)
def test_request_ids(app: App, headers: dict[str, str], expected: str | None) -> None:
    response = app.call("health", headers=headers, url="http://localhost/api/health")
    rid = response.headers["x-request-id"]
    if expected is None:
        uuid.UUID(rid)
    else:
        assert rid == expected


def test_openapi_endpoint(app: App) -> None:
    response = app.call("openapi_document", url="http://localhost/api/openapi.json")
    assert response.status_code == 200
    assert body(response)["openapi"] == "3.0.3"


def test_startup_report_logs_every_problem(caplog: pytest.LogCaptureFixture) -> None:
    runtime.install(runtime.Runtime(env={}))
    with caplog.at_level(logging.INFO):
        assert runtime.report_configuration() is False
    assert caplog.text.count("Configuration problem") == 4
    runtime.install(runtime.Runtime(settings=make_settings()))
    with caplog.at_level(logging.INFO):
        assert runtime.report_configuration() is True


def test_runtime_builds_each_service_once() -> None:
    services = runtime.Runtime(settings=make_settings())
    tenant = services.tenant()
    assert tenant is services.tenant()
    assert tenant.graph() is tenant.graph()
    assert tenant.tokens() is tenant.tokens()
    assert tenant.users() is tenant.users()
    assert tenant.authenticator() is tenant.authenticator()
    assert services.transport() is services.transport()
    broken = runtime.Runtime(env={})
    with pytest.raises(ConfigurationError) as first:
        broken.settings()
    with pytest.raises(ConfigurationError) as second:
        broken.tenant().users()
    assert first.value is second.value


@pytest.mark.parametrize("query", ["select=", "top", "top=5&select=", "a=1&b"])
def test_an_empty_query_value_is_refused(query: str) -> None:
    """The host drops empty values (``?select=`` reads as no select): the raw URL still has them."""
    with pytest.raises(BadRequest, match="empty value"):
        reject_empty(f"http://localhost/api/users?{query}")
    reject_empty("http://localhost/api/users?top=5&select=id")
    reject_empty("http://localhost/api/users")
