"""Start and stop Azurite (the Azure Storage emulator) from the project's node_modules.

Install once with ``npm ci`` (``package.json`` pins it). Then::

    python -m devhost.azurite start                    # .local/azurite, ports 10000-10002
    python -m devhost.azurite start --in-memory --blob-port 20000 --queue-port 20001 --table-port 20002

``start`` runs in the foreground until Ctrl+C / SIGTERM and prints the
connection string. ``UseDevelopmentStorage=true`` (in local.settings.json)
reaches it on the default ports. From Python (tests)::

    with Azurite(in_memory=True, blob_port=..., queue_port=..., table_port=...) as azurite:
        azurite.connection_string

Azurite listens on 127.0.0.1 only, with telemetry off and
``--skipApiVersionCheck`` (current SDKs send API versions newer than Azurite's).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

__all__ = [
    "ACCOUNT_KEY",
    "ACCOUNT_NAME",
    "Azurite",
    "AzuriteError",
    "azurite_executable",
    "connection_string",
]

ACCOUNT_NAME = "devstoreaccount1"
# The well-known development key that Azurite documents; not a secret.
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
REPO_ROOT = Path(__file__).resolve().parent.parent


class AzuriteError(RuntimeError):
    """Azurite is not installed, did not start, or exited."""


def azurite_executable() -> Path:
    """``$AZURITE_BIN``, else ``node_modules/.bin/azurite`` at the repository root."""
    configured = os.environ.get("AZURITE_BIN")
    path = Path(configured) if configured else REPO_ROOT / "node_modules" / ".bin" / "azurite"
    if not path.exists():
        raise AzuriteError(f"{path} not found: run 'npm ci' at the repository root")
    return path


def connection_string(host: str, blob_port: int, queue_port: int, table_port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://{host}:{blob_port}/{ACCOUNT_NAME};"
        f"QueueEndpoint=http://{host}:{queue_port}/{ACCOUNT_NAME};"
        f"TableEndpoint=http://{host}:{table_port}/{ACCOUNT_NAME};"
    )


@dataclass
class Azurite:
    """An Azurite process: ``start()`` waits until all three ports accept connections."""

    location: Path | None = None  # workspace folder; None with in_memory
    in_memory: bool = False
    host: str = "127.0.0.1"
    blob_port: int = 10000
    queue_port: int = 10001
    table_port: int = 10002
    extent_memory_limit_mb: int | None = None
    startup_timeout: float = 30.0
    log_path: Path | None = None  # Azurite's own output (default: discarded)

    def __post_init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        if not self.in_memory and self.location is None:
            self.location = REPO_ROOT / ".local" / "azurite"

    @property
    def connection_string(self) -> str:
        return connection_string(self.host, self.blob_port, self.queue_port, self.table_port)

    @property
    def ports(self) -> tuple[int, int, int]:
        return self.blob_port, self.queue_port, self.table_port

    def command(self) -> list[str]:
        command = [
            str(azurite_executable()),
            "--blobHost", self.host, "--blobPort", str(self.blob_port),
            "--queueHost", self.host, "--queuePort", str(self.queue_port),
            "--tableHost", self.host, "--tablePort", str(self.table_port),
            "--skipApiVersionCheck", "--disableTelemetry", "--silent",
        ]  # fmt: skip
        if self.in_memory:
            command.append("--inMemoryPersistence")
            if self.extent_memory_limit_mb is not None:
                command += ["--extentMemoryLimit", str(self.extent_memory_limit_mb)]
        elif self.location is not None:
            command += ["--location", str(self.location)]
        return command

    def start(self) -> None:
        if self._process is not None:
            raise AzuriteError("Azurite is already started")
        command = self.command()
        if self.location is not None and not self.in_memory:
            self.location.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as stack:
            output: IO[bytes] | int = subprocess.DEVNULL
            if self.log_path is not None:
                output = stack.enter_context(self.log_path.open("ab"))
            # The child keeps its own copy of the log descriptor.
            self._process = subprocess.Popen(  # noqa: S603 - fixed arguments, no shell
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
                start_new_session=True,  # a terminal's Ctrl+C reaches us, not it
            )
        try:
            self._wait_until_listening()
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def wait(self) -> int:
        if self._process is None:
            raise AzuriteError("Azurite is not started")
        return self._process.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_until_listening(self) -> None:
        if self._process is None:
            raise AzuriteError("Azurite is not started")
        deadline = time.monotonic() + self.startup_timeout
        pending = list(self.ports)
        while pending:
            if self._process.poll() is not None:
                raise AzuriteError(
                    f"Azurite exited with status {self._process.returncode} "
                    f"(ports in use? log: {self.log_path or 'discarded'})"
                )
            if time.monotonic() > deadline:
                raise AzuriteError(f"Azurite did not listen on {pending} within {self.startup_timeout} s")
            pending = [port for port in pending if not _accepts(self.host, port)]
            if pending:
                time.sleep(0.05)


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devhost.azurite")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="run Azurite in the foreground")
    where = start.add_mutually_exclusive_group()
    where.add_argument("--location", type=Path, help="workspace folder (default: .local/azurite)")
    where.add_argument("--in-memory", action="store_true", help="keep no data on disk")
    start.add_argument("--host", default="127.0.0.1")
    start.add_argument("--blob-port", type=int, default=10000)
    start.add_argument("--queue-port", type=int, default=10001)
    start.add_argument("--table-port", type=int, default=10002)
    args = parser.parse_args(argv)

    azurite = Azurite(
        location=args.location,
        in_memory=args.in_memory,
        host=args.host,
        blob_port=args.blob_port,
        queue_port=args.queue_port,
        table_port=args.table_port,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        azurite.start()
    except AzuriteError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    where_text = "in memory" if args.in_memory else str(azurite.location)
    print(f"Azurite is listening on {args.host} ports {azurite.ports} ({where_text}).")
    print(f"Connection string: {azurite.connection_string}")
    print("Press Ctrl+C to stop.", flush=True)
    while not stop.wait(0.5):
        if not azurite.running:
            print("error: Azurite exited", file=sys.stderr)
            return 1
    azurite.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
