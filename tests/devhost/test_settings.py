"""host.json / local.settings.json reading, app-setting precedence, host id, indexing."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from devhost.discovery import ALL_METHODS, DiscoveryError, discover, import_app_module
from devhost.host import build_state
from devhost.schedule_status import MemoryStatusStore, host_id
from devhost.settings import (
    DEFAULT_FUNCTION_TIMEOUT,
    SettingsError,
    apply_values,
    load_host_config,
    load_local_settings,
    request_body_limit,
    resolve_port,
    thread_count,
)


def write_json(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document))
    return path


def test_local_settings_values_and_host_section(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "local.settings.json",
        {
            "IsEncrypted": False,
            "Values": {"A": "1", "FLAG": True, "COUNT": 3, "EMPTY": "", "NULL": None},
            "Host": {"LocalHttpPort": 7072, "CORS": "http://a.test, http://b.test", "CORSCredentials": True},
        },
    )
    settings = load_local_settings(path)
    assert settings.exists
    assert dict(settings.values) == {"A": "1", "FLAG": "True", "COUNT": "3", "EMPTY": ""}
    assert settings.local_http_port == 7072
    assert settings.cors_origins == ("http://a.test", "http://b.test")
    assert settings.cors_credentials is True


def test_missing_local_settings_is_allowed(tmp_path: Path) -> None:
    settings = load_local_settings(tmp_path / "local.settings.json")
    assert not settings.exists
    assert dict(settings.values) == {}


@pytest.mark.parametrize(
    "document",
    [
        {"IsEncrypted": True, "Values": {"A": "x"}},
        {"Values": ["not", "an", "object"]},
        {"Values": {"A": {"nested": 1}}},
        {"Host": {"LocalHttpPort": "7071"}},
        {"Host": {"LocalHttpPort": 70000}},
        ["not an object"],
    ],
)
def test_unusable_local_settings(tmp_path: Path, document: object) -> None:
    with pytest.raises(SettingsError):
        load_local_settings(write_json(tmp_path / "local.settings.json", document))


def test_invalid_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text("{ not json")
    with pytest.raises(SettingsError, match=r"local\.settings\.json"):
        load_local_settings(path)


def test_environment_wins_over_local_settings() -> None:
    environ = {"EXISTING": "from-env", "SAME": "same"}
    skipped = apply_values({"EXISTING": "from-file", "NEW": "from-file", "SAME": "same"}, environ)
    assert skipped == ["EXISTING"]  # an equal value is no conflict: nothing to warn about
    assert environ["EXISTING"] == "from-env"
    assert environ["NEW"] == "from-file"
    assert environ["AZURE_FUNCTIONS_ENVIRONMENT"] == "Development"


def test_functions_environment_is_not_forced_when_set() -> None:
    environ = {"AZURE_FUNCTIONS_ENVIRONMENT": "Staging"}
    apply_values({}, environ)
    assert environ["AZURE_FUNCTIONS_ENVIRONMENT"] == "Staging"


def test_host_json_route_prefix(tmp_path: Path) -> None:
    write_json(tmp_path / "host.json", {"version": "2.0"})
    assert load_host_config(tmp_path).route_prefix == "api"
    write_json(tmp_path / "host.json", {"version": "2.0", "extensions": {"http": {"routePrefix": ""}}})
    assert load_host_config(tmp_path).route_prefix == ""
    write_json(tmp_path / "host.json", {"version": "2.0", "extensions": {"http": {"routePrefix": "/v1/"}}})
    assert load_host_config(tmp_path).route_prefix == "v1"


def test_host_json_functions_list(tmp_path: Path) -> None:
    write_json(tmp_path / "host.json", {"version": "2.0", "functions": ["a", "b"]})
    assert load_host_config(tmp_path).functions == ("a", "b")
    write_json(tmp_path / "host.json", {"version": "2.0", "functions": "a"})
    with pytest.raises(SettingsError):
        load_host_config(tmp_path)


@pytest.mark.parametrize(
    ("value", "timeout"),
    [
        ("00:00:01", dt.timedelta(seconds=1)),
        ("00:05:00", dt.timedelta(minutes=5)),
        ("00:10", dt.timedelta(minutes=10)),
        ("1.02:03:04.5", dt.timedelta(days=1, hours=2, minutes=3, seconds=4.5)),
        ("2", dt.timedelta(days=2)),  # TimeSpan.Parse reads a bare number as days
        ("-1", None),  # no limit
    ],
)
def test_host_json_function_timeout(tmp_path: Path, value: str, timeout: dt.timedelta | None) -> None:
    write_json(tmp_path / "host.json", {"version": "2.0", "functionTimeout": value})
    assert load_host_config(tmp_path).function_timeout == timeout


def test_function_timeout_defaults_to_the_hosts_30_minutes(tmp_path: Path) -> None:
    write_json(tmp_path / "host.json", {"version": "2.0"})
    assert load_host_config(tmp_path).function_timeout == DEFAULT_FUNCTION_TIMEOUT == dt.timedelta(minutes=30)


@pytest.mark.parametrize("value", ["00:00:00.5", "00:00:00", "five minutes", "24:00:00", "00:60:00", 300])
def test_unusable_function_timeout_stops_the_host_like_the_real_one(tmp_path: Path, value: object) -> None:
    write_json(tmp_path / "host.json", {"version": "2.0", "functionTimeout": value})
    with pytest.raises(SettingsError, match="functionTimeout"):
        load_host_config(tmp_path)


def test_host_json_is_required(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"host\.json not found"):
        load_host_config(tmp_path)


def test_port_precedence(tmp_path: Path) -> None:
    with_port = load_local_settings(write_json(tmp_path / "a.json", {"Host": {"LocalHttpPort": 7072}}))
    without = load_local_settings(tmp_path / "missing.json")
    assert resolve_port(8080, with_port) == 8080  # the command line wins
    assert resolve_port(None, with_port) == 7072
    assert resolve_port(None, without) == 7071


def test_request_body_limit() -> None:
    assert request_body_limit({}) == 100 * 1024 * 1024
    assert request_body_limit({"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": "2048"}) == 2048
    assert request_body_limit({"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": "-1"}) == 100 * 1024 * 1024


def test_thread_count() -> None:
    assert 1 <= thread_count({}) <= 32
    assert thread_count({"PYTHON_THREADPOOL_THREAD_COUNT": "3"}) == 3
    assert thread_count({"PYTHON_THREADPOOL_THREAD_COUNT": "zero"}) == thread_count({})
    assert thread_count({"PYTHON_THREADPOOL_THREAD_COUNT": "0"}) == thread_count({})


def test_host_id(tmp_path: Path) -> None:
    assert host_id({"AzureFunctionsWebHost__hostid": "My-Host"}, tmp_path) == "my-host"
    assert host_id({"WEBSITE_SITE_NAME": "Graph_Functions.Prod"}, tmp_path) == "graph-functions-prod"
    derived = host_id({}, tmp_path)
    assert derived == host_id({}, tmp_path)  # stable for one app directory
    assert derived != host_id({}, tmp_path / "other")
    assert len(derived) <= 32
    assert derived == derived.lower()
    assert not derived.endswith("-")


APP = """
import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

