"""Schema-driven fuzzing of the live app with schemathesis 4.

The document is read from the running host's ``/api/openapi.json`` (the session host of
tests/integration/fixtures.py, against the local tenant). Every operation is fuzzed with a valid caller
token and without any token, with positive and negative (schema-violating) inputs, and every response is
checked for: no 5xx, schema conformance, documented status code, documented content type.

schemathesis' pytest loader for fixtures (``schemathesis.pytest.from_fixture``) cannot run under pytest 9.2
(it writes ``Node._nodeid``, which pytest 9.2 removed), and the host only exists once fixtures run, so the
cases come from schemathesis' public strategy API (``APIOperation.as_strategy``) under hypothesis ``@given``,
one test per operation and auth mode. The document is fetched from the host and loaded with ``from_dict``:
loaded ``from_url``, schemathesis leaves out the operation that serves the document itself. The run is
bounded and derandomized: the same cases every run.
"""

from __future__ import annotations

import datetime as dt
import http.cookiejar
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shared.app.openapi import openapi_document
from tests.devhost.fixtures import DevHostProcess
from tests.integration.fixtures import FreshHosts
from tests.support.apphost import Caller
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.fuzz

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
MAX_EXAMPLES = 60
BOUNDED = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,  # the same cases every run: a failure here is reproducible, not flaky
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failing case is reported as generated
    suppress_health_check=list(HealthCheck),
)
#: The operations the repository documents; the live document must describe exactly these.
OPERATIONS = [
    f"{method.upper()} {path}" for path, item in openapi_document()["paths"].items() for method in item
]


@pytest.fixture(scope="module")
def fuzz_host(module_hosts: FreshHosts, local_tenant: LocalTenant) -> DevHostProcess:
    """The app with MAILBOX_SCOPE=* (the session host reads no mailbox: every mail case would be a 403)."""
    return module_hosts.start(local_tenant, "fuzz", overrides={"MAILBOX_SCOPE": "*"})


@pytest.fixture(scope="module")
def keep_alive() -> Iterator[requests.Session]:
    """One keep-alive session for every fuzzed request: without one, schemathesis builds a new session and a
    new connection per case (a connection set up and torn down on both sides, thousands of times a run).
    It keeps no cookie: each case is sent with only what it carries, as with a new session."""
    session = requests.Session()
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    yield session
    assert not session.cookies
    session.close()


@pytest.fixture(scope="module")
def live_schema(fuzz_host: DevHostProcess) -> Any:
    response = requests.get(fuzz_host.url("/api/openapi.json"), timeout=30)
    assert response.status_code == 200
    return schemathesis.openapi.from_dict(response.json())


def _header(response: Any, name: str) -> str | None:
    """A response header from schemathesis' Response (lower-cased names, list values)."""
    values = response.headers.get(name.lower())
    return values[0] if values else None


def test_live_document_describes_the_documented_operations(live_schema: Any) -> None:
    live = sorted(result.ok().label for result in live_schema.get_all_operations())
    assert live == sorted(OPERATIONS)


@pytest.fixture(scope="module")
def known_ids(fuzz_host: DevHostProcess, caller: Caller) -> list[str]:
    """Object ids and userPrincipalNames of real users: random ids would only ever find nobody (404)."""
    response = requests.get(
        fuzz_host.url("/api/users"),
        params={"top": "5"},
        headers={"Authorization": f"Bearer {caller.token()}"},
        timeout=60,
    )
    users = response.json()["value"]
    return [user["id"] for user in users] + [user["userPrincipalName"] for user in users]


@pytest.fixture(scope="module")
def known_messages(
    fuzz_host: DevHostProcess, caller: Caller, local_tenant: LocalTenant
) -> list[tuple[str, str]]:
    """(mailbox, message id) pairs of real messages: random ids would only ever be unknown (404)."""
    mailbox = local_tenant.env["DEMO_USER_USERNAME"]
    response = requests.get(
        fuzz_host.url(f"/api/users/{mailbox}/messages"),
        params={"top": "5"},
        headers={"Authorization": f"Bearer {caller.token()}"},
        timeout=60,
    )
    return [(mailbox, item["id"]) for item in response.json()["value"]]


PUBLIC_PATHS = frozenset({"/api/health", "/api/openapi.json"})
#: Graph's webhooks: anonymous at the host, authenticated by each notification's clientState.
WEBHOOK_PATHS = frozenset({"/api/graph/notifications", "/api/graph/lifecycle"})


def _bearer_accepted(operation: Any) -> bool:
    """True when the operation accepts a bearer token (some accept only a person's session cookie)."""
    security = openapi_document()["paths"][operation.path][operation.method.lower()]["security"]
    return {"bearerAuth": []} in security


