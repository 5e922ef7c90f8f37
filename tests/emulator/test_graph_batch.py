"""``POST /v1.0/$batch`` in process: limits, payload validation, dispatch and ``dependsOn``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.emulator.graph_kit import InProcess, assert_graph_error, eventually


@pytest.fixture(scope="module")
def g(tmp_path_factory: pytest.TempPathFactory) -> InProcess:
    return InProcess.create(Path(tmp_path_factory.mktemp("graph-batch")))


@pytest.fixture
def fresh(g: InProcess) -> Iterator[InProcess]:
    yield g
    g.state.reset()


@pytest.fixture(scope="module")
def token(g: InProcess) -> str:
    return g.app_token("User.Read.All", "Mail.Read", "Mail.Send", "GroupMember.Read.All")


def batch(g: InProcess, token: str, requests: object):  # type: ignore[no-untyped-def]
    return g.post("/v1.0/$batch", token, {"requests": requests})


def test_sub_requests_go_through_the_same_handlers(g: InProcess, token: str) -> None:
    admin = g.state.ids.admin
    guest = next(u for u in g.state.directory.users if "#EXT#" in u.user_principal_name)
    reply = batch(
        g,
        token,
        [
            {"id": "users", "method": "GET", "url": "/users?$top=2&$select=id"},
            {"id": "admin", "method": "get", "url": f"users/{admin.user_principal_name}?$select=displayName"},
            {"id": "guest", "method": "GET", "url": f"/users/{quote(guest.user_principal_name)}?$select=id"},
            {"id": "missing", "method": "GET", "url": "/users/nobody"},
            {
                "id": "count",
                "method": "GET",
                "url": "/users/$count",
                "headers": {"ConsistencyLevel": "eventual"},
            },
            {
                "id": "mail",
                "method": "GET",
                "url": f"/users/{admin.id}/messages?$top=1&$select=subject",
                "headers": {"Prefer": 'outlook.body-content-type="text"'},
            },
            {"id": "versioned", "method": "GET", "url": "/v1.0/users"},
        ],
    )
    assert reply.status_code == 200
    out = {r["id"]: r for r in reply.json()["responses"]}
    assert sorted(r["id"] for r in reply.json()["responses"]) == sorted(
        ["users", "admin", "guest", "missing", "count", "mail", "versioned"]
    )
    assert out["users"]["status"] == 200 and len(out["users"]["body"]["value"]) == 2
    assert out["users"]["headers"]["Content-Type"].startswith("application/json")
    assert out["admin"]["body"]["displayName"] == "Alex Admin"
    assert out["guest"]["body"]["id"] == guest.id
    assert (
        out["missing"]["status"] == 404
        and out["missing"]["body"]["error"]["code"] == "Request_ResourceNotFound"
    )
    assert out["count"]["status"] == 200 and out["count"]["body"] == str(len(g.state.directory.users))
    assert out["mail"]["headers"]["Preference-Applied"] == 'outlook.body-content-type="text"'
    assert out["versioned"]["status"] == 400
    assert out["versioned"]["body"]["error"]["message"] == "Resource not found for the segment 'v1.0'."


def test_post_sub_request_with_body(fresh: InProcess, token: str) -> None:
    member = fresh.state.ids.member
    reply = batch(
        fresh,
        token,
        [
            {
                "id": "1",
                "method": "POST",
                "url": f"/users/{fresh.state.ids.admin.id}/sendMail",
                "headers": {"Content-Type": "application/json"},
                "body": {
                    "message": {
                        "subject": "from a batch",
                        "toRecipients": [{"emailAddress": {"address": member.mail}}],
                    }
                },
            },
            {
                "id": "2",
                "method": "GET",
                "url": f"/users/{member.id}/messages?$top=1&$select=subject",
                "dependsOn": ["1"],
            },
        ],
    )
    out = {r["id"]: r for r in reply.json()["responses"]}
    assert out["1"]["status"] == 202 and "body" not in out["1"]
    assert out["2"]["status"] == 200  # ran after the send was accepted, before its delivery
    assert out["2"]["body"]["value"][0]["subject"] != "from a batch"
    eventually(
        lambda: (
            fresh.get(f"/v1.0/users/{member.id}/messages?$top=1&$select=subject", token).json()["value"][0][
                "subject"
            ]
            == "from a batch"
            or None
        )
    )


def test_depends_on_a_failure_gives_424(g: InProcess, token: str) -> None:
    reply = batch(
        g,
        token,
        [
            {"id": "c", "method": "GET", "url": "/users?$top=1", "dependsOn": ["b"]},
            {"id": "a", "method": "GET", "url": "/users/nobody"},
            {"id": "b", "method": "GET", "url": "/users?$top=1", "dependsOn": ["a"]},
            {"id": "d", "method": "GET", "url": "/groups?$top=1"},
        ],
    )
    out = {r["id"]: r for r in reply.json()["responses"]}
    assert out["a"]["status"] == 404
    assert out["b"]["status"] == 424 and out["b"]["body"]["error"]["code"] == "FailedDependency"
    assert out["c"]["status"] == 424  # a failed dependency propagates
    assert out["d"]["status"] == 200


def test_twenty_requests_is_the_limit(g: InProcess, token: str) -> None:
    twenty = [{"id": str(i), "method": "GET", "url": "/users?$top=1&$select=id"} for i in range(20)]
    answers = batch(g, token, twenty).json()["responses"]
    assert sorted(int(r["id"]) for r in answers) == list(
        range(20)
    )  # every one answered (all() of none is true)
    assert all(r["status"] == 200 for r in answers)
    too_many = [*twenty, {"id": "20", "method": "GET", "url": "/users"}]
    assert_graph_error(
        batch(g, token, too_many), 400, "BadRequest", "Number of requests in batch exceeds 20."
    )


@pytest.mark.parametrize(
    "requests",
    [
        [],
        "nope",
        [{"method": "GET", "url": "/users"}],
        [{"id": "1", "method": "FETCH", "url": "/users"}],
        [{"id": "1", "method": "GET"}],
        [{"id": "1", "method": "GET", "url": "/users"}, {"id": "1", "method": "GET", "url": "/groups"}],
        [{"id": "1", "method": "GET", "url": "/users", "dependsOn": ["9"]}],
        [
            {"id": "1", "method": "GET", "url": "/users", "dependsOn": ["2"]},
            {"id": "2", "method": "GET", "url": "/users", "dependsOn": ["1"]},
        ],
        [{"id": "1", "method": "GET", "url": "https://graph.microsoft.com/v1.0/users"}],
        [
            {
                "id": "1",
                "method": "POST",
                "url": "/$batch",
                "headers": {"Content-Type": "application/json"},
                "body": {},
            }
        ],
        [{"id": "1", "method": "POST", "url": "/me/sendMail", "body": {}}],
    ],
)
def test_invalid_payloads(g: InProcess, token: str, requests: object) -> None:
    assert_graph_error(batch(g, token, requests), 400, "BadRequest")


def test_batch_needs_a_valid_token_and_uses_it_for_every_sub_request(g: InProcess) -> None:
    assert_graph_error(
        g.post("/v1.0/$batch", None, {"requests": [{"id": "1", "method": "GET", "url": "/users"}]}),
        401,
        "InvalidAuthenticationToken",
    )
    reply = batch(
        g,
        g.app_token("Mail.Read"),
        [{"id": "1", "method": "GET", "url": "/users", "headers": {"Authorization": "Bearer forged"}}],
    )
    inner = reply.json()["responses"][0]
    assert inner["status"] == 403 and inner["body"]["error"]["code"] == "Authorization_RequestDenied"


def test_answers_come_in_a_seeded_shuffled_order(fresh: InProcess, token: str) -> None:
    ten = [{"id": str(i), "method": "GET", "url": "/users?$top=1&$select=id"} for i in range(10)]
    fresh.state.reset()
    first = [r["id"] for r in batch(fresh, token, ten).json()["responses"]]
    second = [r["id"] for r in batch(fresh, token, ten).json()["responses"]]
    assert sorted(first, key=int) == [str(i) for i in range(10)]
    assert first != [str(i) for i in range(10)]
    assert second != first  # each batch has its own shuffle
    fresh.state.reset()
    assert [r["id"] for r in batch(fresh, token, ten).json()["responses"]] == first  # same seed, same run
