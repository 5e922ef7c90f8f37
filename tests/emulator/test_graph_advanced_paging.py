"""Advanced queries over real sockets (requests): ``ConsistencyLevel: eventual`` is needed on every page,
because Graph does not carry request headers into ``@odata.nextLink``."""

from __future__ import annotations

import pytest
import requests

from tests.emulator.graph_kit import bearer, mint
from tests.support.tenant import LocalTenant

ADV = {"ConsistencyLevel": "eventual"}
INVALID_TOKEN = "Unable to execute query; invalid page token specified."


@pytest.fixture(scope="module")
def token(tenant: LocalTenant) -> str:
    return mint(tenant, roles=("User.Read.All",))


def _first_page(tenant: LocalTenant, token: str, query: str) -> str:
    reply = requests.get(
        f"{tenant.env['GRAPH_ENDPOINT']}/v1.0/users?{query}", headers=bearer(token, **ADV), timeout=30
    )
    assert reply.status_code == 200, reply.text
    link = reply.json()["@odata.nextLink"]
    assert "$skiptoken=" in link
    return str(link)


@pytest.mark.parametrize(
    "query",
    [
        '$search="displayName:a"&$top=3&$select=id',
        "$count=true&$top=3&$select=id",
        "$orderby=displayName&$top=3&$select=id",
        "$filter=endswith(mail,'.com')&$count=true&$top=3",
    ],
)
def test_page_two_of_an_advanced_query_needs_the_header_again(
    tenant: LocalTenant, token: str, query: str
) -> None:
    link = _first_page(tenant, token, query)
    without = requests.get(link, headers=bearer(token), timeout=30)
    assert without.status_code == 400, without.text
    assert without.json()["error"]["code"] == "Request_UnsupportedQuery"
    assert without.json()["error"]["message"] == INVALID_TOKEN
    with_header = requests.get(link, headers=bearer(token, **ADV), timeout=30)
    assert with_header.status_code == 200, with_header.text
    assert len(with_header.json()["value"]) == 3


def test_a_basic_query_pages_without_the_header(tenant: LocalTenant, token: str) -> None:
    reply = requests.get(
        f"{tenant.env['GRAPH_ENDPOINT']}/v1.0/users?$top=3&$orderby=displayName",
        headers=bearer(token),
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    page_two = requests.get(reply.json()["@odata.nextLink"], headers=bearer(token), timeout=30)
    assert page_two.status_code == 200, page_two.text
    assert len(page_two.json()["value"]) == 3
