"""Start ``python -m MODULE`` processes for tests: forked by a fork server, else plain subprocesses.

:func:`spawn_module` is what ``start_devhost`` and ``start_tenant`` call. Inside a pytest session
(:func:`enable`, called from tests/devhost/fixtures.py's ``pytest_configure``) the first call starts one
zygote for this process (tests/support/zygote.py: the third-party libraries imported once) and every
later one forks from it: a child is still its own OS process, with the environment, working directory,
stdio, argv and app import of a ``python -m`` start, but without paying for the libraries' import again.

The handle (:class:`ForkedProcess`) has the part of ``subprocess.Popen``'s API the tests use: ``pid``,
``args``, ``returncode``, ``poll()``, ``wait(timeout)`` (raising ``subprocess.TimeoutExpired``),
``send_signal()``, ``terminate()``, ``kill()``. Exit codes follow ``Popen``: negative for a signal.

A plain subprocess is started instead when ``PYTEST_ZYGOTE=0`` (debugging: one ``python -m`` per host),
outside pytest (benchmarks measure cold starts), when the zygote cannot start, and when the child's
environment differs from the zygote's in a variable read when the interpreter or a library starts
(CPython's ``PYTHON*`` such as ``PYTHONHASHSEED`` or ``PYTHONWARNINGS``, ``TZ``, the locale): such a
child needs a new interpreter to be what the test asked for.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

ROOT = Path(__file__).resolve().parents[2]
SWITCH = "PYTEST_ZYGOTE"
#: Applied to each child by the zygote itself (stdio buffering, bytecode writing, sys.path).
_PER_CHILD = frozenset({"PYTHONPATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"})
#: Read once at import by a preloaded library (multidict, yarl, PyJWT, psutil): a child must match.
_LIBRARY_START = frozenset(
    {
        "TZ",
        "LANG",
        "LANGUAGE",
        "MULTIDICT_NO_EXTENSIONS",
        "YARL_NO_EXTENSIONS",
        "SPHINX_BUILD",
        "PSUTIL_DEBUG",
    }
)
Stdio = IO[Any] | int | None


class ChildProcess(Protocol):
    """What tests use of a started process (``subprocess.Popen`` and :class:`ForkedProcess` both are one)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | Any: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def send_signal(self, sig: int) -> None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...


class ZygoteLostError(RuntimeError):
    """The zygote (the child's parent) ended before reporting the child's exit code."""


