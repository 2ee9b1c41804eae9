"""
Collectors and the types of their processor and lifecycle.
"""

from ._collector import Collector as Collector
from ._collector import Lifecycle as Lifecycle
from ._collector import Processor as Processor

__all__ = ["Collector", "Lifecycle", "Processor"]
