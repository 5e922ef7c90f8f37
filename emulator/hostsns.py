"""Run a command with the production host names resolving to the local tenant, without touching /etc/hosts.

``python -m emulator.hostsns -- COMMAND ARGS...`` runs COMMAND in a private mount namespace
(``unshare -m --propagation private``, root only) in which a private copy of /etc/hosts, extended with
``127.0.0.1 login.microsoftonline.com graph.microsoft.com …``, is bind-mounted over /etc/hosts. The real
file is never edited and nothing outside the command sees the change. Pair it with
``python -m emulator --production-hostnames``: the command then needs no endpoint overrides at all, only a
CA bundle that trusts the local CA (``REQUESTS_CA_BUNDLE``).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from emulator.config import PRODUCTION_HOSTS


def hosts_file(extra_names: tuple[str, ...] = ()) -> Path:
    base = Path("/etc/hosts").read_text() if Path("/etc/hosts").exists() else "127.0.0.1 localhost\n"
    names = " ".join((*PRODUCTION_HOSTS.values(), *extra_names))
    fd, name = tempfile.mkstemp(prefix="local-tenant-hosts-")
    with os.fdopen(fd, "w") as fh:
        fh.write(
            base.rstrip("\n")
            + f"\n# local tenant (python -m emulator --production-hostnames)\n127.0.0.1 {names}\n"
        )
    os.chmod(name, 0o644)
    return Path(name)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        print("usage: python -m emulator.hostsns -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        print(
            "hostsns: needs root and unshare(1) (util-linux) for a private mount namespace", file=sys.stderr
        )
        return 2
    hosts = hosts_file()
    script = 'mount --bind "$0" /etc/hosts && exec "$@"'
    os.execv(unshare, [unshare, "-m", "--propagation", "private", "sh", "-c", script, str(hosts), *args])  # noqa: S606 - fixed program, no shell parsing of args
    return 0  # pragma: no cover - exec does not return


if __name__ == "__main__":
    raise SystemExit(main())
