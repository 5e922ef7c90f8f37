"""Group membership over nested groups: direct and transitive memberships, and adding a member.

A group's members are users (``Group.members``) and groups (``Group.member_groups``). Membership is
transitive through nesting: a user in Regional Managers, which is a member of Report Readers, is a
transitive member of Report Readers (``transitiveMemberOf``, ``checkMemberGroups`` and
``checkMemberObjects`` all see it; ``memberOf`` and ``members`` list direct memberships only).
"""

from __future__ import annotations

from collections import deque

from emulator.directory.model import Directory, Group, User
from emulator.graph.http import GraphError


def direct_groups(directory: Directory, object_id: str) -> list[Group]:
    """The groups ``object_id`` (a user or a group) is a direct member of, in directory order."""
    return [g for g in directory.groups if object_id in g.members or object_id in g.member_groups]


def transitive_groups(directory: Directory, object_id: str) -> list[Group]:
    """Every group ``object_id`` belongs to directly or through nesting (each once, nearest first)."""
    seen: dict[str, Group] = {}
    queue = deque([object_id])
    while queue:
        for group in direct_groups(directory, queue.popleft()):
            if group.id not in seen:
                seen[group.id] = group
                queue.append(group.id)
    return list(seen.values())


def transitive_user_ids(directory: Directory, group: Group) -> set[str]:
    """The users in ``group`` directly or through the groups nested in it."""
    users: set[str] = set()
    seen = {group.id}
    queue = deque([group])
    while queue:
        current = queue.popleft()
        users.update(current.members)
        for gid in current.member_groups:
            nested = directory.group(gid)
            if nested is not None and nested.id not in seen:
                seen.add(nested.id)
                queue.append(nested)
    return users


def direct_members(directory: Directory, group: Group) -> list[User | Group]:
    """Users first (in membership order), then nested groups."""
    users: list[User | Group] = [u for u in (directory.user(i) for i in group.members) if u is not None]
    groups = [g for g in (directory.group(i) for i in group.member_groups) if g is not None]
    return users + groups


def add_member(directory: Directory, group: Group, object_id: str) -> None:
    """Add a user or a group as a direct member of ``group``, or raise the error Graph answers."""
    user = directory.user(object_id)
    nested = directory.group(object_id) if user is None else None
    if user is None and nested is None:
        raise GraphError(
            404,
            "Request_ResourceNotFound",
            f"Resource '{object_id}' does not exist or one of its queried reference-property objects "
            "are not present.",
        )
    if (user is not None and user.id in group.members) or (
        nested is not None and nested.id in group.member_groups
    ):
        raise GraphError(
            400,
            "Request_BadRequest",
            "One or more added object references already exist for the following modified properties: "
            "'members'.",
        )
    if nested is not None:
        if "Unified" in group.group_types:
            # Microsoft 365 groups do not support nested groups.
            raise GraphError(
                400, "Request_BadRequest", "Groups cannot be added as members of a Microsoft 365 group."
            )
        containing = {g.id for g in transitive_groups(directory, group.id)}
        if nested.id == group.id or nested.id in containing:  # group is already inside nested
            raise GraphError(
                400, "Request_BadRequest", "Adding this group would create a circular membership."
            )
        group.member_groups.append(nested.id)
    elif user is not None:
        group.members.append(user.id)
