"""
``python -m event_collector``: run the getting-started demo.
"""

from ._demo import main

main()
