"""Free loopback ports for test servers."""

from __future__ import annotations

import random
import socket


def free_port_range(count: int, low: int = 20000, high: int = 40000) -> int:
    """First port of ``count`` consecutive free loopback ports."""
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
