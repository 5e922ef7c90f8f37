"""The tests' fork server ("zygote"): ``python -m tests.support.zygote FD``, run by tests/support/spawn.py.

Every devhost and local tenant a test starts was a new interpreter importing azure-functions, the Azure SDKs,
msal, cryptography, jinja2, uvicorn and starlette again: about one CPU-second each before it served anything,
on a two-core machine running a hundred of them. The zygote imports those libraries (and the dev-only
``devhost`` and ``emulator`` packages, whose modules read nothing from the environment, the clock or the
process at import) ONCE, then forks a child per request. The child is a separate process as before: its own
pid, environment, working directory, stdio (the log file), sockets and signal dispositions; it imports the
app (``function_app``, ``blueprints``, ``shared``, which read their settings at import) itself, after its
environment is in place, and runs the requested module exactly as ``python -m MODULE ARGS`` would.

Protocol, over the ``SOCK_SEQPACKET`` socket ``FD`` (one JSON message each way, file descriptors as
``SCM_RIGHTS``):

* zygote -> client, once: ``{"ready": true, "pid", "modules", "seconds"}`` or ``{"error": "..."}``;
* client -> zygote: ``{"id", "module", "argv", "cwd", "env"}`` with the child's stdin, stdout and stderr;
* zygote -> client: ``{"id", "pid"}`` with a pidfd of the child (signals cannot reach a recycled pid) and a
  stream socket on which the zygote, the child's parent, writes its exit code (``os.waitstatus_to_exitcode``:
  negative for a signal, as ``subprocess``) once it has reaped it; or ``{"id", "error"}``.

End of file on the socket (the test process ended) sends SIGTERM to the children still running, then exits.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import io
import json
import os
import runpy
import selectors
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Imported before the first fork: what devhost and the local tenant import at start, and what the app
#: imports on first use (msal, PyJWT, jinja2, the SDK clients). Never the app's own packages.
PRELOAD = (
    "devhost.discovery",
    "devhost.host",
    "devhost.queue_options",
    "devhost.schedule_status",
    "devhost.server",
    "devhost.settings",
    "devhost.timers",
    "emulator.cli",
    "emulator.control",
    "emulator.entra",
    "emulator.graph",
    "emulator.managed_identity",
    "emulator.server",
    "emulator.sharepoint",
    "emulator.state",
    "emulator.vault",
    "anyio._backends._asyncio",
    "azure.functions",
    "azure.core.rest._requests_basic",
    "azure.core.pipeline.transport",
    "azure.data.tables",
    "azure.identity",
    "azure.identity._credentials.app_service",
    "concurrent.futures.thread",
    "cryptography.hazmat.backends.openssl",
    "azure.keyvault.secrets",
    "azure.storage.blob",
    "azure.storage.queue",
    "cryptography.hazmat.primitives.asymmetric.padding",
    "cryptography.hazmat.primitives.asymmetric.rsa",
    "cryptography.hazmat.primitives.ciphers.aead",
    "cryptography.hazmat.primitives.kdf.hkdf",
    "cryptography.hazmat.primitives.serialization.pkcs12",
    "cryptography.x509",
    "html.parser",
    "jinja2",
    "jwt",
    "msal",
    "msal_extensions",
    "netrc",
    "requests",
    "uvicorn.lifespan.off",
    "uvicorn.lifespan.on",
    "uvicorn.loops.asyncio",
    "uvicorn.loops.auto",
    "uvicorn.protocols.http.auto",
    "uvicorn.protocols.websockets.auto",
    "xml.sax.saxutils",
)
MAX_MESSAGE = 1 << 20
_Handler = Callable[[int, Any], Any] | int | signal.Handlers | None


@dataclass
class Spawn:
    """What a forked child runs: ``python -m module *argv`` in ``cwd`` with exactly ``env``."""

    module: str
    argv: list[str]
    cwd: str
    env: dict[str, str]


class Server:
    """The zygote's loop: forks children on request, reaps them, forwards their exit codes."""

    def __init__(self, control: socket.socket, signals: dict[int, _Handler], base_path: list[str]):
        self._control = control
        self._signals = signals
        self._base_path = base_path
        self._selector = selectors.DefaultSelector()
        self._children: dict[int, tuple[int, socket.socket]] = {}  # pid -> (pidfd, exit-code socket)

    def serve(self) -> Spawn:
        """Serve until the client goes away (then exit); returns only in a forked child, its request."""
        self._selector.register(self._control, selectors.EVENT_READ, None)
        while True:
            for key, _ in self._selector.select():
                if key.data is not None:
                    self._reap(key.data)
                    continue
                message, fds, _, _ = socket.recv_fds(self._control, MAX_MESSAGE, 3)
                if not message:
                    self._shutdown()
                request = json.loads(message)
                spawn = Spawn(request["module"], request["argv"], request["cwd"], request["env"])
                if self._fork(request["id"], spawn, fds):
                    return spawn

    def _fork(self, request_id: int, spawn: Spawn, fds: list[int]) -> bool:
        """Fork ``spawn``; True in the child (set up, ready to run), False in the zygote."""
        try:
            pid = os.fork()
        except OSError as error:
            self._send({"id": request_id, "error": f"fork failed: {error}"})
            return False
        if pid == 0:
            self._become(spawn, fds)
            return True
        for fd in fds:
            os.close(fd)
        pidfd = os.pidfd_open(pid)
        ours, theirs = socket.socketpair()
        self._children[pid] = (pidfd, ours)
        self._selector.register(pidfd, selectors.EVENT_READ, pid)
        self._send({"id": request_id, "pid": pid}, [pidfd, theirs.fileno()])
        theirs.close()
        return False

    def _reap(self, pid: int) -> None:
        pidfd, status = self._children.pop(pid)
        self._selector.unregister(pidfd)
        _, wait_status = os.waitpid(pid, 0)
        with contextlib.suppress(OSError):  # the test side dropped its handle: nobody is waiting
            status.sendall(f"{os.waitstatus_to_exitcode(wait_status)}\n".encode())
        status.close()
        os.close(pidfd)

    def _send(self, message: dict[str, Any], fds: list[int] | None = None) -> None:
        socket.send_fds(self._control, [json.dumps(message).encode()], fds or [])

    def _shutdown(self) -> None:
        for pidfd, _ in self._children.values():  # hosts a test leaked: they would otherwise run on forever
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(pidfd, signal.SIGTERM)
        sys.exit(0)

    def _become(self, spawn: Spawn, fds: list[int]) -> None:
        """In the child: drop everything of the zygote's, then take the request's stdio, cwd and environment
        the way a new ``python -m`` would have them."""
        for signum, handler in self._signals.items():  # the dispositions the zygote itself started with
            if signal.getsignal(signum) is not handler and handler is not None:
                signal.signal(signum, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        self._selector.close()
        self._control.close()
        for pidfd, status in self._children.values():  # the zygote's other children are not ours
            os.close(pidfd)
            status.close()
        self._children.clear()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        _close_fds_from(3)
        os.chdir(spawn.cwd)
        os.environ.clear()
        os.environ.update(spawn.env)
        time.tzset()
        sys.dont_write_bytecode = bool(spawn.env.get("PYTHONDONTWRITEBYTECODE"))
        extra = [p for p in spawn.env.get("PYTHONPATH", "").split(os.pathsep) if p]
        sys.path[:] = [os.getcwd(), *extra, *self._base_path]  # as -m builds it: cwd, PYTHONPATH, site
        importlib.invalidate_caches()
        _reopen_stdio(unbuffered=bool(spawn.env.get("PYTHONUNBUFFERED")))
        _reseed()


def _close_fds_from(low: int) -> None:
    """Close every descriptor >= ``low`` (the zygote checked that no Python object of its own owns one)."""
    for name in os.listdir("/proc/self/fd"):
        if int(name) >= low:
            with contextlib.suppress(OSError):  # the directory listing's own descriptor, already closed
                os.close(int(name))


def _reopen_stdio(*, unbuffered: bool) -> None:
    """New ``sys.std*`` on descriptors 0-2, buffered as the child's ``PYTHONUNBUFFERED`` says."""
    encoding = sys.stdout.encoding
    streams = []
    for fd, mode in ((0, "rb"), (1, "wb"), (2, "wb")):
        raw = open(fd, mode, buffering=0 if unbuffered and fd else -1, closefd=False)  # noqa: SIM115
        errors = "backslashreplace" if fd == 2 else "strict"
        streams.append(
            io.TextIOWrapper(
                raw,
                encoding=encoding,
                errors=errors,
                line_buffering=fd == 2 and not unbuffered,
                write_through=unbuffered,
            )
        )
    for name, stream in zip(("stdin", "stdout", "stderr"), streams, strict=True):
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)  # a new interpreter's originals are these too


