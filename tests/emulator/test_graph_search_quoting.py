"""``$search`` quoting on directory objects, in process: inside a double-quoted clause, ``\\"`` and ``\\\\``
are escapes (Microsoft Graph, "Use the $search query parameter", directory object collections); any other
character, a colon included, stands for itself once URL-decoded."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.emulator.graph_kit import InProcess, Reply, assert_graph_error

ADV = {"ConsistencyLevel": "eventual"}
NAMES = {
    "quote": 'Quinn "Q" Quarles',
    "backslash": "Bram Back\\Slash",
    "colon": "Cora Colon: Keys",
}


@pytest.fixture(scope="module")
def g(tmp_path_factory: pytest.TempPathFactory) -> InProcess:
    return InProcess.create(Path(tmp_path_factory.mktemp("graph-search-quoting")), users=30)


@pytest.fixture(scope="module")
def ids(g: InProcess) -> dict[str, str]:
    created = {}
    template = g.state.directory.users[-1]
    for key, name in NAMES.items():
        user = dataclasses.replace(
            template, id=str(uuid.uuid4()), user_principal_name=f"{key}@quoting.example", display_name=name
        )
        g.state.directory.add_user(user)
        created[key] = user.id
    return created


@pytest.fixture(scope="module")
def token(g: InProcess) -> str:
    return g.app_token("User.Read.All")


def search(g: InProcess, token: str, expression: str) -> Reply:
    return g.get(
        f"/v1.0/users?$search={quote(expression, safe='')}&$select=id,displayName&$top=999", token, **ADV
    )


def found(reply: Reply) -> set[str]:
    assert reply.status_code == 200, reply.text
    return {user["id"] for user in reply.json()["value"]}


@pytest.mark.parametrize(
    ("key", "expression"),
    [
        ("quote", '"displayName:\\"Q\\""'),
        ("quote", '"displayName:Quinn \\"Q"'),
        ("backslash", '"displayName:Back\\\\Slash"'),
        ("colon", '"displayName:Colon: Keys"'),  # the first colon ends the property name, later ones are text
    ],
)
def test_escaped_quotes_backslashes_and_colons_are_searchable(
    g: InProcess, token: str, ids: dict[str, str], key: str, expression: str
) -> None:
    assert ids[key] in found(search(g, token, expression))


@pytest.mark.parametrize("term", ['"', "\\", '\\"', "a:b", 'x" OR "mail:y'])
def test_the_apps_escaping_of_any_term_is_valid_syntax(g: InProcess, token: str, term: str) -> None:
    escaped = term.replace("\\", "\\\\").replace('"', '\\"')
    assert isinstance(found(search(g, token, f'"displayName:{escaped}" OR "mail:{escaped}"')), set)


def test_an_escaped_quote_does_not_end_the_clause(g: InProcess, token: str, ids: dict[str, str]) -> None:
    # Were \" the end of the clause, the rest ( OR "mail:zzz") would be another clause and the OR would
    # widen the result; as one clause it matches only the names with every word.
    assert found(search(g, token, '"displayName:Quinn\\" OR \\"mail:zzz"')) == set()


@pytest.mark.parametrize(
    "expression",
    [
        '"displayName:a"b"',  # an unescaped quote ends the clause early
        '"displayName:a\\"',  # the backslash escapes the closing quote: the clause never ends
        '"displayName:a\\x"',  # only \" and \\ are escapes [INFERRED]
    ],
)
def test_malformed_quoting_is_a_syntax_error(g: InProcess, token: str, expression: str) -> None:
    assert_graph_error(search(g, token, expression), 400, "BadRequest")
