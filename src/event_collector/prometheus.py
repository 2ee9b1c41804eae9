"""
Prometheus export of queues, gateways and workers (the ``prometheus`` extra).

:func:`register` a :class:`PrometheusCollector` of what to export, then serve the registry
with :func:`serve_metrics` in a nursery of yours; ``event-collector gateway`` and ``worker``
do both with ``--metrics-port``.
"""

from ._prometheus import PrometheusCollector as PrometheusCollector
from ._prometheus import Source as Source
from ._prometheus import register as register
from ._prometheus import serve_metrics as serve_metrics
from ._public import fixup_module_metadata as _fixup_module_metadata

__all__ = ["PrometheusCollector", "Source", "register", "serve_metrics"]

_fixup_module_metadata(__name__, globals())
del _fixup_module_metadata
