"""The tests' fork server (tests/support/zygote.py, spawn.py): a forked child is what ``python -m`` gives.

Each check runs ``tests.devhost.zygote_child`` forked from a zygote and, where it compares, as a plain
``python -m`` process with the same environment: the two must inherit the same things.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import spawn
from tests.support.spawn import ChildProcess, ForkedProcess, Zygote, ZygoteLostError

ROOT = Path(__file__).resolve().parents[2]
CHILD = "tests.devhost.zygote_child"


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    """A zygote of this module's own (the session's stays untouched by the tests that end one)."""
    server = Zygote()
    yield server
    server.close()


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def forked(zygote: Zygote, log: Path, *argv: str, env: dict[str, str] | None = None) -> ForkedProcess:
    with log.open("ab") as out:
        return zygote.spawn(
            CHILD, argv, cwd=ROOT, env=env or child_env(), stdio=[0, out.fileno(), out.fileno()]
        )


def plain(log: Path, *argv: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", CHILD, *argv], cwd=ROOT, env=env or child_env(), stdout=out, stderr=out
        )


def report(process: ChildProcess, log: Path) -> dict[str, Any]:
    assert process.wait(60) == 0, log.read_text()
    return dict(json.loads(log.read_text().splitlines()[-1]))


def wait_for_line(log: Path, line: str) -> None:
    deadline = time.monotonic() + 30
    while line not in log.read_text().splitlines():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.02)


def test_a_forked_child_inherits_what_a_new_interpreter_would(zygote: Zygote, tmp_path: Path) -> None:
    env = child_env(ZYGOTE_TEST_VALUE="forked-and-plain")
    ours = report(forked(zygote, tmp_path / "forked.log", "report", env=env), tmp_path / "forked.log")
    theirs = report(plain(tmp_path / "plain.log", "report", env=env), tmp_path / "plain.log")
    for key in ("env", "cwd", "argv", "path", "signals", "blocked", "fds", "threads", "main", "timezone"):
        assert ours[key] == theirs[key], key
    for key in ("stdout_write_through", "stderr_line_buffering", "dont_write_bytecode"):
        assert ours[key] == theirs[key], key
    assert ours["env"] == env  # exactly the requested environment, nothing of the zygote's
    assert ours["fds"] == [0, 1, 2]  # no socket, pidfd or log of the zygote or of its other children
    assert ours["app_modules"] == []  # the app is imported by each child, never by the zygote
    assert ours["pid"] != theirs["pid"] and ours["pid"] != zygote.info["pid"]


def test_buffering_and_bytecode_follow_the_child_environment(zygote: Zygote, tmp_path: Path) -> None:
    env = child_env(PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    unbuffered = report(forked(zygote, tmp_path / "a.log", "report", env=env), tmp_path / "a.log")
    env = {k: v for k, v in env.items() if k not in ("PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE")}
    buffered = report(forked(zygote, tmp_path / "b.log", "report", env=env), tmp_path / "b.log")
    assert (unbuffered["stdout_write_through"], unbuffered["dont_write_bytecode"]) == (True, True)
    assert (buffered["stdout_write_through"], buffered["dont_write_bytecode"]) == (False, False)


def test_children_do_not_share_their_random_state(zygote: Zygote, tmp_path: Path) -> None:
    first = report(forked(zygote, tmp_path / "1.log", "report"), tmp_path / "1.log")
    second = report(forked(zygote, tmp_path / "2.log", "report"), tmp_path / "2.log")
    assert first["random"] != second["random"]
    assert first["ssl_random"] != second["ssl_random"]


def test_an_open_child_does_not_leak_into_the_next(zygote: Zygote, tmp_path: Path) -> None:
    running = forked(zygote, tmp_path / "serve.log", "serve")
    try:
        wait_for_line(tmp_path / "serve.log", "ready")
        later = report(forked(zygote, tmp_path / "later.log", "report"), tmp_path / "later.log")
        assert later["fds"] == [0, 1, 2]
    finally:
        running.kill()
    assert running.wait(30) == -signal.SIGKILL


@pytest.mark.parametrize(("argv", "code"), [(("exit", "0"), 0), (("exit", "3"), 3), (("raise",), 1)])
def test_exit_codes_are_the_childs(zygote: Zygote, tmp_path: Path, argv: tuple[str, ...], code: int) -> None:
    process = forked(zygote, tmp_path / "child.log", *argv)
    assert process.wait(60) == code
    assert process.poll() == code and process.returncode == code
    if argv == ("raise",):
        assert "LookupError: raised on purpose" in (tmp_path / "child.log").read_text()


@pytest.mark.parametrize(
    ("sig", "code"),
    [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGKILL, -signal.SIGKILL), (signal.SIGINT, -signal.SIGINT)],
)
def test_signals_reach_the_child_and_its_status_says_so(
    zygote: Zygote, tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    """SIGINT too: the zygote ignores it, its child has Python's default handler back (KeyboardInterrupt,
    which ends the interpreter by the signal, as for a plain process)."""
    process = forked(zygote, tmp_path / "serve.log", "serve")
    wait_for_line(tmp_path / "serve.log", "ready")
    assert process.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        process.wait(0.05)
    process.send_signal(sig)
    assert process.wait(30) == code
    process.send_signal(signal.SIGTERM)  # after the end: nothing happens, as with Popen
    assert process.returncode == code


def test_spawn_module_falls_back_to_a_plain_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With the zygote on, a child needing another interpreter setting (PYTHONHASHSEED) is not forked; with
    ``PYTEST_ZYGOTE=0`` none is."""
    log = tmp_path / "child.log"

    def start(env: dict[str, str]) -> ChildProcess:
        with log.open("ab") as out:
            return spawn.spawn_module(CHILD, ["exit", "4"], cwd=ROOT, env=env, stdout=out, stderr=out)

    server = spawn.zygote()
    assert server is not None, "the session forks its hosts"
    assert server.accepts(child_env()) and not server.accepts(child_env(PYTHONHASHSEED="7"))
    assert not server.accepts(child_env(TZ="Europe/Paris"))
    assert server.accepts(child_env(PYTHON_THREADPOOL_THREAD_COUNT="8"))  # a host setting, read at run time
    assert isinstance(start(child_env()), ForkedProcess)
    seeded = start(child_env(PYTHONHASHSEED="7"))
    assert isinstance(seeded, subprocess.Popen) and seeded.wait(60) == 4
    monkeypatch.setenv(spawn.SWITCH, "0")
    spawn.enable()
    try:
        assert spawn.zygote() is None
        off = start(child_env())
        assert isinstance(off, subprocess.Popen) and off.wait(60) == 4
    finally:
        monkeypatch.delenv(spawn.SWITCH)
        spawn.enable()
    assert spawn.zygote() is server


