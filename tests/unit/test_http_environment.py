"""The app's session applies the environment (proxies, NO_PROXY, the CA variables) exactly as requests does,
reading it once per origin (shared/core/http.py ``_environment_once_session``)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import requests

from shared.core.http import RequestsTransport

ENVIRONMENTS: list[dict[str, str]] = [
    {},
    {"HTTPS_PROXY": "http://proxy.test:3128", "HTTP_PROXY": "http://proxy.test:3129"},
    {"HTTPS_PROXY": "http://proxy.test:3128", "NO_PROXY": "graph.test,.blob.test"},
    {"ALL_PROXY": "socks5://proxy.test:1080", "REQUESTS_CA_BUNDLE": "/etc/bundle.pem"},
    {"CURL_CA_BUNDLE": "/etc/curl.pem", "https_proxy": "http://lower.test:8080"},
]
URLS = ["https://graph.test/v1.0/users", "https://acct.blob.test/c/b", "http://127.0.0.1:10001/q?x=1"]
PROXIES: list[dict[str, Any]] = [{}, {"https": "http://explicit.test:1"}, {"https": None}]
VERIFY: list[Any] = [None, True, False, "/own/bundle.pem"]
CLEARED = ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"]


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


@pytest.mark.parametrize("session_verify", [True, "/session/bundle.pem"])
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_same_settings_as_requests_for_every_combination(
    environment: pytest.MonkeyPatch, env: dict[str, str], session_verify: bool | str
) -> None:
    for name, value in env.items():
        environment.setenv(name, value)
    ours = RequestsTransport().session()
    theirs = requests.Session()
    ours.verify = theirs.verify = session_verify
    # stream and cert only pass through: each combination of the rest meets each of their values in turn.
    passing = itertools.cycle([(None, None), (True, "/client.pem"), (None, "/client.pem"), (True, None)])
    for (url, proxies, verify), (stream, cert) in zip(
        itertools.product(URLS, PROXIES, VERIFY), passing, strict=False
    ):
        for _ in range(2):  # the first call reads the environment, the second the remembered settings
            expected = theirs.merge_environment_settings(url, dict(proxies), stream, verify, cert)
            got = ours.merge_environment_settings(url, dict(proxies), stream, verify, cert)
            assert dict(got) == dict(expected), (env, url, proxies, verify, stream, cert)


def test_a_request_naming_its_own_no_proxy_is_resolved_as_requests_does(
    environment: pytest.MonkeyPatch,
) -> None:
    environment.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    ours, theirs = RequestsTransport().session(), requests.Session()
    for proxies in ({"no_proxy": "graph.test"}, {"no_proxy": "other.test"}):
        url = "https://graph.test/v1.0/me"
        assert dict(ours.merge_environment_settings(url, dict(proxies), None, None, None)) == dict(
            theirs.merge_environment_settings(url, dict(proxies), None, None, None)
        )


def test_the_environment_is_read_once_per_origin(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("HTTPS_PROXY", "http://first.test:1")
    session = RequestsTransport().session()
    url = "https://graph.test/v1.0/users"
    assert session.merge_environment_settings(url, {}, None, None, None)["proxies"]["https"] == (
        "http://first.test:1"
    )
    environment.setenv("HTTPS_PROXY", "http://second.test:2")
    # The same origin keeps what was read (settings are frozen at start); another origin reads it now.
    settings = session.merge_environment_settings(url + "?$top=5", {}, None, None, None)
    assert settings["proxies"]["https"] == "http://first.test:1"
    other = session.merge_environment_settings("https://login.test/token", {}, None, None, None)
    assert other["proxies"]["https"] == "http://second.test:2"
    # A new process (a new session) reads the environment again.
    fresh = RequestsTransport().session().merge_environment_settings(url, {}, None, None, None)
    assert fresh["proxies"]["https"] == "http://second.test:2"


def test_trust_env_off_reads_nothing(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    environment.setenv("REQUESTS_CA_BUNDLE", "/etc/bundle.pem")
    session = RequestsTransport().session()
    session.trust_env = False
    settings = session.merge_environment_settings("https://graph.test/", {}, None, None, None)
    assert settings["proxies"] == {} and settings["verify"] is True
