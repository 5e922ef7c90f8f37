"""host.json queue settings other than the sample app's, graceful shutdown, and refused configurations."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from devhost.azurite import Azurite
from tests.devhost.fixtures import REPO_ROOT, wait_until
from tests.devhost.queue_fixtures import (
    QUEUE_APP,
    base64_queue,
    delete_app_queues,
    raw_queue,
    records,
    safe_peek,
    start_queue_host,
)

TIMEOUT = 20


def copy_app(tmp_path: Path, queues: object) -> Path:
    app_dir = tmp_path / "app"
    shutil.copytree(QUEUE_APP, app_dir, ignore=shutil.ignore_patterns("__pycache__"))
    (app_dir / "host.json").write_text(json.dumps({"version": "2.0", "extensions": {"queues": queues}}))
    return app_dir


def test_max_dequeue_count_and_message_encoding_none_from_host_json(azurite: Azurite, tmp_path: Path) -> None:
    app_dir = copy_app(
        tmp_path, {"maxDequeueCount": 2, "messageEncoding": "none", "maxPollingInterval": "00:00:00.200"}
    )
    queue = f"plain-{uuid.uuid4().hex[:12]}"
    delete_app_queues(azurite.connection_string)
    host, out = start_queue_host(
        tmp_path, azurite.connection_string, env={"FIXTURE_QUEUE": queue}, app_dir=app_dir
    )
    try:
        plain = raw_queue(azurite.connection_string, queue)
        plain.create_queue()
        plain.send_message("plain text, not base64!")
        wait_until(lambda: len(records(out, "echo")) == 1, TIMEOUT, "the plain-text message")
        assert records(out, "echo")[0]["body"] == "plain text, not base64!"

        failing = raw_queue(azurite.connection_string, "always-fails")
        failing.create_queue()
        failing.send_message("fails twice")
        poison = raw_queue(azurite.connection_string, "always-fails-poison")
        wait_until(lambda: len(records(out, "always_fails")) >= 2, TIMEOUT, "two attempts")
        wait_until(lambda: safe_peek(poison) == ["fails twice"], TIMEOUT, "the message in the poison queue")
        assert [r["dequeue_count"] for r in records(out, "always_fails")] == [1, 2]
        assert "Moving message to queue 'always-fails-poison'" in host.log()
        assert "maxDequeueCount 2, messageEncoding none" in host.log()
    finally:
        assert host.stop() == 0
        delete_app_queues(azurite.connection_string)


def test_shutdown_stops_polling_and_lets_the_running_invocation_complete(
    azurite: Azurite, tmp_path: Path
) -> None:
    app_dir = copy_app(tmp_path, {"maxPollingInterval": "00:00:00.200"})
    delete_app_queues(azurite.connection_string)
    host, out = start_queue_host(
        tmp_path, azurite.connection_string, env={"FIXTURE_QUEUE": "unused-q"}, app_dir=app_dir
    )
    slow = base64_queue(azurite.connection_string, "slow-work", create=False)
    slow.create_queue()
    try:
        slow.send_message(b"job long 2")
        wait_until(lambda: len(records(out, "slow")) == 1, TIMEOUT, "the slow message to start")
        host.process.send_signal(signal.SIGTERM)
        wait_until(lambda: "Stopping 5 queue listener(s)" in host.log(), TIMEOUT, "polling to stop")
        slow.send_message(b"job later 0.1")  # arrives during shutdown: must stay for the next host
        assert host.process.wait(TIMEOUT) == 0
    finally:
        host.stop()
    log = host.log()
    assert "Executed 'Functions.slow' (Succeeded" in log  # the running invocation finished
    assert len(records(out, "slow")) == 1  # no new poll after SIGTERM
    assert [m.content for m in slow.peek_messages()] == [b"job later 0.1"]
    assert slow.get_queue_properties().approximate_message_count == 1  # the finished one was deleted
    delete_app_queues(azurite.connection_string)


def test_a_refused_queue_setting_stops_devhost_at_start(tmp_path: Path) -> None:
    app_dir = copy_app(tmp_path, {"batchSize": 64})
    result = subprocess.run(
        [sys.executable, "-m", "devhost", "--app-dir", str(app_dir), "--port", "1"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "extensions.queues.batchSize must be between 1 and 32 (got 64)" in result.stderr


def test_two_devhosts_on_one_storage_process_each_message_once(azurite: Azurite, tmp_path: Path) -> None:
    queue = f"shared-{uuid.uuid4().hex[:12]}"
    env = {"FIXTURE_QUEUE": queue}
    first, first_out = start_queue_host(tmp_path / "first", azurite.connection_string, env=env)
    second, second_out = start_queue_host(tmp_path / "second", azurite.connection_string, env=env)
    try:
        client = base64_queue(azurite.connection_string, queue)
        bodies = [f"message {number}" for number in range(12)]
        for body in bodies:
            client.send_message(body.encode())

        def received() -> list[str]:
            return [r["body"] for out in (first_out, second_out) for r in records(out, "echo")]

        wait_until(lambda: len(received()) >= len(bodies), TIMEOUT, "every message to be processed")
        wait_until(lambda: not client.get_queue_properties().approximate_message_count, TIMEOUT, "deletes")
        assert sorted(received()) == sorted(bodies)  # competing consumers: no message twice
    finally:
        assert first.stop() == 0
        assert second.stop() == 0
        delete_app_queues(azurite.connection_string)
