"""Route templates and matching with the Functions host's (ASP.NET Core's) rules."""

from __future__ import annotations

import pytest

from devhost.routing import RouteError, Router, RouteTemplate


def match(template: str, path: str) -> dict[str, str] | None:
    stripped = path.strip("/")
    return RouteTemplate(template).match(stripped.split("/") if stripped else [])


def test_literal_and_parameter_segments() -> None:
    assert match("users/{id}", "users/42") == {"id": "42"}
    assert match("users/{id}", "users") is None
    assert match("users/{id}", "users/42/extra") is None
    assert match("users/{id}", "USERS/42") == {"id": "42"}  # literals ignore case
    assert match("users/{id}/orders/{order}", "users/1/orders/9") == {"id": "1", "order": "9"}


@pytest.mark.parametrize(
    ("value", "matches"),
    [("42", True), ("-7", True), ("2147483647", True), ("2147483648", False), ("4x", False), ("", False)],
)
def test_int_constraint(value: str, matches: bool) -> None:
    assert (match("items/{id:int}", f"items/{value}") is not None) is matches


def test_long_bool_decimal_constraints() -> None:
    assert match("x/{n:long}", "x/2147483648") == {"n": "2147483648"}
    assert match("x/{b:bool}", "x/True") == {"b": "True"}
    assert match("x/{b:bool}", "x/yes") is None
    assert match("x/{d:decimal}", "x/3.25") == {"d": "3.25"}
    assert match("x/{d:double}", "x/1e3") == {"d": "1e3"}
    assert match("x/{d:float}", "x/abc") is None
    assert match("x/{t:datetime}", "x/2024-01-31") == {"t": "2024-01-31"}
    assert match("x/{t:datetime}", "x/yesterday") is None


@pytest.mark.parametrize(
    ("value", "matches"),
    [
        ("3f2504e0-4f89-11d3-9a0c-0305e82c3301", True),
        ("3F2504E04F8911D39A0C0305E82C3301", True),
        ("{3f2504e0-4f89-11d3-9a0c-0305e82c3301}", True),
        ("3f2504e0-4f89-11d3-9a0c", False),
        ("3f2504e0-4f89-11d3-9a0c-0305e82c330g", False),
    ],
)
def test_guid_constraint(value: str, matches: bool) -> None:
    assert (match("items/{id:guid}", f"items/{value}") is not None) is matches


def test_alpha_and_length_constraints() -> None:
    assert match("n/{name:alpha}", "n/Alice") == {"name": "Alice"}
    assert match("n/{name:alpha}", "n/al1ce") is None
    assert match("n/{name:minlength(3)}", "n/ab") is None
    assert match("n/{name:maxlength(3)}", "n/abcd") is None
    assert match("n/{name:length(2)}", "n/ab") == {"name": "ab"}
    assert match("n/{name:length(2,3)}", "n/abcd") is None


def test_numeric_range_constraints_chain() -> None:
    assert match("p/{id:int:min(10)}", "p/10") == {"id": "10"}
    assert match("p/{id:int:min(10)}", "p/9") is None
    assert match("p/{id:max(5)}", "p/6") is None
    assert match("p/{id:range(1,3)}", "p/3") == {"id": "3"}
    assert match("p/{id:range(1,3)}", "p/4") is None


def test_regex_constraint_may_contain_colons_and_is_case_insensitive() -> None:
    assert match("r/{code:regex(^[a-z]{{2}}:\\d+$)}", "r/AB:12") == {"code": "AB:12"}
    assert match("r/{code:regex(^[a-z]{{2}}:\\d+$)}", "r/ABC:12") is None


def test_optional_parameter_and_default() -> None:
    assert match("opt/{id?}", "opt") == {}
    assert match("opt/{id?}", "opt/5") == {"id": "5"}
    assert match("opt/{id:int?}", "opt/x") is None
    assert match("d/{page=1}", "d") == {"page": "1"}
    assert match("d/{page=1}", "d/3") == {"page": "3"}