class ForkedProcess:
    """A child of the zygote: signalled through a pidfd, its exit code read from the zygote's report."""

    def __init__(self, pid: int, pidfd: int, status: socket.socket, args: list[str]) -> None:
        self.pid = pid
        self.args = args
        self.returncode: int | None = None
        self._pidfd = pidfd
        self._status = status
        self._buffer = b""
        self._lock = threading.Lock()

    def poll(self) -> int | None:
        """The exit code, or None while it runs (or while another thread waits for it, as ``Popen``)."""
        if self.returncode is None and self._lock.acquire(blocking=False):
            try:
                self._read(0)
            finally:
                self._lock.release()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """The exit code; raises ``subprocess.TimeoutExpired`` after ``timeout`` seconds."""
        with self._lock:
            self._read(timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """Signal the child unless it is known to have exited (a pidfd never reaches a recycled pid)."""
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # exited; the zygote has not reported it yet
                signal.pidfd_send_signal(self._pidfd, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _read(self, timeout: float | None) -> None:
        while self.returncode is None:
            ready, _, _ = select.select([self._status], [], [], timeout)
            if not ready:
                return
            chunk = self._status.recv(64)
            if not chunk:
                self._close()
                raise ZygoteLostError(f"the zygote ended before reporting how pid {self.pid} ended")
            self._buffer += chunk
            if self._buffer.endswith(b"\n"):
                self.returncode = int(self._buffer)
                self._close()

    def _close(self) -> None:
        self._status.close()
        os.close(self._pidfd)
        self._pidfd = -1

    def __del__(self) -> None:
        if self._pidfd >= 0:  # a handle dropped before its child ended: the zygote still reaps the child
            self._close()

    def __repr__(self) -> str:
        return f"<ForkedProcess pid={self.pid} returncode={self.returncode}>"


class Zygote:
    """The client of one zygote process (tests/support/zygote.py); thread-safe."""

    def __init__(self, environ: Mapping[str, str] | None = None, timeout: float = 120) -> None:
        """Start a zygote with ``environ`` (default: this process's environment) and wait until it is ready.

        Raises:
            RuntimeError: it could not start (its error: a preload that failed, a thread, a descriptor).
        """
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.environ = dict(os.environ if environ is None else environ)
        self.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # the zygote's own modules are compiled once
        self.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.zygote", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            cwd=ROOT,
            env=self.environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        theirs.close()
        self._socket = ours
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        ready, _, _ = select.select([ours], [], [], timeout)
        reply = json.loads(ours.recv(4096) or b'{"error": "exited"}') if ready else {"error": "timed out"}
        if not reply.get("ready"):
            self.close()
            raise RuntimeError(f"the zygote did not start: {reply.get('error')}")
        self.info: dict[str, Any] = reply

    def accepts(self, env: Mapping[str, str]) -> bool:
        """True when a child with ``env`` would start as a new interpreter with ``env`` starts."""
        keys = {k for k in (*env, *self.environ) if _read_at_start(k)}
        return all(env.get(k) == self.environ.get(k) for k in keys)

    def spawn(
        self, module: str, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], stdio: list[int]
    ) -> ForkedProcess:
        """Fork ``python -m module *argv``; ``stdio``: the child's descriptors 0, 1 and 2."""
        with self._lock:
            request_id = next(self._ids)
            message = {
                "id": request_id,
                "module": module,
                "argv": list(argv),
                "cwd": str(cwd),
                "env": dict(env),
            }
            socket.send_fds(self._socket, [json.dumps(message).encode()], stdio)
            while True:
                data, fds, _, _ = socket.recv_fds(self._socket, 4096, 2)
                if not data:
                    raise ZygoteLostError("the zygote ended")
                reply = json.loads(data)
                if reply.get("id") == request_id:
                    break
                _discard(fds)  # the answer to a request whose caller was interrupted (a test's timeout)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return ForkedProcess(int(reply["pid"]), fds[0], socket.socket(fileno=fds[1]), [module, *argv])

    def close(self) -> None:
        """End the zygote (it sends SIGTERM to any child still running)."""
        self._socket.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _read_at_start(name: str) -> bool:
    if re.fullmatch("PYTHON[A-Z0-9]+", name):  # CPython's own have no underscore (unlike the Functions
        return name not in _PER_CHILD  # host's PYTHON_THREADPOOL_THREAD_COUNT, an app setting)
    return name in _LIBRARY_START or name.startswith("LC_")


def _discard(fds: list[int]) -> None:
    """Kill the orphaned child of an abandoned request (``fds``: its pidfd and exit-code socket)."""
    if fds:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(fds[0], signal.SIGKILL)
    for fd in fds:
        os.close(fd)


_state: dict[str, Any] = {"enabled": False, "environ": None, "zygote": None, "failed": None}
_state_lock = threading.Lock()


def enable() -> None:
    """Fork hosts from a zygote in this process from now on (unless ``PYTEST_ZYGOTE=0``)."""
    _state["enabled"] = os.environ.get(SWITCH, "1") != "0" and hasattr(os, "pidfd_open")
    # The environment of the session's start, not of whichever test first starts a host (a test may have
    # changed TZ or trusted a tenant's CA for itself).
    _state["environ"] = dict(os.environ)


def shutdown() -> None:
    """Stop this process's zygote, if any (also at exit)."""
    with _state_lock:
        zygote, _state["zygote"] = _state["zygote"], None
    if zygote is not None:
        zygote.close()


def zygote() -> Zygote | None:
    """This process's zygote, started on first use; None when disabled or when it could not start."""
    with _state_lock:
        if not _state["enabled"] or _state["failed"]:
            return None
        if _state["zygote"] is None:
            try:
                _state["zygote"] = Zygote(_state["environ"])
            except (OSError, RuntimeError) as error:
                _state["failed"] = str(error)
                print(f"tests.support.spawn: no zygote ({error}); starting plain processes", file=sys.stderr)
                return None
            atexit.register(shutdown)
        return _state["zygote"]  # type: ignore[no-any-return]


def spawn_module(
    module: str,
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdin: Stdio = None,
    stdout: Stdio = None,
    stderr: Stdio = None,
) -> ChildProcess:
    """Start ``python -m module *argv`` in ``cwd`` with exactly ``env``; stdio as ``subprocess.Popen`` takes
    it (a file, a descriptor, ``subprocess.DEVNULL``, ``subprocess.STDOUT`` for stderr, None to inherit)."""
    server = zygote()
    if server is None or not server.accepts(env):
        return subprocess.Popen(
            [sys.executable, "-m", module, *argv],
            cwd=cwd,
            env=dict(env),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
        )
    opened: list[int] = []
    try:
        fds = [_descriptor(stdin, 0, opened, "rb"), _descriptor(stdout, 1, opened, "wb")]
        fds.append(fds[1] if stderr == subprocess.STDOUT else _descriptor(stderr, 2, opened, "wb"))
        return server.spawn(module, argv, cwd=cwd, env=env, stdio=fds)
    finally:
        for fd in opened:
            os.close(fd)


def _descriptor(stream: Stdio, inherited: int, opened: list[int], mode: str) -> int:
    if stream is None:
        return inherited
    if stream == subprocess.DEVNULL:
        fd = os.open(os.devnull, os.O_RDONLY if mode == "rb" else os.O_WRONLY)
        opened.append(fd)
        return fd
    return stream if isinstance(stream, int) else stream.fileno()
