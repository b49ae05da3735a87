"""Mutation testing of the core modules: ``python benchmarks/mutation.py [tokens auth ...] [--limit N]``.

A small AST mutator (mutmut 3 copies the package into ``mutants/`` and cannot see through this package's pytest
plugin, which imports the package before any test runs). Each mutant changes one operator or constant of one
module in a private copy of the repository, then runs that module's test files there (``python -m pytest -x``
from the copy's root imports the copy, plugin included) with a timeout. A mutant is killed when the tests fail
or time out. Exception messages, log text and docstrings are not mutated (message-only mutants say nothing about
behaviour); reason strings and other compared constants are.

Prints every surviving mutant as it is found (``survived  file:line  #index  original -> mutant``), then the
score per module. ``--only 12,40`` reruns single mutants of one module by index.
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "flask_clerk_security"
#: The core modules and the test files that state their behaviour (one place to edit after a rename).
TESTS: dict[str, list[str]] = {
    "tokens": [
        "tests/test_tokens.py", "tests/test_token_cache.py", "tests/test_conformance.py", "tests/test_jwks.py",
        "tests/test_conformance_pages.py",
    ],
    "auth": ["tests/test_auth.py", "tests/test_require.py", "tests/test_conformance.py"],
    "routes": ["tests/test_routes.py", "tests/test_protection.py", "tests/test_conformance_routes.py"],
    "protection": [
        "tests/test_protection.py", "tests/test_protection_shapes.py", "tests/test_protect.py", "tests/test_options.py",
        "tests/test_require.py", "tests/test_machine_tokens.py", "tests/test_responses.py", "tests/test_handshake.py",
        "tests/test_leakguard_audit.py",
    ],
    "authenticate": [
        "tests/test_protection.py", "tests/test_handshake.py", "tests/test_conformance.py",
        "tests/test_leakguard_audit.py",
    ],
    "jsvalues": ["tests/test_jsvalues.py", "tests/test_auth_message.py"],
    "extension": [
        "tests/test_protection.py", "tests/test_require.py", "tests/test_machine_tokens.py", "tests/test_jwks.py",
        "tests/test_leakguard_audit.py", "tests/test_webhooks.py", "tests/test_protection_shapes.py",
        "tests/test_options.py", "tests/test_protect.py",
    ],
}
_COMPARE_SWAPS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
    ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}  # fmt: skip
_BINOP_SWAPS: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult, ast.Div: ast.Mult,
    ast.Mod: ast.Mult, ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd, ast.RShift: ast.LShift, ast.LShift: ast.RShift,
}  # fmt: skip
_MESSAGE_CALLS = frozenset({"TokenVerificationError", "ValueError", "TypeError", "ConfigurationError", "RuntimeError"})
_LOG_METHODS = frozenset({"debug", "info", "warning", "error", "exception", "critical"})


@dataclass(frozen=True)
class Mutant:
    """One change: the ``index``-th mutation point of ``module``, at ``line``."""

    module: str
    index: int
    line: int
    description: str


def _quiet_strings(tree: ast.Module) -> set[int]:
    """ids of string constants that are docstrings, exception messages or log text (never mutated)."""
    quiet: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                quiet.add(id(first.value))
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name in _MESSAGE_CALLS or name in _LOG_METHODS:
                args = node.args[1:] if name == "TokenVerificationError" else node.args
                for arg in args:
                    quiet.update(id(n) for n in ast.walk(arg))
        if isinstance(node, ast.JoinedStr):
            quiet.update(id(n) for n in ast.walk(node))
    return quiet


class _Mutator(ast.NodeTransformer):
    """Counts mutation points in source order; with ``target`` set, applies only that one."""

    def __init__(self, quiet: set[int], target: int | None = None) -> None:
        self.quiet = quiet
        self.target = target
        self.points: list[tuple[int, str]] = []

    def _point(self, node: ast.AST, description: str) -> bool:
        self.points.append((getattr(node, "lineno", 0), description))
        return len(self.points) - 1 == self.target

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        for i, op in enumerate(node.ops):
            swap = _COMPARE_SWAPS.get(type(op))
            if swap and self._point(node, f"{type(op).__name__} -> {swap.__name__}"):
                node.ops[i] = swap()
        return node

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        self.generic_visit(node)
        swap = ast.Or if isinstance(node.op, ast.And) else ast.And
        if self._point(node, f"{type(node.op).__name__} -> {swap.__name__}"):
            node.op = swap()
        return node

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Not) and self._point(node, "not x -> x"):
            return node.operand
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        swap = _BINOP_SWAPS.get(type(node.op))
        if swap and self._point(node, f"{type(node.op).__name__} -> {swap.__name__}"):
            node.op = swap()
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        value = node.value
        if isinstance(value, bool):
            if self._point(node, f"{value} -> {not value}"):
                return ast.copy_location(ast.Constant(not value), node)
        elif isinstance(value, (int, float)):
            if self._point(node, f"{value!r} -> {value + 1!r}"):
                return ast.copy_location(ast.Constant(value + 1), node)
        elif isinstance(value, str) and id(node) not in self.quiet and value:
            if self._point(node, f"{value[:30]!r} -> 'XX' + ..."):
                return ast.copy_location(ast.Constant("XX" + value), node)
        return node

    def visit_Continue(self, node: ast.Continue) -> ast.AST:
        if self._point(node, "continue -> break"):
            return ast.copy_location(ast.Break(), node)
        return node

    def visit_Break(self, node: ast.Break) -> ast.AST:
        if self._point(node, "break -> continue"):
            return ast.copy_location(ast.Continue(), node)
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        if node.value is not None:  # annotations are not behaviour
            node.value = self.visit(node.value)
        return node

    def visit_arg(self, node: ast.arg) -> ast.AST:
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.returns = None  # annotations are not behaviour (under __future__ annotations they are strings)
        return self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]


def _source(module: str) -> str:
    return (ROOT / PACKAGE / f"{module}.py").read_text()


def mutants(module: str) -> list[Mutant]:
    """Every mutation point of ``module``."""
    tree = ast.parse(_source(module))
    mutator = _Mutator(_quiet_strings(tree))
    mutator.visit(tree)
    return [Mutant(module, i, line, text) for i, (line, text) in enumerate(mutator.points)]


def mutated_source(mutant: Mutant) -> str:
    tree = ast.parse(_source(mutant.module))
    _Mutator(_quiet_strings(tree), mutant.index).visit(tree)
    return ast.unparse(ast.fix_missing_locations(tree))


def _copy_repo(into: Path) -> Path:
    skip = (".git", "__pycache__", ".mypy_cache", ".ruff_cache", ".hypothesis", ".coverage", "node_modules")
    shutil.copytree(ROOT, into, ignore=shutil.ignore_patterns(*skip), symlinks=True)
    node_modules = ROOT / "tests" / "conformance" / "node_modules"
    if node_modules.is_dir():  # Clerk's code for the conformance oracle: shared, never mutated
        (into / "tests" / "conformance" / "node_modules").symlink_to(node_modules)
    return into


def _run(copy: Path, mutant: Mutant, timeout: float) -> bool:
    """True when the mutant is killed (its module's tests fail or hang)."""
    target = copy / PACKAGE / f"{mutant.module}.py"
    original = target.read_text()
    target.write_text(mutated_source(mutant))
    try:
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *TESTS[mutant.module]]
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        result = subprocess.run(command, cwd=copy, capture_output=True, timeout=timeout, env=env, check=False)
        return result.returncode != 0
    except subprocess.TimeoutExpired:
        return True
    finally:
        target.write_text(original)


