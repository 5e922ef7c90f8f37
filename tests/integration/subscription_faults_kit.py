"""The calls of the subscriptions fault matrix (tests/integration/test_mail_subscription_faults.py): the
module's state (:class:`Env`: the host, the two mailboxes in scope, the faults) and, per upstream call, how
to make it due, start it, and tell that it failed (visibly, nothing half-done) or converged."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from azure.data.tables import TableClient, UpdateMode
from azure.storage.queue import QueueClient

from tests.integration.ingestion_kit import IngestionHost, deliver_lifecycle, flush, subscriptions
from tests.integration.test_signin_kit import WebBrowser


class Env:
    """The module's host and the two mailboxes in scope: the demo member and a second one."""

    def __init__(self, host: IngestionHost, second: dict[str, Any]) -> None:
        self.host = host
        self.tenant = host.tenant
        self.second = second
        self.group = host.tenant.env["MAIL_READERS_GROUP_ID"]

    # -- reading state --------------------------------------------------------------------------------

    def rows(self) -> dict[str, dict[str, Any]]:
        """Mailbox rows by UPN."""
        return {str(t.get("Upn")): t for t in self.host.targets() if str(t["RowKey"]).startswith("mailbox-")}

    def row(self, upn: str) -> dict[str, Any] | None:
        return self.rows().get(upn.lower())

    def users_row(self) -> dict[str, Any]:
        return next(t for t in self.host.targets() if t["RowKey"] == "users")

    def ours(self) -> list[dict[str, Any]]:
        return [s for s in subscriptions(self.tenant) if self.host.https_url in str(s.get("notificationUrl"))]

    def graph_sub(self, subscription_id: str) -> dict[str, Any] | None:
        return next((s for s in self.ours() if s["id"] == subscription_id), None)

    def sub_of(self, upn: str) -> str:
        row = self.row(upn)
        assert row is not None and row.get("SubscriptionId"), upn
        return str(row["SubscriptionId"])

    def idle(self) -> bool:
        queue = QueueClient.from_connection_string(self.host.azurite.connection_string, self.host.work_queue)
        try:
            return queue.get_queue_properties().approximate_message_count == 0
        except Exception as error:
            if "QueueNotFound" in str(error):
                return True
            raise

    @property
    def member(self) -> str:
        return self.tenant.env["DEMO_USER_USERNAME"].lower()

    @property
    def second_upn(self) -> str:
        return str(self.second["userPrincipalName"]).lower()

    # -- acting -------------------------------------------------------------------------------------------

    def fault(self, path: str, method: str, **rule: Any) -> int:
        body = {"service": "graph", "path": path, "method": method, **rule}
        return int(self.tenant.control("POST", "/faults", body, expect=201)["id"])

    def fired(self, rule_id: int) -> int:
        return sum(
            int(r["fired"]) for r in self.tenant.control("GET", "/faults")["value"] if r["id"] == rule_id
        )

    def clear_faults(self) -> None:
        self.tenant.control("DELETE", "/faults", expect=204)

    def settled(self) -> bool:
        """Every mailbox in scope has a live subscription of its own, one per resource, the work is done."""
        resources = [s["resource"] for s in self.ours()]
        live = {s["id"] for s in self.ours()}
        rows = self.rows()
        return (
            self.idle()
            and len(resources) == len(set(resources))
            and {self.member, self.second_upn} <= set(rows)
            and all(r.get("SubscriptionId") in live and r.get("Status") == "active" for r in rows.values())
        )

    def set_expiry(self, upn: str, minutes: float) -> None:
        """Make a renewal due: the row says the subscription expires in ``minutes`` (under half its life)."""
        row = self.row(upn)
        assert row is not None
        table = TableClient.from_connection_string(self.host.azurite.connection_string, self.host.table_name)
        when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=minutes)
        table.upsert_entity(
            {"PartitionKey": row["PartitionKey"], "RowKey": row["RowKey"], "ExpiresAt": when},
            mode=UpdateMode.MERGE,
        )


class Call:
    """One upstream call: how to make it due, start it, and tell it failed or converged."""

    name = ""
    method = ""

    def path(self, env: Env) -> str:
        raise NotImplementedError

    def arm(self, env: Env) -> None:
        """Make the call due on the next trigger."""

    def trigger(self, env: Env) -> None:
        env.host.run_timer()

    def failed(self, env: Env) -> bool:
        """The failure is visible (and nothing half-done)."""
        raise NotImplementedError

    def converged(self, env: Env) -> bool:
        raise NotImplementedError

    def recover(self, env: Env) -> None:
        """What brings convergence once the fault is gone (the timer's next run)."""
        env.host.run_timer()


class Renew(Call):
    name, method = "renew", "PATCH"

    def path(self, env: Env) -> str:
        return rf"/v1\.0/subscriptions/{env.sub_of(env.member)}$"

    def arm(self, env: Env) -> None:
        env.set_expiry(env.member, 60)
        env.set_expiry(env.second_upn, 60)  # renewed in the same run, whatever the member's renewal does

    def renewed(self, env: Env, upn: str) -> bool:
        row = env.row(upn)
        if row is None or row.get("Status") != "active" or row.get("LastError"):
            return False
        left = row["ExpiresAt"] - datetime.datetime.now(datetime.UTC)
        graph = env.graph_sub(str(row["SubscriptionId"]))
        return left > datetime.timedelta(minutes=4000) and graph is not None

    def failed(self, env: Env) -> bool:
        row = env.row(env.member)
        return bool(row and row.get("Status") == "failed" and row.get("LastError")) and self.renewed(
            env, env.second_upn
        )

    def converged(self, env: Env) -> bool:
        return self.renewed(env, env.member) and self.renewed(env, env.second_upn)


