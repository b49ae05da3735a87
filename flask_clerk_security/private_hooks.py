"""Checks for the private hooks of flask-limiter and flask-talisman that the extension's subclasses override.

``ClerkLimiter`` and ``ClerkTalisman`` do the libraries' per-request work faster by overriding private methods.
A release that renames one, or changes its parameters, would leave an override dead or called wrongly; so each
subclass is used only when every hook it relies on is there with the parameters it expects, and otherwise the
library's own class is used (slower, still correct) after one warning naming the installed version.
"""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
import logging
from collections.abc import Iterable, Mapping

logger = logging.getLogger("flask_clerk_security")


def hook_problems(owner: object, hooks: Mapping[str, tuple[str, ...]]) -> list[str]:
    """The methods of ``hooks`` that ``owner`` (a class) lacks, or whose parameter names are not the ones given."""
    problems = []
    for name, expected in hooks.items():
        hook = inspect.getattr_static(owner, name, None)
        if not callable(hook):
            problems.append(f"{name} is missing")
            continue
        found = tuple(inspect.signature(hook).parameters)
        if found != expected:
            problems.append(f"{name}{found} is not {name}{expected}")
    return problems


def attribute_problems(owner: object, names: Iterable[str]) -> list[str]:
    """The attributes of ``names`` that ``owner`` (an instance) lacks."""
    return [f"{name} is missing" for name in names if not hasattr(owner, name)]


def warn_fallback(distribution: str, subclass: str, problems: list[str]) -> None:
    """Say, once per process and library, that the library's own class is used instead of ``subclass``."""
    _warn_once(distribution, subclass, "; ".join(problems))


@functools.cache
def _warn_once(distribution: str, subclass: str, problems: str) -> None:
    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    logger.warning(
        "%s %s changed private hooks %s relies on (%s): using plain %s instead (correct, slower). "
        "Fix: install a version this release supports (see its dependency range).",
        distribution, version, subclass, problems, distribution,
    )  # fmt: skip