def _reseed() -> None:
    """Fresh randomness per child: ``random`` reseeds itself after a fork; OpenSSL (fork-safe since 1.1.1)
    gets new entropy anyway, and multiprocessing's authentication key is drawn again."""
    import ssl

    ssl.RAND_add(os.urandom(32), 32.0)
    if "multiprocessing" in sys.modules:
        import multiprocessing

        multiprocessing.current_process().authkey = os.urandom(32)


def _preload() -> int:
    for name in PRELOAD:
        importlib.import_module(name)
    if threading.active_count() != 1 or len(os.listdir("/proc/self/task")) != 1:
        raise RuntimeError("a preloaded module started a thread: forking would copy a half-held lock")
    return len(sys.modules)


def main() -> None:
    control = socket.socket(fileno=int(sys.argv[1]))
    signals: dict[int, _Handler] = {int(s): signal.getsignal(s) for s in signal.valid_signals()}
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the hosts; the zygote ends with its client
    python_path = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    base_path = [p for p in sys.path[1:] if p not in python_path]
    started = time.process_time()
    try:
        modules = _preload()
        stray = [int(fd) for fd in os.listdir("/proc/self/fd") if int(fd) > 2 and int(fd) != control.fileno()]
        if len(stray) > 1:  # one is the listing's own descriptor
            raise RuntimeError(f"a preloaded module holds file descriptors {stray}")
    except Exception as error:  # reported to the client, which falls back to plain processes
        socket.send_fds(control, [json.dumps({"error": f"{type(error).__name__}: {error}"}).encode()], [])
        sys.exit(1)
    gc.freeze()  # children never collect the preloaded objects: their pages stay shared, GC skips them
    seconds = round(time.process_time() - started, 3)
    socket.send_fds(
        control,
        [json.dumps({"ready": True, "pid": os.getpid(), "modules": modules, "seconds": seconds}).encode()],
        [],
    )
    spawn = Server(control, signals, base_path).serve()
    sys.argv = [spawn.module, *spawn.argv]
    del control, signals, python_path, base_path
    runpy.run_module(spawn.module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
