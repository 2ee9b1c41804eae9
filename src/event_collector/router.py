"""
Routers: the base class for custom routing and the default :class:`SimpleRouter`.
"""

from ._router import Router as Router
from ._router import SimpleRouter as SimpleRouter

__all__ = ["Router", "SimpleRouter"]