def test_a_lost_zygote_is_reported_not_hidden(tmp_path: Path) -> None:
    server = Zygote()
    process = forked(server, tmp_path / "serve.log", "serve")
    wait_for_line(tmp_path / "serve.log", "ready")
    server.process.kill()  # the child's parent: nobody can tell its exit code any more
    server.process.wait(30)
    with pytest.raises(ZygoteLostError):
        process.wait(30)
    os.kill(process.pid, signal.SIGKILL)  # reparented, still running: end it
    server.close()


def children_of(pid: int) -> set[int]:
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def test_concurrent_starts_each_get_their_own_child(zygote: Zygote, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def run(code: int) -> tuple[int, int]:
        process = forked(zygote, tmp_path / f"{code}.log", "exit", str(code))
        return process.pid, process.wait(60)

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(run, range(10, 22)))
    assert [code for _, code in results] == list(range(10, 22))
    assert len({pid for pid, _ in results}) == 12


def test_the_child_of_an_abandoned_request_is_not_left_running(zygote: Zygote, tmp_path: Path) -> None:
    """A caller interrupted between its request and the answer (a test's timeout) leaves an answer nobody
    reads: the next caller skips it and ends that child, which no handle could stop."""
    import socket

    with (tmp_path / "abandoned.log").open("ab") as out:
        request = {"id": -1, "module": CHILD, "argv": ["serve"], "cwd": str(ROOT), "env": child_env()}
        socket.send_fds(zygote._socket, [json.dumps(request).encode()], [0, out.fileno(), out.fileno()])
    wait_for_line(tmp_path / "abandoned.log", "ready")
    assert len(children_of(zygote.info["pid"])) == 1
    assert forked(zygote, tmp_path / "next.log", "exit", "5").wait(60) == 5
    deadline = time.monotonic() + 30
    while children_of(zygote.info["pid"]):
        assert time.monotonic() < deadline, "the abandoned child still runs"
        time.sleep(0.05)