class ListSubscriptions(Renew):
    """``GET /subscriptions`` (every page): without it no subscription is renewed, created or replaced."""

    name, method = "list", "GET"

    def path(self, env: Env) -> str:
        return r"/v1\.0/subscriptions$"

    def failed(self, env: Env) -> bool:
        row = env.row(env.member)
        return (
            str(env.users_row().get("LastError", "")).startswith("subscriptions: ")
            and row is not None
            and row["ExpiresAt"] - datetime.datetime.now(datetime.UTC) < datetime.timedelta(minutes=120)
        )

    def converged(self, env: Env) -> bool:
        return super().converged(env) and not env.users_row().get("LastError")


class Delete(Call):
    name, method = "delete", "DELETE"

    def __init__(self) -> None:
        self.old = ""

    def path(self, env: Env) -> str:
        self.old = env.sub_of(env.second_upn)
        return rf"/v1\.0/subscriptions/{self.old}$"

    def arm(self, env: Env) -> None:
        env.tenant.control("DELETE", f"/groups/{env.group}/members/{env.second['id']}")

    def failed(self, env: Env) -> bool:
        row = env.row(env.second_upn)
        return bool(row and row.get("Status") == "leaving" and row.get("LastError")) and (
            env.graph_sub(self.old) is not None
        )

    def converged(self, env: Env) -> bool:
        return (
            env.row(env.second_upn) is None
            and env.graph_sub(self.old) is None
            and env.row(env.member) is not None
        )


class Reauthorize(Call):
    name, method = "reauthorize", "POST"

    def __init__(self) -> None:
        self.sub = ""

    def path(self, env: Env) -> str:
        self.sub = env.sub_of(env.member)
        return rf"/v1\.0/subscriptions/{self.sub}/reauthorize$"

    def trigger(self, env: Env) -> None:
        env.tenant.control(
            "POST", f"/graph/subscriptions/{self.sub}/lifecycle", {"event": "reauthorizationRequired"}
        )
        deliver_lifecycle(env.tenant, self.sub)

    def failed(self, env: Env) -> bool:
        row = env.row(env.member)
        graph = env.graph_sub(self.sub)
        return bool(
            row and row.get("Status") == "reauthorizing" and graph and graph["reauthorizationRequired"]
        )

    def converged(self, env: Env) -> bool:
        row = env.row(env.member)
        graph = env.graph_sub(self.sub)
        return bool(
            row
            and row.get("Status") == "active"
            and row.get("SubscriptionId") == self.sub
            and graph
            and not graph["reauthorizationRequired"]
            and env.idle()
        )


class Members(Call):
    name, method = "members", "GET"

    def __init__(self) -> None:
        self.rows_before: set[str] = set()

    def path(self, env: Env) -> str:
        return rf"/v1\.0/groups/{env.group}/members$"

    def arm(self, env: Env) -> None:
        # The second mailbox left: a run that read the members would remove it; one that could not must not
        # remove anyone (a partial list is no list).
        env.tenant.control("DELETE", f"/groups/{env.group}/members/{env.second['id']}")
        self.rows_before = set(env.rows())

    def failed(self, env: Env) -> bool:
        return str(env.users_row().get("LastError", "")).startswith("scope: ") and (
            set(env.rows()) == self.rows_before
        )

    def converged(self, env: Env) -> bool:
        return (
            env.row(env.second_upn) is None
            and env.row(env.member) is not None
            and not env.users_row().get("LastError")
        )


class UserRead(Call):
    """The directory reaction's read of a changed user: a rename of an enabled user keeps their session."""

    name, method = "user-read", "GET"

    def __init__(self) -> None:
        self.browser: WebBrowser | None = None
        self.renames = 0

    def path(self, env: Env) -> str:
        row = env.row(env.member)
        assert row is not None
        return rf"/v1\.0/users/{row['Mailbox']}$"

    def arm(self, env: Env) -> None:
        self.browser = WebBrowser(env.tenant, env.host.host)
        password = env.tenant.env["DEMO_USER_PASSWORD"]
        assert self.browser.sign_in(env.member, password, next_path="/me").status_code == 303

    def trigger(self, env: Env) -> None:
        self.renames += 1
        env.tenant.control("PATCH", f"/users/{quote(env.member)}", {"displayName": f"Demo {self.renames}"})
        flush(env.tenant)

    def signed_in(self) -> bool:
        assert self.browser is not None
        return self.browser.get("/me").status_code == 200

    def failed(self, env: Env) -> bool:
        return env.idle() and not self.signed_in()  # fail closed: unconfirmed, the sessions end

    def converged(self, env: Env) -> bool:
        return env.idle() and self.renames > 0 and self.signed_in()

    def recover(self, env: Env) -> None:
        self.arm(env)  # signed in again, as the person would
        self.trigger(env)


CALLS: list[Callable[[], Call]] = [Renew, ListSubscriptions, Delete, Reauthorize, Members, UserRead]
IDS = [c.name for c in CALLS]  # type: ignore[attr-defined]


def graph_log(env: Env, seq: int, method: str, path: str) -> list[dict[str, Any]]:
    return [
        e
        for e in env.tenant.requests_since(seq, "graph")
        if e["method"] == method and re.search(path, e["path"])
    ]


# -- the matrix ------------------------------------------------------------------------------------------
