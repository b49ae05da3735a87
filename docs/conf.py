"""Sphinx configuration: the Markdown pages of docs/ (MyST), an API reference from the docstrings (autodoc),
the configuration reference generated from ``ClerkSettings`` (``_ext/clerk_config.py``), the furo theme.

Intersphinx links to Flask and Werkzeug need their inventories from the network: set ``DOCS_INTERSPHINX=1`` to
fetch them (the published site). CI builds offline with ``-W``, so without it the mapping stays empty and no
fetch can fail the build; references to Flask and Werkzeug are then plain text.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path[:0] = [str(DOCS.parent), str(DOCS / "_ext")]

import flask_clerk_security  # noqa: E402

project = "flask-clerk-security"
author = "flask-clerk-security contributors"
copyright = "2026, flask-clerk-security contributors"
release = flask_clerk_security.__version__
version = ".".join(release.split(".")[:2])

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.intersphinx", "clerk_config"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]
suppress_warnings = ["myst.xref_missing"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}

intersphinx_mapping = (
    {
        "python": ("https://docs.python.org/3", None),
        "flask": ("https://flask.palletsprojects.com/en/stable/", None),
        "werkzeug": ("https://werkzeug.palletsprojects.com/en/stable/", None),
    }
    if os.environ.get("DOCS_INTERSPHINX") == "1"
    else {}
)

html_theme = "furo"
html_title = f"flask-clerk-security {release}"
