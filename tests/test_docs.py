"""Every ```python block of README.md and docs/*.md runs as written, and the examples' run commands work.

Each block runs in its own interpreter (a fresh process: no block sees another's apps, signals or loggers), from
a temporary directory, with this worktree's package first on the path and no ``CLERK_*`` from the outside.
What a block needs is declared on the line before its fence, in an HTML comment the rendered page does not show:

    <!-- docs-test: setup=app -->
    <!-- docs-test: setup=factory run=pytest -->
    <!-- docs-test: name=factory -->        ... then, further down the page:
    <!-- docs-test: continue=factory run=pytest -->
    <!-- docs-test: skip-run: not a Python program -->

``setup=`` names preambles (below, comma-separated) put before the block, after the environment of a Clerk test
issuer (``CLERK_JWT_KEY``, ``CLERK_PUBLISHABLE_KEY``, ``CLERK_SECRET_KEY``, ``CLERK_WEBHOOK_SECRET``, and
``CLERK_API_URL`` on a closed loopback port, so nothing reaches the network). ``then=init`` adds
``ClerkSecurity(app)`` after a config fragment. ``run=pytest`` runs the block as a test module with the test kit's
fixtures (and no ``CLERK_*`` in the environment: its apps are configured from the fixtures). ``continue`` runs the
block after the previous block of the same page, ``continue=NAME`` after the block of that page declared with
``name=NAME`` (and what that one continues).
A block without a comment runs as it is, in that environment.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from flask_clerk_security.testing import ClerkTestIssuer

from .conftest import closed_port

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TIMEOUT = 60

#: Preambles a block may ask for with ``setup=``: the context a doc fragment assumes.
SETUPS = {
    # Only the issuer's environment (every block has it): the block is a whole program.
    "env": "",
    # An app under construction: a config fragment runs before ClerkSecurity(app) (see "init" below).
    "flask": (
        "from flask import Flask\n"
        "from flask_clerk_security import ClerkSecurity, current_auth\n\n"
        "app = Flask(__name__)\n"
    ),
    # An app with the extension, for fragments that add routes, middleware or signal receivers.
    "app": (
        "from flask import Flask\n"
        "from flask_clerk_security import ClerkSecurity, current_auth\n\n"
        "app = Flask(__name__)\n"
        "clerk = ClerkSecurity(app)\n"
    ),
}
#: Epilogues (``init``): what makes a config fragment count, the extension reading (and checking) it.
EPILOGUES = {"init": "\nfrom flask_clerk_security import ClerkSecurity as _ClerkSecurity\n\n_ClerkSecurity(app)\n"}

_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>\S*)\s*$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<body>.*?)\s*-->\s*$")


@dataclass
class Block:
    """One ```python block: where it is, its code (dedented) and what its ``docs-test`` comment declares."""

    page: Path
    line: int
    code: str
    setups: list[str] = field(default_factory=list)
    epilogues: list[str] = field(default_factory=list)
    run: str = "script"
    name: str = ""
    skip: str | None = None
    previous: Block | None = None

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    def source(self) -> str:
        """The program that runs: preambles, earlier blocks it continues, the block itself, epilogues."""
        return "\n".join([*self._program(), *(EPILOGUES[name] for name in self.epilogues)])

    def _program(self) -> list[str]:
        head = self.previous._program() if self.previous else [SETUPS[name] for name in self.setups]
        return [*head, self.code]


def _apply(block: Block, body: str, earlier: list[Block]) -> None:
    if body.startswith("skip-run:"):
        block.skip = body.removeprefix("skip-run:").strip()
        if not block.skip:
            raise ValueError(f"{block.id}: skip-run needs a reason")
        return
    for word in body.split():
        name, _, value = word.partition("=")
        if name == "setup":
            block.setups = [item for item in value.split(",") if item]
            unknown = [item for item in block.setups if item not in SETUPS]
        elif name == "then":
            block.epilogues = [item for item in value.split(",") if item]
            unknown = [item for item in block.epilogues if item not in EPILOGUES]
        elif name == "run" and value in ("script", "pytest"):
            block.run, unknown = value, []
        elif name == "name" and value:
            block.name, unknown = value, []
        elif name == "continue" and earlier:
            found = [other for other in earlier if other.name == value] if value else earlier[-1:]
            block.previous, unknown = (found[-1], []) if found else (None, [word])
        else:
            unknown = [word]
        if unknown:
            raise ValueError(f"{block.id}: unknown docs-test directive {', '.join(unknown)}")


def collect(page: Path) -> list[Block]:
    """The page's ```python blocks, in order, with their declarations."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    number = 0
    while number < len(lines):
        fence = _FENCE.match(lines[number])
        if fence is None:
            number += 1
            continue
        indent, start = len(fence["indent"]), number
        number += 1
        while number < len(lines) and lines[number].strip() != "```":
            number += 1
        if fence["lang"] == "python":
            code = "\n".join(line[indent:] for line in lines[start + 1 : number]) + "\n"
            block = Block(page, start + 1, code)
            above = lines[start - 1] if start else ""
            directive = _DIRECTIVE.match(above)
            if directive:
                _apply(block, directive["body"], blocks)
            blocks.append(block)
        number += 1
    return blocks


