"""Shared helpers of the benchmarks: where results go, summary statistics, the machine they ran on,
and the local infrastructure (Azurite, a local tenant) started the same way the tests start it."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devhost.azurite import Azurite  # noqa: E402
from tests.support.ports import free_port_range  # noqa: E402
from tests.support.tenant import LocalTenant, trusted_tenant  # noqa: E402


def machine() -> dict[str, Any]:
    """What the figures depend on: interpreter, CPUs, platform, commit (read only)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - read-only, fixed arguments
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "commit": commit or None,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_result(name: str, result: dict[str, Any]) -> Path:
    """``bench/results/{name}.json`` (pretty JSON); returns the path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return path


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    ms = [value * 1000 for value in seconds]
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 3),
        "p95_ms": round(percentile(ms, 95), 3),
        "min_ms": round(min(ms), 3),
        "max_ms": round(max(ms), 3),
    }


@contextmanager
def azurite(workdir: Path) -> Iterator[Azurite]:
    base = free_port_range(3)
    instance = Azurite(
        in_memory=True,
        blob_port=base,
        queue_port=base + 1,
        table_port=base + 2,
        log_path=workdir / "azurite.log",
    )
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


@contextmanager
def local_tenant(workdir: Path, users: int) -> Iterator[LocalTenant]:
    """A local tenant trusted by this process (its CA bundle in REQUESTS_CA_BUNDLE/SSL_CERT_FILE)."""
    workdir.mkdir(parents=True, exist_ok=True)
    with trusted_tenant(workdir, users=users) as tenant:
        yield tenant


def token_requests(entries: list[dict[str, Any]], client_id: str | None = None) -> list[dict[str, Any]]:
    """Token endpoint calls in a tenant request log (optionally of one client)."""
    return [
        entry
        for entry in entries
        if entry["service"] == "login"
        and entry["method"] == "POST"
        and str(entry["path"]).endswith("/oauth2/v2.0/token")
        and (client_id is None or entry["client_id"] == client_id)
    ]
