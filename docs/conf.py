"""
Sphinx configuration: autodoc over the installed package, Napoleon docstrings, furo theme.
"""

import importlib.metadata
import re

project = "event-collector"
author = "event-collector developers"
release = importlib.metadata.version("event-collector")
version = release

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
html_theme = "furo"
nitpicky = True
# No network at build time: references into trio, attrs, structlog and the standard
# library stay plain text instead of links.
nitpick_ignore_regex = [
    (
        r"py:.*",
        r"(trio|attrs|attr|structlog|outcome|contextlib|collections|typing|types|zmq|msgspec)\..*",
    ),
    (r"py:.*", r"datetime\..*"),
    (r"py:.*", r"event_collector\._\w+\.[A-Z]"),  # TypeVars
    (r"py:.*", r"(T|D|T_co|Any|Self|Final|TypeAlias|NoReturn|BaseException|Exception)"),
    (r"py:.*", r"(int|float|str|bool|object|list|tuple|dict|type|None|Callable|Sequence)"),
    (r"py:.*", r"(Awaitable|Iterable|Iterator|AsyncIterator|ExceptionGroup|TracebackType)"),
    (r"py:.*", r"(_AnyResult|Processor|Lifecycle|MonotonicTime|FilteringBoundLogger)"),
    (r"py:.*", r"(TaskStatus|Nursery|SendChannel|ReceiveChannel|MemoryChannelStatistics)"),
    (r"py:.*", r"hypothesis\..*"),
    (r"py:.*", r"event_collector\.testing\.(_\w+|strategies)\.[A-Z]"),  # TypeVars
]


def _resolve_private_path(app, env, node, contnode):  # type: ignore[no-untyped-def]
    """
    Resolve ``event_collector._module.Name`` to the public ``event_collector.Name``.

    The package gives its public names their public module, but typing aliases made at
    import time (``Payload[Any]`` in a type alias) keep the private path.
    """
    match = re.fullmatch(r"event_collector\._\w+\.(\w+)", node.get("reftarget", ""))
    if match is None or node.get("refdomain") != "py":
        return None
    node["reftarget"] = f"event_collector.{match.group(1)}"
    domain = env.get_domain("py")
    return domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], node["reftarget"], node, contnode
    )


def setup(app):  # type: ignore[no-untyped-def]
    app.connect("missing-reference", _resolve_private_path)
