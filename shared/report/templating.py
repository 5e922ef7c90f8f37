"""The report's templates (``shared/web/templates/report``), rendered through the app's one Jinja2
environment with block tags taking their line with them (:func:`shared.web.templating.compact`);
autoescaping is always on, so every value from the directory (names, departments) is HTML-escaped in the
mail and the page."""

from __future__ import annotations

from typing import Any

from shared.web.templating import compact


def render(name: str, **context: Any) -> str:
    """Render the report template ``name`` (a file of ``shared/web/templates/report``)."""
    return str(compact().get_template(f"report/{name}").render(**context))
