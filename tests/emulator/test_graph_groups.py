"""Groups, members, memberOf and the membership checks, in process."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.directory.model import Group
from emulator.graph.membership import transitive_groups
from tests.emulator.graph_kit import InProcess, assert_graph_error


@pytest.fixture(scope="module")
def g(tmp_path_factory: pytest.TempPathFactory) -> InProcess:
    return InProcess.create(Path(tmp_path_factory.mktemp("graph-groups")))


@pytest.fixture(scope="module")
def token(g: InProcess) -> str:
    return g.app_token("GroupMember.Read.All", "User.Read.All")


def group(g: InProcess, name: str) -> Group:
    return next(x for x in g.state.directory.groups if x.display_name == name)


def test_list_and_get_groups(g: InProcess, token: str) -> None:
    body = g.get("/v1.0/groups", token).json()
    assert body["@odata.context"] == f"{g.origin}/v1.0/$metadata#groups"
    assert {x["displayName"] for x in body["value"]} == {x.display_name for x in g.state.directory.groups}
    staff = group(g, "All Staff")
    one = g.get(f"/v1.0/groups/{staff.id}?$select=displayName,groupTypes,mailEnabled", token).json()
    assert one == {
        "@odata.context": f"{g.origin}/v1.0/$metadata#groups(displayName,groupTypes,mailEnabled)/$entity",
        "displayName": "All Staff",
        "groupTypes": ["Unified"],
        "mailEnabled": True,
    }
    assert_graph_error(
        g.get("/v1.0/groups/00000000-0000-0000-0000-000000000000", token), 404, "Request_ResourceNotFound"
    )


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("displayName eq 'finance team'", {"Finance Team"}),
        ("startswith(displayName,'Graph')", {"Graph Functions Admins"}),
        ("securityEnabled eq false", {"All Staff"}),
        ("groupTypes/any(c:c eq 'Unified')", {"All Staff"}),
    ],
)
def test_group_filters(g: InProcess, token: str, expr: str, names: set[str]) -> None:
    body = g.get(f"/v1.0/groups?$filter={expr}&$select=displayName", token).json()
    assert {x["displayName"] for x in body["value"]} == names


def test_groups_paging_and_top(g: InProcess, token: str) -> None:
    items, replies = g.collect("/v1.0/groups?$top=1&$select=id", token)
    assert len(replies) == len(items) == len(g.state.directory.groups)
    assert_graph_error(g.get("/v1.0/groups?$top=0", token), 400, "Request_UnsupportedQuery")


def test_members_paging_and_projection(g: InProcess, token: str) -> None:
    finance = group(g, "Finance Team")
    items, replies = g.collect(f"/v1.0/groups/{finance.id}/members?$top=3&$select=id,displayName", token)
    assert [m["id"] for m in items] == finance.members
    assert all(
        m["@odata.type"] == "#microsoft.graph.user" and set(m) == {"@odata.type", "id", "displayName"}
        for m in items
    )
    assert replies[0].json()["@odata.context"] == f"{g.origin}/v1.0/$metadata#directoryObjects"
    assert len(replies) == -(-len(finance.members) // 3)
    assert_graph_error(g.get(f"/v1.0/groups/{finance.id}/members?$skip=1", token), 400, "Request_BadRequest")


def test_members_with_group_permission_only_are_type_and_id(g: InProcess) -> None:
    finance = group(g, "Finance Team")
    items = g.get(f"/v1.0/groups/{finance.id}/members", g.app_token("GroupMember.Read.All")).json()["value"]
    assert items and all(set(m) == {"@odata.type", "id"} for m in items)


def test_member_of(g: InProcess, token: str) -> None:
    admin = g.state.ids.admin
    expected = {x.id for x in g.state.directory.groups if admin.id in x.members}
    body = g.get(f"/v1.0/users/{admin.user_principal_name}/memberOf", token).json()
    assert {x["id"] for x in body["value"]} == expected
    assert all(x["@odata.type"] == "#microsoft.graph.group" for x in body["value"])
    me = g.get("/v1.0/me/memberOf", g.user_token(admin, "GroupMember.Read.All")).json()
    assert {x["id"] for x in me["value"]} == expected
    assert_graph_error(g.get("/v1.0/users/nobody@x.example/memberOf", token), 404, "Request_ResourceNotFound")


@pytest.mark.parametrize("action,key", [("checkMemberGroups", "groupIds"), ("checkMemberObjects", "ids")])
def test_membership_checks(g: InProcess, token: str, action: str, key: str) -> None:
    member = g.state.ids.member
    all_ids = [x.id for x in g.state.directory.groups] + ["00000000-0000-0000-0000-000000000001"]
    reply = g.post(f"/v1.0/users/{member.id}/{action}", token, {key: all_ids})
    body = reply.json()
    assert body["@odata.context"] == f"{g.origin}/v1.0/$metadata#Collection(Edm.String)"
    transitive = {x.id for x in transitive_groups(g.state.directory, member.id)}
    assert body["value"] == [i for i in all_ids if i in transitive]
    assert group(g, "Data Access").id in body["value"]  # only through Report Readers ⊃ Regional Managers
    assert_graph_error(
        g.post(f"/v1.0/users/{member.id}/{action}", token, {key: ["x"] * 21}), 400, "Request_BadRequest"
    )
    assert_graph_error(
        g.post(f"/v1.0/users/{member.id}/{action}", token, {key: "x"}), 400, "Request_BadRequest"
    )
    mine = g.post(f"/v1.0/me/{action}", g.user_token(member, "GroupMember.Read.All"), {key: all_ids}).json()
    assert mine["value"] == body["value"]


def test_group_permissions(g: InProcess) -> None:
    for token in (g.app_token("User.Read.All"), g.app_token()):
        assert_graph_error(g.get("/v1.0/groups", token), 403, "Authorization_RequestDenied")
    assert g.get("/v1.0/groups", g.app_token("Directory.Read.All")).status_code == 200
