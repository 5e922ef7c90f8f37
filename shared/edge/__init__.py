"""The edge: where a request, a timer or a queue message becomes a :class:`Call` (the caller, their tenant
and its services); endpoints declare their access in the decorator (:func:`api`, :func:`page`)."""

from shared.edge.call import Call
from shared.edge.endpoints import api, background, page
from shared.edge.graph_hooks import webhook

__all__ = ["Call", "api", "background", "page", "webhook"]
