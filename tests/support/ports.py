"""Free loopback ports for test servers.

Under pytest-xdist each worker draws from its own slice of the range (``PYTEST_XDIST_WORKER`` ``gwN`` of
``PYTEST_XDIST_WORKER_COUNT``): a port is free when drawn but bound later by the server started on it, so two
workers drawing from one range could both pick it in between.
"""

from __future__ import annotations

import os
import random
import socket


def _below_ephemeral(default: int = 32768) -> int:
    """The first port the kernel hands out to outgoing connections: a port drawn above it can be taken by
    some client's connection between the draw and the server's bind ("address already in use")."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return default


LOW = 20000
HIGH = max(LOW + 2000, min(40000, _below_ephemeral()))


def worker_range(low: int = LOW, high: int = HIGH) -> tuple[int, int]:
    """``[low, high)`` narrowed to this xdist worker's slice (the whole range outside xdist)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or count <= 1:
        return low, high
    index = int(worker[2:]) % count
    span = (high - low) // count
    return low + index * span, low + (index + 1) * span


def free_port_range(count: int, low: int = LOW, high: int = HIGH) -> int:
    """First port of ``count`` consecutive free loopback ports (in this worker's slice of the range)."""
    low, high = worker_range(low, high)
    for _ in range(200):
        base = random.randrange(low, high - count)
        socks = []
        try:
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range found")


def free_port() -> int:
    return free_port_range(1)
