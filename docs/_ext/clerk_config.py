"""A ``clerk-config-keys`` directive: the table of every ``CLERK_*`` key, generated from ``ClerkSettings``.

``ClerkSettings`` is where the extension's keys are defined (one field, one key; derived fields are not keys), so
the reference is read from it at build time and cannot drift from the code.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive
from sphinx.application import Sphinx

from flask_clerk_security.settings import ClerkSettings


def _default(field: dataclasses.Field[Any]) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "required"
    if value is None:
        return "unset"
    masked = getattr(value, "masked", None)  # a SecretURI shows its masked form
    return str(masked()) if callable(masked) else repr(value)


def config_keys() -> list[tuple[str, str, str]]:
    """``(key, type, default)`` for every key the extension reads, in the order ``ClerkSettings`` lists them."""
    return [
        (f"CLERK_{field.name.upper()}", str(field.type), _default(field))
        for field in dataclasses.fields(ClerkSettings)
        if not field.metadata.get("derived")
    ]


class ClerkConfigKeys(Directive):
    """Renders :func:`config_keys` as a table."""

    def run(self) -> list[nodes.Node]:
        table = nodes.table()
        group = nodes.tgroup(cols=3)
        table += group
        group.extend(nodes.colspec(colwidth=width) for width in (3, 3, 2))
        head, body = nodes.thead(), nodes.tbody()
        group += head
        group += body
        head += self._row(("Key", "Type", "Default"))
        for row in config_keys():
            body += self._row(row)
        return [table]

    @staticmethod
    def _row(cells: tuple[str, str, str]) -> nodes.row:
        row = nodes.row()
        for text in cells:
            entry = nodes.entry()
            entry += nodes.paragraph("", "", nodes.literal(text, text))
            row += entry
        return row


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("clerk-config-keys", ClerkConfigKeys)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
