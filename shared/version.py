"""The app's version, reported by ``GET /api/health`` and the OpenAPI document. Keep equal to pyproject's."""

__version__ = "0.1.0"