BLOCKS = [block for page in PAGES for block in collect(page)]


@pytest.fixture(scope="module")
def docs_env() -> dict[str, str]:
    """The environment of every block: no outside CLERK_*, a test issuer's keys, this worktree first."""
    issuer = ClerkTestIssuer()
    env = {name: value for name, value in os.environ.items() if not name.startswith(("CLERK_", "FLASK_"))}
    env.update(
        CLERK_JWT_KEY=issuer.public_pem,
        CLERK_PUBLISHABLE_KEY=issuer.publishable_key,
        CLERK_SECRET_KEY=issuer.secret_key,
        CLERK_WEBHOOK_SECRET=issuer.webhook_secret,
        CLERK_API_URL=f"http://127.0.0.1:{closed_port()}",
        PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def test_every_page_is_collected() -> None:
    """New pages under docs/ are picked up by the glob, and the pages with code have blocks here."""
    assert {page.name for page in PAGES} >= {"README.md", "testing.md", "security-headers.md"}
    assert {block.page.name for block in BLOCKS} >= {"README.md", "testing.md", "machine-tokens.md"}


def test_blocks_import_this_worktree(docs_env: dict[str, str], tmp_path: Path) -> None:
    """The package a block imports is this worktree's, not another installed copy."""
    result = subprocess.run(
        [sys.executable, "-c", "import flask_clerk_security as m; print(m.__file__)"],
        cwd=tmp_path, env=docs_env, capture_output=True, text=True, timeout=TIMEOUT, check=True,
    )  # fmt: skip
    assert Path(result.stdout.strip()).parent == ROOT / "flask_clerk_security"


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_doc_block_runs(block: Block, docs_env: dict[str, str], tmp_path: Path) -> None:
    if block.skip:
        pytest.skip(block.skip)
    if block.run == "pytest":
        path = tmp_path / "test_doc_block.py"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", str(path)]
    else:
        path = tmp_path / "doc_block.py"
        command = [sys.executable, "-W", "error::DeprecationWarning", str(path)]
    env = docs_env
    if block.run == "pytest":  # a test module configures its apps from the test kit's fixtures, nothing else
        env = {name: value for name, value in docs_env.items() if not name.startswith("CLERK_")}
    path.write_text(block.source(), encoding="utf-8")
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, f"{block.id} failed:\n{block.source()}\n{result.stdout}\n{result.stderr}"
    if block.run == "pytest":
        assert re.search(r"\b\d+ passed\b", result.stdout) and " failed" not in result.stdout, result.stdout


def _module_docstring_commands(path: Path) -> list[str]:
    """The ``flask --app ... run`` commands a module's docstring tells the reader to type."""
    text = path.read_text(encoding="utf-8")
    docstring = text.split('"""', 2)[1]
    return re.findall(r"flask --app \S+ run\b[^`\n]*", docstring)


EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
RUN_COMMANDS = [
    (path.name, command)
    for path in EXAMPLES
    if path.name != "__init__.py"
    for command in _module_docstring_commands(path)
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_every_example_documents_a_run_command() -> None:
    assert {name for name, _ in RUN_COMMANDS} == {path.name for path in EXAMPLES if path.name != "__init__.py"}


@pytest.mark.parametrize(("example", "command"), RUN_COMMANDS, ids=[name for name, _ in RUN_COMMANDS])
def test_example_run_command_serves(example: str, command: str, docs_env: dict[str, str]) -> None:
    """The documented command, run from the repository root without ``--debug``, answers on 127.0.0.1."""
    port = _free_port()
    argv = [sys.executable, "-m", *shlex.split(command), "--port", str(port)]
    server = subprocess.Popen(argv, cwd=ROOT, env=docs_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        response = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/", allow_redirects=False, timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        assert response is not None, f"{command} did not serve within 20 s"
        assert response.status_code != 302 or not response.headers["Location"].startswith("https://"), (
            f"{command}: redirected to HTTPS on loopback"
        )
        assert response.status_code < 500, response.text
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=10)
    assert "Traceback" not in output, output


def test_api_reference_names_every_public_name() -> None:
    """docs/api.md documents each name of ``__all__``, every field of ``Auth`` and the test kit's ``__all__``."""
    import dataclasses

    import flask_clerk_security
    from flask_clerk_security import testing

    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)", text))
    fields = [field.name for field in dataclasses.fields(flask_clerk_security.Auth) if not field.name.startswith("_")]
    for names in (flask_clerk_security.__all__, fields, testing.__all__):
        assert not set(names) - documented, f"missing from docs/api.md: {sorted(set(names) - documented)}"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "](https://github.com/flask-clerk-security/flask-clerk-security/blob/main/docs/api.md)" in readme
