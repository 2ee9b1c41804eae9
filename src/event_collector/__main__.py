"""
``python -m event_collector``: the ``event-collector`` command.
"""

from ._cli import main

main()