@app.route(route="users/{id}", methods=["GET", "POST"])
def get_user(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("x")

@app.function_name("Nightly")
@app.timer_trigger(schedule="%NIGHTLY%", arg_name="mytimer", run_on_startup=True, use_monitor=False)
def nightly(mytimer: func.TimerRequest) -> None:
    pass

@app.route()
async def everything(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return func.HttpResponse("x")

@app.route(route="mismatch")
def mismatch(request: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("x")
"""


def test_discovery_uses_the_librarys_introspection(tmp_path: Path) -> None:
    (tmp_path / "devhost_discovery_app.py").write_text(APP)
    specs = {s.name: s for s in discover(import_app_module(tmp_path, "devhost_discovery_app.py"))}
    assert set(specs) == {"get_user", "Nightly", "everything", "mismatch"}

    user = specs["get_user"]
    assert user.http is not None
    assert (user.http.route, user.http.methods, user.http.auth_level) == (
        "users/{id}",
        frozenset({"GET", "POST"}),
        "anonymous",
    )
    assert (user.trigger_arg, user.is_async, user.wants_context) == ("req", False, False)

    nightly = specs["Nightly"]
    assert nightly.timer is not None
    assert (nightly.timer.schedule, nightly.timer.run_on_startup, nightly.timer.use_monitor) == (
        "%NIGHTLY%",
        True,
        False,
    )
    assert nightly.trigger_arg == "mytimer"
    assert nightly.bindings[0]["type"] == "timerTrigger"

    everything = specs["everything"]
    assert everything.http is not None
    assert everything.http.route == "everything"  # no route: the function name
    assert everything.http.methods == ALL_METHODS
    assert (everything.trigger_arg, everything.is_async, everything.wants_context) == ("req", True, True)
    assert everything.error is None

    # The worker refuses a function whose parameters do not match its bindings.
    assert specs["mismatch"].error is not None
    assert "request" in specs["mismatch"].error


def test_discovery_errors(tmp_path: Path) -> None:
    (tmp_path / "devhost_broken_app.py").write_text("raise RuntimeError('boom at import')\n")
    with pytest.raises(DiscoveryError, match="boom at import"):
        import_app_module(tmp_path, "devhost_broken_app.py")
    (tmp_path / "devhost_no_app.py").write_text("x = 1\n")
    with pytest.raises(DiscoveryError, match="no FunctionApp"):
        discover(import_app_module(tmp_path, "devhost_no_app.py"))
    with pytest.raises(DiscoveryError, match="not found"):
        import_app_module(tmp_path, "missing.py")


HOST_APP = """
import azure.functions as func

app = func.FunctionApp()

@app.route(route="admin/tools")
def shadowed(req: func.HttpRequest) -> str:
    return "x"

@app.route(route="items/{id:nonsense}")
def bad_route(req: func.HttpRequest) -> str:
    return "x"

@app.route(route="ok")
def ok(req: func.HttpRequest) -> str:
    return "x"

@app.route(route="skipped")
def not_listed(req: func.HttpRequest) -> str:
    return "x"
"""


def test_build_state_reports_bad_functions_and_applies_the_functions_list(tmp_path: Path) -> None:
    (tmp_path / "devhost_state_app.py").write_text(HOST_APP)
    specs = discover(import_app_module(tmp_path, "devhost_state_app.py"))
    host_json = write_json(
        tmp_path / "host.json",
        {
            "version": "2.0",
            "functions": ["shadowed", "bad_route", "ok"],
            "extensions": {"http": {"routePrefix": ""}},
        },
    )
    state = build_state(
        specs,
        host_config=load_host_config(host_json.parent),
        environ={},
        app_dir=tmp_path,
        host_id="test",
        store=MemoryStatusStore(),
        tz=dt.UTC,
        thread_count=2,
        body_limit=1024,
        schedule_timers=False,
        graceful_timeout=1,
    )
    assert set(state.functions) == {"shadowed", "bad_route", "ok"}  # not_listed is not loaded
    assert set(state.errors) == {"shadowed", "bad_route"}
    assert "admin" in state.errors["shadowed"]
    assert "nonsense" in state.errors["bad_route"]
    resolved = state.router.resolve("GET", "/ok")
    assert resolved is not None
    assert resolved.target.name == "ok"
