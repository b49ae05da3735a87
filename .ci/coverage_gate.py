"""Branch-coverage gate after ``coverage run -m pytest``: the package and each core module above its floor.

The package floor is ``[tool.coverage.report] fail_under`` in pyproject.toml; the core modules are listed here,
the one place to edit when a module is renamed or added.
"""

from __future__ import annotations

import sys

import coverage

CORE_MODULES = ["tokens.py", "auth.py", "routes.py", "authenticate.py", "extension.py"]
CORE_FLOOR = 95.0


def main() -> int:
    """Print the report, then fail (1) when the package or a core module is under its floor."""
    cov = coverage.Coverage()
    cov.load()
    total = cov.report(show_missing=True, skip_covered=True)
    package_floor = float(cov.get_option("report:fail_under") or 0)
    failures = [f"package {total:.1f}% < {package_floor:.0f}%"] if total < package_floor else []
    data = cov.get_data()
    for name in CORE_MODULES:
        path = next((f for f in data.measured_files() if f.endswith(f"/flask_clerk_security/{name}")), None)
        if path is None:
            failures.append(f"{name}: not measured")
            continue
        percent = cov.report(morfs=[path], file=_Null())
        print(f"{name:<16} {percent:5.1f}%")
        if percent < CORE_FLOOR:
            failures.append(f"{name} {percent:.1f}% < {CORE_FLOOR:.0f}%")
    for failure in failures:
        print(f"coverage gate: {failure}", file=sys.stderr)
    return 1 if failures else 0


class _Null:
    """A text sink for the per-module reports (only their totals are printed)."""

    def write(self, _: str) -> int:
        return 0

    def flush(self) -> None:
        pass


if __name__ == "__main__":
    sys.exit(main())
