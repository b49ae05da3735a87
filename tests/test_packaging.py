"""Release metadata: one version everywhere, a changelog entry for it, README links that work on the index page."""

from __future__ import annotations

import re
from pathlib import Path

from flask import Flask

import flask_clerk_security
from flask_clerk_security.cli import clerk_cli

ROOT = Path(__file__).resolve().parent.parent
REPOSITORY = "https://github.com/flask-clerk-security/flask-clerk-security"


def test_flask_clerk_version_shows_the_package_version() -> None:
    result = Flask("versioned").test_cli_runner().invoke(clerk_cli, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"flask-clerk-security, version {flask_clerk_security.__version__}\n"


def test_the_version_is_defined_once_and_has_a_changelog_section() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    project = pyproject.split("\n[project]\n", 1)[1].split("\n[", 1)[0]
    assert 'dynamic = ["version"]' in project and not re.search(r"^version\s*=", project, re.M)
    assert '\n[tool.setuptools.dynamic]\nversion = { attr = "flask_clerk_security.__version__" }\n' in pyproject
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## [{flask_clerk_security.__version__}]" in changelog


def test_readme_links_are_absolute_and_point_at_files_of_the_repository() -> None:
    """The package index shows README.md without the repository around it: relative links would be dead there."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)", readme)
    assert links
    relative = [link for link in links if not re.match(r"https?://|#", link)]
    assert relative == []
    for link in links:
        if link.startswith(f"{REPOSITORY}/blob/main/"):
            path = link.removeprefix(f"{REPOSITORY}/blob/main/").split("#")[0]
            assert (ROOT / path).is_file(), link
