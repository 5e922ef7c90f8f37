"""``python -m tests.devhost.zygote_child COMMAND``: what tests/devhost/test_zygote.py runs, forked or not.

``report`` prints, as one JSON line, what a process inherits (environment, cwd, argv, sys.path, signal
dispositions, open descriptors, threads, stdio buffering, loaded app modules, fresh random values);
``exit N`` exits with N; ``raise`` raises; ``serve`` prints ``ready`` and waits for a signal.
"""

from __future__ import annotations

import json
import os
import random
import signal
import ssl
import sys
import threading
import time

APP_PACKAGES = {"shared", "blueprints", "function_app"}


def report() -> dict[str, object]:
    fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))[:-1]  # the last: the listing's own
    handlers = {
        s.name: repr(signal.getsignal(s)) for s in signal.Signals if s not in (signal.SIGKILL, signal.SIGSTOP)
    }
    return {
        "pid": os.getpid(),
        "env": dict(os.environ),
        "cwd": os.getcwd(),
        "argv": sys.argv,
        "path": sys.path,
        "signals": handlers,
        "blocked": sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])),
        "fds": fds,
        "threads": threading.active_count(),
        "stdout_write_through": getattr(sys.stdout, "write_through", None),
        "stderr_line_buffering": sys.stderr.line_buffering,
        "dont_write_bytecode": sys.dont_write_bytecode,
        "app_modules": sorted(m for m in sys.modules if m.split(".")[0] in APP_PACKAGES),
        "main": sys.modules["__main__"].__file__,
        "random": random.random(),
        "ssl_random": ssl.RAND_bytes(16).hex(),
        "timezone": time.tzname[0],
    }


def main(argv: list[str]) -> int:
    command = argv[0]
    if command == "report":
        print(json.dumps(report()))
        return 0
    if command == "exit":
        return int(argv[1])
    if command == "raise":
        raise LookupError("raised on purpose")
    if command == "serve":
        print("ready", flush=True)
        while True:
            signal.pause()
    raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
