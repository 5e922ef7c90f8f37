"""devhost serving the fixture app over real HTTP (one process per module, timers off)."""

from __future__ import annotations

import json
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from tests.devhost.conftest import FIXTURE_APP
from tests.devhost.fixtures import DevHostProcess, start_devhost

TIMEOUT = 15


def get(host: DevHostProcess, path: str, **kwargs: object) -> requests.Response:
    return requests.get(host.url(path), timeout=TIMEOUT, **kwargs)  # type: ignore[arg-type]


def test_health_and_content_type(http_host: DevHostProcess) -> None:
    response = get(http_host, "/api/health")
    assert response.status_code == 200
    assert response.text == "ok"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_route_parameters_and_constraints(http_host: DevHostProcess) -> None:
    assert get(http_host, "/api/users/42").json() == {"id": 42, "route": "by-id"}
    assert get(http_host, "/api/users/me").json() == {"route": "me"}  # literal beats {id:int}
    assert get(http_host, "/api/users/abc").status_code == 404  # {id:int} rejects it

    item = str(uuid.uuid4())
    assert get(http_host, f"/api/items/{item}").json() == {"id": item, "method": "GET"}
    deleted = requests.delete(http_host.url(f"/api/items/{item}"), timeout=TIMEOUT)
    assert deleted.json() == {"id": item, "method": "DELETE"}
    assert get(http_host, "/api/items/not-a-guid").status_code == 404

    assert get(http_host, "/api/names/alice").json() == {"name": "alice"}
    assert get(http_host, "/api/names/alice/smith").json() == {"name": "alice", "suffix": "smith"}
    assert get(http_host, "/api/names/al1ce").status_code == 404

    assert get(http_host, "/api/files/a/b/report.pdf").json() == {"path": "a/b/report.pdf"}
    assert get(http_host, "/api/files").json() == {"path": None}


def test_route_values_with_encoded_line_breaks_reach_the_function(http_host: DevHostProcess) -> None:
    # Percent-encoded CR/LF are legal in a request target; the host routes them like any other character.
    assert get(http_host, "/api/files/a%0Ab%0Dc").json() == {"path": "a\nb\rc"}


def test_route_prefix_default_route_and_function_name(http_host: DevHostProcess) -> None:
    assert get(http_host, "/users/42").status_code == 404  # routes live under /api
    assert get(http_host, "/api/default_route").text == "default route"
    assert get(http_host, "/api/renamed").text == "renamed"


def test_method_not_declared_is_404_like_the_host(http_host: DevHostProcess) -> None:
    assert requests.put(http_host.url(f"/api/items/{uuid.uuid4()}"), timeout=TIMEOUT).status_code == 404
    assert requests.post(http_host.url("/api/health"), timeout=TIMEOUT).status_code == 404
    assert requests.request("PROPFIND", http_host.url("/api/health"), timeout=TIMEOUT).status_code == 404


def test_request_conversion(http_host: DevHostProcess) -> None:
    response = requests.post(
        http_host.url("/api/echo?a=1&a=2&empty=&name=J%C3%BCrgen"),
        data="payload",
        headers={"Content-Type": "text/plain", "X-Multi": "one"},
        timeout=TIMEOUT,
    )
    echoed = response.json()
    assert echoed["method"] == "POST"
    assert echoed["params"] == {"a": "1,2", "name": "Jürgen"}  # the host drops empty values
    assert echoed["route_params"] == {}
    assert echoed["body"] == "payload"
    assert echoed["content_type"] == "text/plain"
    assert echoed["x_multi"] == "one"
    assert echoed["url"] == http_host.url("/api/echo?a=1&a=2&empty=&name=J%C3%BCrgen")


def test_query_keys_merge_case_insensitively_and_empty_values_are_dropped(http_host: DevHostProcess) -> None:
    response = requests.post(http_host.url("/api/echo?top=1&TOP=2&select=&search"), timeout=TIMEOUT)
    assert response.json()["params"] == {"top": "1,2"}


