"""
How public names present themselves: their home module, and classes users get but do not build.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn, TypeVar

__all__ = ["NoPublicConstructor", "fixup_module_metadata"]

C = TypeVar("C")


class NoPublicConstructor(type):
    """
    Metaclass of classes the library builds for users (with ``cls._create(...)``).

    Calling the class raises TypeError, and ``help()`` shows no internal constructor.
    """

    def __call__(cls, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError(f"{cls.__module__}.{cls.__qualname__} has no public constructor")

    def _create(cls: type[C], *args: Any, **kwargs: Any) -> C:
        instance: C = super().__call__(*args, **kwargs)  # type: ignore[misc]  # cls: type[C]
        return instance


def _is_private(module: str) -> bool:
    """
    Whether ``module`` is private to the package: ``event_collector._x``, ``.testing._y``.
    """
    parts = module.split(".")
    return parts[0] == "event_collector" and any(part.startswith("_") for part in parts[1:])


def fixup_module_metadata(module_name: str, namespace: Mapping[str, object]) -> None:
    """
    Give the public names of ``namespace`` the public module ``module_name`` as their home.

    ``repr()``, ``help()``, tracebacks and the docs then say ``event_collector.X`` rather
    than a private module, as trio does in its ``__init__``.
    """
    seen: set[int] = set()

    def fix(obj: object) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        module = getattr(obj, "__module__", None)
        if module is None or not _is_private(module):
            return
        try:
            obj.__module__ = module_name
        except (AttributeError, TypeError):  # pragma: no cover  (read-only objects)
            return
        if isinstance(obj, type):
            for value in vars(obj).values():
                if callable(value) or isinstance(value, (property, classmethod, staticmethod)):
                    fix(getattr(value, "__func__", None) or getattr(value, "fget", value))

    for name, obj in namespace.items():
        if not name.startswith("_"):
            fix(obj)