def test_catch_all() -> None:
    assert match("files/{*path}", "files/a/b/c.txt") == {"path": "a/b/c.txt"}
    assert match("files/{*path}", "files") == {}
    assert match("files/{**path}", "files/x") == {"path": "x"}
    assert match("{*everything}", "any/thing") == {"everything": "any/thing"}


def test_catch_all_keeps_an_encoded_slash_encoded() -> None:
    # Only the path's own '/' separate segments; '%2F' stays as sent, as in ASP.NET Core.
    assert match("files/{*path}", "files/a%2Fb/c%20d") == {"path": "a%2Fb/c d"}
    assert match("files/{*path}", "files/a%2fb") == {"path": "a%2fb"}


def test_values_are_percent_decoded_but_slashes_stay_encoded() -> None:
    assert match("users/{name}", "users/J%C3%BCrgen%20M") == {"name": "Jürgen M"}
    assert match("users/{name}", "users/a%2Fb") == {"name": "a%2Fb"}


def test_complex_segments() -> None:
    assert match("docs/{name}.{ext}", "docs/report.final.pdf") == {"name": "report.final", "ext": "pdf"}
    assert match("docs/{name}.{ext}", "docs/report") is None
    assert match("v{version:int}/items", "v2/items") == {"version": "2"}


@pytest.mark.parametrize(
    "template",
    [
        "a/{}",
        "a/{*rest}/b",
        "a/{x}{y}",
        "a/{id}/b/{ID}",
        "a/{id:unknown}",
        "a/{id:int(3)}",
        "a/{id",
        "a/id}",
        "a/{1st}",
        "a/x{id?}",
        "a//b",
    ],
)
def test_invalid_templates(template: str) -> None:
    with pytest.raises(RouteError):
        RouteTemplate(template)


def router() -> Router[str]:
    routes: Router[str] = Router("api")
    routes.add("users/{id:int}", ["GET"], "by-id")
    routes.add("users/{name}", ["GET"], "by-name")
    routes.add("users/me", ["GET"], "me")
    routes.add("files/{*path}", ["GET"], "files")
    routes.add("files/readme", ["GET"], "readme")
    routes.add("items/{id}", ["GET"], "get-item")
    routes.add("items/{id}", ["DELETE"], "delete-item")
    return routes


def test_router_applies_the_prefix() -> None:
    resolved = router().resolve("GET", "/api/users/7")
    assert resolved is not None
    assert (resolved.target, resolved.route_params) == ("by-id", {"id": "7"})
    assert router().resolve("GET", "/users/7") is None
    assert router().resolve("GET", "/API/users/7") is not None


def test_router_prefers_the_most_specific_template() -> None:
    routes = router()
    assert routes.resolve("GET", "/api/users/me").target == "me"  # type: ignore[union-attr]
    assert routes.resolve("GET", "/api/users/7").target == "by-id"  # type: ignore[union-attr]
    assert routes.resolve("GET", "/api/users/bob").target == "by-name"  # type: ignore[union-attr]
    assert routes.resolve("GET", "/api/files/readme").target == "readme"  # type: ignore[union-attr]
    assert routes.resolve("GET", "/api/files/docs/readme").target == "files"  # type: ignore[union-attr]


def test_router_method_mismatch_is_no_match() -> None:
    routes = router()
    assert routes.resolve("DELETE", "/api/items/1").target == "delete-item"  # type: ignore[union-attr]
    assert routes.resolve("GET", "/api/items/1").target == "get-item"  # type: ignore[union-attr]
    assert routes.resolve("PUT", "/api/items/1") is None  # the host answers 404, not 405


def test_router_ignores_a_trailing_slash() -> None:
    assert router().resolve("GET", "/api/users/7/") is not None


def test_empty_route_prefix() -> None:
    routes: Router[str] = Router("")
    assert routes.add("health", ["GET"], "health") == "health"
    assert routes.add("", ["GET"], "root") == ""
    assert routes.resolve("GET", "/health").target == "health"  # type: ignore[union-attr]
    assert routes.resolve("GET", "/").target == "root"  # type: ignore[union-attr]
    assert routes.resolve("GET", "/api/health") is None