def test_a_chunked_body_arrives_empty_like_on_the_host(http_host: DevHostProcess) -> None:
    # A generator body makes requests send Transfer-Encoding: chunked, without Content-Length.
    chunked = requests.post(http_host.url("/api/echo"), data=iter([b"chunk-1", b"chunk-2"]), timeout=TIMEOUT)
    assert chunked.status_code == 200
    assert chunked.json()["body"] == ""
    assert "the body has no Content-Length (chunked)" in http_host.log()
    assert "chunk-1" not in http_host.log()
    sized = requests.post(http_host.url("/api/echo"), data=b"sized", timeout=TIMEOUT)
    assert sized.json()["body"] == "sized"


def test_catch_all_route_value_keeps_an_encoded_slash(http_host: DevHostProcess) -> None:
    assert get(http_host, "/api/files/a%2Fb/c.txt").json() == {"path": "a%2Fb/c.txt"}


def test_multiple_set_cookie_headers_survive(http_host: DevHostProcess) -> None:
    response = get(http_host, "/api/cookies")
    assert response.raw.headers.getlist("Set-Cookie") == [
        "first=1; Path=/; HttpOnly",
        "second=2; Path=/; Secure",
    ]
    assert response.cookies.get("first") == "1"
    assert response.cookies.get("second") == "2"
    assert response.headers["X-Fixture"] == "yes"


def test_plain_return_values(http_host: DevHostProcess) -> None:
    text = get(http_host, "/api/text")
    assert (text.status_code, text.text, text.headers["Content-Type"]) == (
        200,
        "plain string",
        "text/plain; charset=utf-8",
    )
    nothing = get(http_host, "/api/nothing")
    assert (nothing.status_code, nothing.content) == (204, b"")


def test_async_function(http_host: DevHostProcess) -> None:
    assert get(http_host, "/api/hello/async").text == "async hello"


def test_sync_functions_run_concurrently(http_host: DevHostProcess) -> None:
    # The fixture's threading.Barrier(4) only releases when 4 calls are inside it
    # at the same time; run one after another, each would wait 10 s and get 504.
    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda _: get(http_host, "/api/barrier/sync"), range(4)))
    assert [(r.status_code, r.text) for r in responses] == [(200, "released")] * 4


def test_async_functions_run_concurrently(http_host: DevHostProcess) -> None:
    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda _: get(http_host, "/api/barrier/async"), range(4)))
    assert [(r.status_code, r.text) for r in responses] == [(200, "released")] * 4


def test_a_raising_function_gives_500_and_the_host_survives(http_host: DevHostProcess) -> None:
    response = get(http_host, "/api/boom")
    assert (response.status_code, response.text) == (500, "Internal Server Error")
    assert response.headers["Content-Type"].startswith("text/plain")
    assert "RuntimeError: fixture failure" in http_host.log()
    assert get(http_host, "/api/bad-return").status_code == 500
    assert "must return func.HttpResponse, str or None, not dict" in http_host.log()
    assert get(http_host, "/api/health").status_code == 200


def test_context_parameter(http_host: DevHostProcess) -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    context = get(http_host, "/api/context", headers={"traceparent": parent}).json()
    assert context["function_name"] == "with_context"
    assert uuid.UUID(context["invocation_id"])
    assert Path(context["function_directory"]) == FIXTURE_APP
    assert context["trace_parent"] == parent


def test_settings_file_values_reach_the_app(http_host: DevHostProcess) -> None:
    settings = get(http_host, "/api/settings").json()
    assert settings["greeting"] == "from-settings-file"
    assert settings["environment"] == "Development"
    assert Path(settings["cwd"]) == FIXTURE_APP  # the worker runs in the app root


def test_disabled_function_is_not_routed(http_host: DevHostProcess) -> None:
    assert get(http_host, "/api/disabled").status_code == 404
    assert "disabled_function: disabled" in http_host.log()


