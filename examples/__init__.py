"""
Runnable examples, each a script (``python examples/NAME.py``) the docs include.

This file makes the directory a package for the type checker only (``benchmarks/`` has a
``distributed.py`` too); the scripts do not import each other.
"""