def _spread(items: list[Mutant], limit: int | None) -> list[Mutant]:
    """At most ``limit`` mutants, evenly spread over the module (all of them without a limit)."""
    if limit is None or len(items) <= limit:
        return items
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def _batches(copies: list[Path], work: list[Mutant]) -> Iterator[list[Mutant]]:
    for start in range(len(copies)):
        yield work[start :: len(copies)]


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # survivors show up as found
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", default=list(TESTS), help=f"of {', '.join(TESTS)} (default: all)")
    parser.add_argument("--limit", type=int, help="at most this many mutants per module, spread over it")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per mutant before it counts as killed")
    parser.add_argument("--workers", type=int, default=2, help="repository copies run in parallel")
    parser.add_argument("--only", help="comma-separated mutant indexes (of a single module) to run")
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    args = parser.parse_args()
    work = [m for module in args.modules for m in _spread(mutants(module), args.limit)]
    if args.only:
        wanted = {int(index) for index in args.only.split(",")}
        work = [m for m in work if m.index in wanted]
    if args.list:
        for m in work:
            print(f"{m.module}.py:{m.line}  #{m.index}  {m.description}")
        return 0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        copies = [_copy_repo(Path(tmp) / f"copy{i}") for i in range(max(1, args.workers))]
        killed: dict[Mutant, bool] = {}

        def run_batch(copy: Path, batch: list[Mutant]) -> None:
            for mutant in batch:
                killed[mutant] = _run(copy, mutant, args.timeout)
                if not killed[mutant]:
                    print(f"survived  {mutant.module}.py:{mutant.line}  #{mutant.index}  {mutant.description}")

        with ThreadPoolExecutor(len(copies)) as pool:
            list(pool.map(run_batch, copies, _batches(copies, work)))
    print(f"{len(work)} mutants in {time.monotonic() - started:.0f} s")
    for module in args.modules:
        ran = [m for m in work if m.module == module]
        dead = sum(killed[m] for m in ran)
        if ran:
            print(f"{module + '.py':<16} {dead}/{len(ran)} killed  {100 * dead / len(ran):5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
