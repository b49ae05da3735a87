"""Print the installed runtime dependencies of flask-clerk-security, pinned (``name==version``), one a line.

The closure of the package's requirements without extras, as installed here: what ``pip-audit`` checks.
"""

from __future__ import annotations

import importlib.metadata as metadata
import re

from packaging.requirements import Requirement

seen: dict[str, str] = {}
pending = ["flask-clerk-security"]
while pending:
    name = pending.pop()
    for text in metadata.requires(name) or []:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        key = re.sub(r"[-_.]+", "-", requirement.name).lower()
        if key not in seen:
            seen[key] = metadata.version(requirement.name)
            pending.append(requirement.name)
print("\n".join(f"{name}=={version}" for name, version in sorted(seen.items())))