def test_banner_lists_functions_with_urls(http_host: DevHostProcess) -> None:
    log = http_host.log()
    assert f"health: [GET] http://localhost:{http_host.port}/api/health" in log
    assert f"get_user: [GET] http://localhost:{http_host.port}/api/users/{{id:int}}" in log
    assert "every_second: timerTrigger '* * * * * *', not scheduled (--no-timers)" in log
    assert "Auth levels are not enforced locally" in log
    assert ":7999" not in log  # --port wins over Host.LocalHttpPort


def test_home_page(http_host: DevHostProcess) -> None:
    response = get(http_host, "/")
    assert response.status_code == 200
    assert "up and running" in response.text


def test_admin_host_status_and_functions(http_host: DevHostProcess) -> None:
    status = get(http_host, "/admin/host/status").json()
    assert status["state"] == "Running"
    functions = {f["name"]: f for f in get(http_host, "/admin/functions").json()}
    assert functions["health"]["invoke_url_template"] == http_host.url("/api/health")
    assert functions["yearly"]["config"]["bindings"][0]["type"] == "timerTrigger"
    assert functions["disabled_function"]["isDisabled"] is True


def test_admin_invoke_errors_are_json(http_host: DevHostProcess) -> None:
    def invoke(name: str, body: object = None, data: str | None = None) -> requests.Response:
        url = http_host.url(f"/admin/functions/{name}")
        if data is not None:
            return requests.post(url, data=data, timeout=TIMEOUT)
        return requests.post(url, json=body if body is not None else {"input": ""}, timeout=TIMEOUT)

    cases = [
        (invoke("no_such_function"), 404, "FunctionNotFound"),
        (invoke("health"), 400, "HttpFunction"),
        (invoke("yearly", data="{not json"), 400, "InvalidRequestBody"),
        (invoke("yearly", body=["not", "an", "object"]), 400, "InvalidRequestBody"),
    ]
    for response, status, code in cases:
        assert response.status_code == status
        assert response.json()["error"]["code"] == code


def test_request_log_has_method_path_status_and_no_secrets(http_host: DevHostProcess) -> None:
    requests.post(
        http_host.url("/api/echo?token=query-secret-1234"),
        data="body-secret-5678",
        headers={"Authorization": "Bearer header-secret-9012", "Cookie": "session=cookie-secret-3456"},
        timeout=TIMEOUT,
    )
    log = http_host.log()
    assert re.search(r"devhost\.http: POST /api/echo 200 \d+\.\dms", log)
    for secret in ("query-secret-1234", "body-secret-5678", "header-secret-9012", "cookie-secret-3456"):
        assert secret not in log


def test_cors_and_body_limit_from_settings(tmp_path: Path) -> None:
    settings = tmp_path / "local.settings.json"
    settings.write_text(
        json.dumps(
            {
                "Values": {"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": "16"},
                "Host": {"CORS": "http://app.test", "CORSCredentials": False},
            }
        )
    )
    host = start_devhost(
        FIXTURE_APP,
        log_path=tmp_path / "devhost.log",
        env={"DEVHOST_FIXTURE_OUT": str(tmp_path)},
        args=("--no-timers", "--settings", str(settings)),
    )
    try:
        preflight = requests.options(
            host.url("/api/echo"),
            headers={"Origin": "http://app.test", "Access-Control-Request-Method": "POST"},
            timeout=TIMEOUT,
        )
        assert preflight.status_code == 204  # ASP.NET Core's CORS middleware, as Core Tools runs it
        assert preflight.headers["Access-Control-Allow-Origin"] == "http://app.test"
        simple = get(host, "/api/health", headers={"Origin": "http://app.test"})
        assert simple.headers["Access-Control-Allow-Origin"] == "http://app.test"
        assert (
            "Access-Control-Allow-Origin"
            not in get(host, "/api/health", headers={"Origin": "http://x.test"}).headers
        )

        small = requests.post(host.url("/api/echo"), data="x" * 16, timeout=TIMEOUT)
        assert small.status_code == 200
        large = requests.post(host.url("/api/echo"), data="x" * 17, timeout=TIMEOUT)
        assert large.status_code == 413
    finally:
        assert host.stop() == 0
