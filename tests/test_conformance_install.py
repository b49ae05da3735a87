"""The conformance suite installs its own node packages, so the README's ``python -m pytest`` runs it."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import CONFORMANCE_DIR, install_node_packages, skip_or_fail


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        skip_or_fail("node and npm are not installed")
    return npm


def test_missing_or_stale_node_modules_are_installed_once(tmp_path: Path) -> None:
    npm = _npm()
    for name in ("package.json", "package-lock.json"):
        shutil.copy(CONFORMANCE_DIR / name, tmp_path / name)
    install_node_packages(tmp_path, npm)  # missing: installed
    record = tmp_path / "node_modules" / ".package-lock.json"
    assert (tmp_path / "node_modules" / "@clerk" / "backend" / "package.json").is_file()
    first = record.stat().st_mtime_ns
    install_node_packages(tmp_path, npm)  # up to date: npm is not run again
    assert record.stat().st_mtime_ns == first
    shutil.rmtree(tmp_path / "node_modules" / "@clerk" / "backend")  # stale: installed again
    install_node_packages(tmp_path, npm)
    assert (tmp_path / "node_modules" / "@clerk" / "backend" / "package.json").is_file()


def test_the_conformance_fixture_provides_node_with_clerks_packages(conformance_node: str) -> None:
    assert Path(conformance_node).name == "node"
    assert (CONFORMANCE_DIR / "node_modules" / "@clerk" / "backend" / "package.json").is_file()
