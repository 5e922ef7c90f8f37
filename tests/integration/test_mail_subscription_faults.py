"""The subscriptions timer's and the directory reaction's upstream calls under the local tenant's fault API:
renewal (``PATCH /subscriptions/{id}``), the list of the app's subscriptions (``GET /subscriptions``),
deletion when the scope shrinks (``DELETE``), reauthorization
(``POST .../reauthorize``), the scope group's member walk (``GET /groups/{id}/members``) and the read of a
changed user (``GET /users/{id}``). Each gets, through the fault API (nothing patched): a 5xx that outlasts
the Graph client's retries, a 429 with ``Retry-After`` (honoured on the app's clock, counted in the tenant's
request log), latency past the app's Graph timeout, a dropped connection, several runs or notifications
during the outage, and recovery: the next run converges (renewed, deleted, reauthorized, subscribed), one
mailbox's failure never stops another's, no 500, and no subscription is duplicated.

The host's clock is devhost's (``skipSleeps``): a retry's wait moves the app's clock, not the test's."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devhost.azurite import Azurite
from tests.integration.ingestion_kit import IngestionHost, wait_for
from tests.integration.subscription_faults_kit import CALLS, IDS, Call, Env, graph_log
from tests.integration.test_signin_kit import register_app_host
from tests.support.apphost import app_clock
from tests.support.tenant import LocalTenant

RETRY_AFTER = 2
#: Concurrent triggers during one outage.
CONCURRENT = 4


@pytest.fixture(scope="module")
def env(
    local_tenant: LocalTenant, azurite: Azurite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Env]:
    local_tenant.reset()
    second = local_tenant.control(
        "POST", "/users", {"displayName": "Sam Second", "mailboxEnabled": True}, expect=201
    )
    local_tenant.control(
        "POST", f"/groups/{local_tenant.env['MAIL_READERS_GROUP_ID']}/members", {"id": second["id"]}
    )
    host = IngestionHost(
        local_tenant,
        azurite,
        Path(tmp_path_factory.mktemp("subscription-faults")),
        overrides={
            "GRAPH_TIMEOUT_SECONDS": "2",
            "GRAPH_RETRY_BUDGET_SECONDS": "6",
            "GRAPH_MAX_RETRIES": "2",
            "SESSION_TABLE": f"sess{uuid.uuid4().hex[:8]}",
        },
        dev_clock=True,
    )
    try:
        app_clock(host.host, {"skipSleeps": True})
        register_app_host(local_tenant, host.host)
        state = Env(host, second)
        host.run_timer()
        wait_for(state.settled, "both mailboxes subscribed")
        yield state
    finally:
        host.stop()
        local_tenant.reset()


@pytest.fixture
def fx(env: Env) -> Iterator[Env]:
    """Each test starts converged and leaves no fault behind."""
    yield env
    env.clear_faults()
    log = (env.host.workdir / "devhost.log").read_text()
    assert not re.search(r"devhost\.http: \S+ \S+ 5\d\d ", log)  # no request answered 5xx
    try:
        env.tenant.control("POST", f"/groups/{env.group}/members", {"id": env.second["id"]})
    except AssertionError as error:  # still a member (a test that did not remove it)
        assert " 409 " in str(error)
    if not env.settled():  # a test that removed the second mailbox: the timer subscribes it again
        env.host.run_timer()
        wait_for(env.settled, "the tenant back to converged")


# -- the calls -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", CALLS, ids=IDS)
def test_a_5xx_past_the_retries_is_recorded_and_the_next_run_converges(
    fx: Env, make: Callable[[], Call]
) -> None:
    call = make()
    path = call.path(fx)
    call.arm(fx)
    rule = fx.fault(path, call.method, status=500)
    call.trigger(fx)
    wait_for(lambda: call.failed(fx), f"the {call.name} failure to show")
    assert fx.fired(rule) >= 1 and not call.converged(fx)
    fx.clear_faults()
    call.recover(fx)
    wait_for(lambda: call.converged(fx), f"{call.name} to converge after the outage")
    resources = [s["resource"] for s in fx.ours()]
    assert len(resources) == len(set(resources))


@pytest.mark.parametrize("make", CALLS, ids=IDS)
def test_a_429_with_retry_after_is_honoured_counted_and_absorbed(fx: Env, make: Callable[[], Call]) -> None:
    call = make()
    path = call.path(fx)
    call.arm(fx)
    seq = fx.tenant.last_seq()
    before = float(app_clock(fx.host.host)["offsetSeconds"])
    rule = fx.fault(path, call.method, status=429, retryAfter=RETRY_AFTER, times=2)
    call.trigger(fx)
    wait_for(lambda: call.converged(fx), f"{call.name} through two 429s")
    log = graph_log(fx, seq, call.method, path)
    assert [e["status"] for e in log].count(429) == fx.fired(rule) == 2  # counted: each 429 once
    assert log[-1]["status"] < 300  # then the call went through, in the same run
    waited = float(app_clock(fx.host.host)["offsetSeconds"]) - before
    assert waited >= 2 * RETRY_AFTER  # honoured: each retry waited Retry-After (on the app's clock)


@pytest.mark.parametrize("kind", ["timeout", "drop"])
@pytest.mark.parametrize("make", CALLS, ids=IDS)
def test_latency_past_the_timeout_or_a_dropped_connection_converges_without_duplicates(
    fx: Env, make: Callable[[], Call], kind: str
) -> None:
    call = make()
    path = call.path(fx)
    call.arm(fx)
    rule = {"latencyMs": 2500, "status": 0} if kind == "timeout" else {"drop": True}
    rule_id = fx.fault(path, call.method, times=1, **rule)
    call.trigger(fx)
    wait_for(lambda: fx.fired(rule_id) == 1, "the fault")
    if not call.converged(fx):  # a POST the client may not resend: the worker's retry, or the next run
        wait_for(lambda: fx.idle(), "the work queue")
        if not call.converged(fx):
            call.recover(fx)
    wait_for(lambda: call.converged(fx), f"{call.name} after a {kind}")
    resources = [s["resource"] for s in fx.ours()]
    assert len(resources) == len(set(resources))


@pytest.mark.parametrize("make", CALLS, ids=IDS)
def test_several_runs_during_the_outage_then_recovery_converge_once(
    fx: Env, make: Callable[[], Call]
) -> None:
    call = make()
    path = call.path(fx)
    call.arm(fx)
    rule = fx.fault(path, call.method, status=503)
    threads = [threading.Thread(target=call.trigger, args=(fx,)) for _ in range(CONCURRENT)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    wait_for(lambda: fx.fired(rule) >= 1 and call.failed(fx), f"the {call.name} failures")
    wait_for(fx.idle, "the work queue")
    fx.clear_faults()
    call.recover(fx)
    wait_for(lambda: call.converged(fx), f"{call.name} after {CONCURRENT} runs in the outage")
    resources = [s["resource"] for s in fx.ours()]
    assert len(resources) == len(set(resources))  # one subscription per target, whatever ran meanwhile
    rows = [t["RowKey"] for t in fx.host.targets()]
    assert len(rows) == len(set(rows))
    live = {s["id"] for s in fx.ours()}
    assert all(t.get("SubscriptionId") in live for t in fx.host.targets() if t.get("SubscriptionId"))
