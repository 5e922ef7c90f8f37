"""The Graph client's settings: its part of the app's settings, and nothing else."""

from __future__ import annotations

from shared.core.records import Record


class GraphConfig(Record):
    """The Graph settings the client reads (``GRAPH_ENDPOINT``, ``GRAPH_TIMEOUT_SECONDS``,
    ``GRAPH_RETRY_BUDGET_SECONDS``, ``GRAPH_MAX_RETRIES``)."""

    endpoint: str
    timeout_seconds: float = 10.0
    retry_budget_seconds: float = 30.0
    max_retries: int = 5

    @property
    def base_url(self) -> str:
        """Root of Graph v1.0 calls, ``{GRAPH_ENDPOINT}/v1.0``."""
        return f"{self.endpoint}/v1.0"

    @property
    def scope(self) -> str:
        """The ``.default`` scope of Graph (app-only: the granted application permissions)."""
        return f"{self.endpoint}/.default"