def _strategy(
    operation: Any,
    known_ids: list[str],
    known_messages: Sequence[tuple[str, str]] = (),
) -> st.SearchStrategy[Any]:
    """The operation's positive and negative cases, plus positive cases aimed at real objects. Each of those
    is built once per value (a ``one_of``), never per example: a ``flatmap`` into ``as_strategy`` made
    schemathesis build and validate a new strategy for every case drawn."""
    positive: st.SearchStrategy[Any] = operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
    if not operation.path_parameters and not operation.query:
        return positive  # nothing to violate
    strategies = [positive, operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)]
    names = {parameter.name for parameter in operation.path_parameters}

    def aimed(path_parameters: dict[str, str]) -> st.SearchStrategy[Any]:
        return operation.as_strategy(generation_mode=GenerationMode.POSITIVE, path_parameters=path_parameters)

    if "id" in names:
        strategies.append(st.one_of(*(aimed({"id": user_id}) for user_id in known_ids)))
    if "date" in names:
        # The schema's date pattern (four, two and two digits) mostly yields impossible dates (a 400): real
        # calendar dates reach the lookup itself. The date is drawn beside a positive case and put in it.
        days = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2099, 12, 31))
        strategies.append(st.tuples(days, positive).map(_on_date))
    if "message_id" in names and known_messages:
        strategies.append(
            st.one_of(*(aimed({"id": mailbox, "message_id": message}) for mailbox, message in known_messages))
        )
    return st.one_of(*strategies)


def _on_date(drawn: tuple[dt.date, Any]) -> Any:
    """The case with its ``date`` path parameter set to the drawn calendar date."""
    day, case = drawn
    case.path_parameters = {**(case.path_parameters or {}), "date": day.isoformat()}
    return case


def _fuzz(
    operation: Any,
    known_ids: list[str],
    send: Callable[[Any], None],
    known_messages: Sequence[tuple[str, str]] = (),
) -> int:
    """Send the operation's generated cases; returns how many were sent, after checking that they did
    exercise it: every documented path and query parameter was present in at least one case (a run that
    sent one case, or never set a parameter, fuzzed nothing of it)."""
    sent: list[int] = []
    present: set[str] = set()

    @given(case=_strategy(operation, known_ids, known_messages))
    @BOUNDED
    def run(case: Any) -> None:
        send(case)
        sent.append(1)
        present.update(case.path_parameters or {})
        present.update(case.query or {})

    run()
    documented = {p.name for p in operation.path_parameters} | {p.name for p in operation.query}
    assert documented <= present, f"never sent: {sorted(documented - present)}"
    return len(sent)


#: Fuzzed with a token: reads only. A fuzzed POST /api/reports/users would queue real report runs on the
#: session host (background Graph traffic under other tests' request counts); it is fuzzed without a token,
#: and tests/integration/test_report.py covers its input errors.
READ_OPERATIONS = [label for label in OPERATIONS if not label.startswith("POST ")]
#: The session host has no report yet: its report reads answer 400 or 404, never 200.
REPORT_STATUSES = (400, 404)


@pytest.mark.parametrize("label", READ_OPERATIONS)
def test_fuzz_with_a_caller_token(
    live_schema: Any,
    fuzz_host: DevHostProcess,
    keep_alive: requests.Session,
    caller: Caller,
    known_ids: list[str],
    known_messages: list[tuple[str, str]],
    label: str,
) -> None:
    operation = live_schema.find_operation_by_label(label)
    protected = operation.path not in PUBLIC_PATHS
    bearer = _bearer_accepted(operation) if protected else True
    reports = operation.path.startswith("/api/reports")
    statuses: list[int] = []

    def send(case: Any) -> None:
        # Replace the Authorization value schemathesis generates from the security scheme (it would win
        # over call_and_validate's extra headers).
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {caller.token()}"}
        response = case.call_and_validate(
            base_url=fuzz_host.base_url, session=keep_alive, checks=CHECKS, timeout=60
        )
        statuses.append(response.status_code)
        allowed = (
            REPORT_STATUSES if reports else ((200, 400, 404) if bearer else (403,)) if protected else (200,)
        )
        assert response.status_code in allowed, (case.path_parameters, case.query, response.text[:300])

    assert _fuzz(operation, known_ids, send, known_messages) >= 1
    # The success path was exercised, not only rejections (for reports, the session host has no report yet:
    # a well-formed date was looked up and not found). A cookie-only endpoint refuses every bearer token.
    if reports:
        assert 404 in statuses
    elif bearer:
        assert 200 in statuses


@pytest.mark.parametrize("label", OPERATIONS)
def test_fuzz_without_a_token(
    live_schema: Any,
    fuzz_host: DevHostProcess,
    keep_alive: requests.Session,
    known_ids: list[str],
    label: str,
) -> None:
    operation = live_schema.find_operation_by_label(label)
    protected = operation.path not in PUBLIC_PATHS

    def send(case: Any) -> None:
        if case.headers:
            case.headers.pop("Authorization", None)  # schemathesis fills one in from the security scheme
        response = case.call_and_validate(
            base_url=fuzz_host.base_url, session=keep_alive, checks=CHECKS, timeout=60
        )
        if operation.path in WEBHOOK_PATHS:
            # Graph sends no token: the handshake is echoed, a post is taken (202) or refused as malformed;
            # its notifications are authenticated by their clientState, later.
            assert response.status_code in (200, 202, 400, 413), response.text[:300]
        elif protected:
            assert response.status_code == 401, response.text[:300]
            assert _header(response, "WWW-Authenticate") == "Bearer"
        else:
            assert response.status_code == 200

    assert _fuzz(operation, known_ids, send) >= 1
