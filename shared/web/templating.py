"""The process's one Jinja2 environment, over ``shared/web/templates``: autoescaping for every template
(values from the directory and from mail are data, never markup), undefined variables an error
(``StrictUndefined``), templates read once (no reload checks). The report's templates live in its
``report/`` folder and render through :func:`compact`, an overlay of the same environment.

Jinja2 is imported on first use (cold start).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jinja2

TEMPLATES_DIR = Path(__file__).with_name("templates")


@functools.cache
def environment() -> jinja2.Environment:
    """The one environment (module docstring)."""
    import jinja2  # deferred (cold start): most instances start for an API call and render no page  # noqa: PLC0415 - jinja2 is heavy: imported on first use (cold start)

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        auto_reload=False,
    )


@functools.cache
def compact() -> jinja2.Environment:
    """:func:`environment` with block tags taking their line with them (``trim_blocks``,
    ``lstrip_blocks``): an overlay that shares its loader, cache and escaping, for the report's mail and
    page fragment, whose markup is laid out one tag per line."""
    return environment().overlay(trim_blocks=True, lstrip_blocks=True)
