"""identity service of the local tenant. `build_app(state)` returns its ASGI app."""

from __future__ import annotations

from starlette.applications import Starlette

from emulator.state import EmulatorState


def build_app(state: EmulatorState) -> Starlette:
    return Starlette(routes=[])
