"""``flask clerk check`` audits an app's Clerk configuration and its git repository, exits 1 on errors;
``flask clerk routes`` lists every endpoint with the protection it gets.

Each finding says how to fix it. Secrets are only ever shown masked (``sk_live_****abcd``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup, NoAppException, ScriptInfo
from werkzeug.routing import Rule

from . import __version__
from .clerk_keys import instance_type
from .config import load_settings, settings_warnings
from .config_values import split_list
from .config_warnings import CHANGED_AFTER_INIT_FIX, changed_keys, unknown_keys
from .errors import ConfigurationError
from .headers import frontend_api_source
from .protection import policy_of
from .secret_values import mask_secret
from .settings import ClerkSettings

clerk_cli = AppGroup("clerk", help="Clerk security tools.")
click.version_option(__version__, prog_name="flask-clerk-security")(clerk_cli)

WEBHOOK_BLUEPRINT = "clerk_webhooks"
_SECRET_IN_FILE = r"(sk_live_|sk_test_)[A-Za-z0-9]{16,}|whsec_[A-Za-z0-9+/=]{16,}"
_LEVELS = ("error", "warning", "ok")


@dataclass(frozen=True)
class Finding:
    """One result: ``level`` is ``error``, ``warning`` or ``ok``; ``fix`` says what to do."""

    level: str
    check: str
    message: str
    fix: str = ""


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str] | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        return subprocess.run(  # noqa: S603 - fixed git arguments, no shell
            [git, "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None


def check_settings(app: Flask, settings: ClerkSettings, csp: str | None) -> list[Finding]:
    """Findings about keys, debug mode, authorized parties, webhooks, rate limiting and the CSP."""
    found: list[Finding] = []
    live = bool(settings.secret_key and instance_type(settings.secret_key.reveal()) == "live")
    if settings.secret_key:
        found.append(Finding("ok", "keys", f"CLERK_SECRET_KEY is well-formed ({settings.secret_key.masked()})"))
    if not settings.publishable_key:
        found.append(
            Finding(
                "warning",
                "keys",
                "CLERK_PUBLISHABLE_KEY is unset: the CSP cannot name the Frontend API host",
                "set CLERK_PUBLISHABLE_KEY (pk_test_... / pk_live_...) from the Clerk Dashboard's API keys page",
            )
        )
    elif settings.secret_key and instance_type(settings.secret_key.reveal()) != instance_type(settings.publishable_key):
        found.append(
            Finding(
                "error",
                "keys",
                "CLERK_PUBLISHABLE_KEY and CLERK_SECRET_KEY belong to different instances",
                "take both keys from the same Clerk instance",
            )
        )
    else:
        found.append(Finding("ok", "keys", f"CLERK_PUBLISHABLE_KEY decodes to {settings.frontend_api}"))
    if live and app.debug:
        found.append(
            Finding(
                "error",
                "debug",
                "live keys are configured while app.debug is on",
                "turn debug off in production (FLASK_DEBUG=0), or use sk_test_/pk_test_ keys for development",
            )
        )
    if not settings.authorized_parties and not app.debug:
        found.append(
            Finding(
                "error" if live else "warning",
                "authorized-parties",
                "CLERK_AUTHORIZED_PARTIES is unset: tokens minted for any origin of this instance are accepted",
                "set CLERK_AUTHORIZED_PARTIES to your frontend origins, e.g. https://app.example.com",
            )
        )
    elif settings.authorized_parties:
        found.append(Finding("ok", "authorized-parties", ", ".join(settings.authorized_parties)))
    if WEBHOOK_BLUEPRINT in app.blueprints and not settings.webhook_secret:
        found.append(
            Finding(
                "error",
                "webhooks",
                "the webhook blueprint is registered but CLERK_WEBHOOK_SIGNING_SECRET is unset",
                "copy the endpoint's signing secret (whsec_...) from the Clerk Dashboard's Webhooks page",
            )
        )
    if settings.ratelimit_storage_uri.reveal().startswith("memory://"):
        found.append(
            Finding(
                "warning",
                "rate-limit",
                "rate limits are kept in memory: they do not hold across processes",
                "set CLERK_RATELIMIT_STORAGE_URI=redis://host:6379 when running several workers",
            )
        )
    found.extend(check_csp(settings, csp))
    return found


def _directives(policy: str) -> dict[str, list[str]]:
    parts = (part.split() for part in policy.split(";") if part.strip())
    return {words[0].lower(): words[1:] for words in parts}


def _allows(sources: list[str], origin: str) -> bool:
    """Whether a source list admits ``origin`` (exact, ``*.suffix`` wildcard, or a bare ``https:``)."""
    host = origin.split("://", 1)[1]
    for source in sources:
        bare = re.sub(r"^https://", "", source).rstrip("/")
        if source in ("https:", "*") or bare == host:
            return True
        if bare.startswith("*.") and host.endswith(bare[1:]):
            return True
    return False


def check_csp(settings: ClerkSettings, csp: str | None) -> list[Finding]:
    """The policy the app sends must let the browser load and call Clerk's Frontend API."""
    if csp is None:
        return [
            Finding(
                "warning",
                "csp",
                "security headers are off (CLERK_SECURITY_HEADERS=false)",
                "turn them on, or make sure your own CSP allows the Frontend API host",
            )
        ]
    if not csp:
        fix = "leave content_security_policy out of talisman_options to get the Clerk-aware CSP"
        return [Finding("warning", "csp", "no Content-Security-Policy is sent", fix)]
    found = []
    origin = frontend_api_source(settings)
    directives = _directives(csp)
    if origin:
        script = directives.get("script-src", directives.get("default-src", []))
        connect = directives.get("connect-src", directives.get("default-src", []))
        # Under 'strict-dynamic' hosts in script-src are ignored: the nonce'd loader script is what counts.
        missing = [
            name
            for name, sources in (("script-src", script), ("connect-src", connect))
            if not _allows(sources, origin) and not (name == "script-src" and "'strict-dynamic'" in sources)
        ]
        if missing:
            found.append(
                Finding(
                    "error",
                    "csp",
                    f"the CSP's {' and '.join(missing)} do not allow the Frontend API {origin}",
                    f"add {origin} to {' and '.join(missing)} (CLERK_CSP_DIRECTIVES) or drop the custom policy",
                )
            )
        else:
            found.append(Finding("ok", "csp", f"script-src and connect-src allow {origin}"))
    if settings.csp_report_only:
        found.append(
            Finding(
                "warning",
                "csp",
                "the CSP is report-only: violations are reported, not blocked",
                "set CLERK_CSP_REPORT_ONLY=false once the reports are clean",
            )
        )
    return found


def check_repository(root: Path, ignore: Iterable[str] = ()) -> list[Finding]:
    """``.env`` files must be git-ignored; no tracked file may hold a Clerk secret key or webhook secret.

    ``ignore``: glob patterns of repository-relative paths the secrets scan skips (test fixtures holding
    made-up keys); what they hide is counted, never silently dropped.
    """
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None or top.returncode != 0:
        return [Finding("warning", "repository", f"{root} is not in a git repository; repository checks skipped")]
    repo = Path(top.stdout.strip())
    found = []
    ignored = _git(repo, "check-ignore", "-q", ".env")
    if ignored is not None and ignored.returncode != 0:
        exists = (repo / ".env").exists()
        found.append(
            Finding(
                "error" if exists else "warning",
                "gitignore",
                ".gitignore does not cover .env" + (" and a .env file exists" if exists else ""),
                "add '.env' and '.env.*' to .gitignore (and 'git rm --cached .env' if it is tracked)",
            )
        )
    else:
        found.append(Finding("ok", "gitignore", ".env files are ignored"))
    grep = _git(repo, "grep", "-I", "-n", "-o", "-E", "-z", _SECRET_IN_FILE)
    leaks, ignored_paths = [], set()
    patterns = tuple(ignore)
    for line in grep.stdout.splitlines() if grep is not None and grep.returncode == 0 else []:
        path, number, match = [*line.split("\0"), "", ""][:3]
        if any(fnmatch(path, pattern) for pattern in patterns):
            ignored_paths.add(path)
            continue
        leaks.append(f"{path}:{number} {mask_secret(match)}")
    if leaks:
        shown = "; ".join(leaks[:5]) + (f"; and {len(leaks) - 5} more" if len(leaks) > 5 else "")
        found.append(
            Finding(
                "error",
                "secrets-in-git",
                f"tracked files contain Clerk secrets: {shown}",
                "rotate these keys in the Clerk Dashboard, remove them from the files and the git history",
            )
        )
    else:
        found.append(Finding("ok", "secrets-in-git", "no tracked file contains an sk_live_/sk_test_/whsec_ value"))
    if ignored_paths:
        shown = ", ".join(sorted(ignored_paths)[:5]) + (" ..." if len(ignored_paths) > 5 else "")
        found.append(Finding("ok", "secrets-in-git", f"ignored as asked: {len(ignored_paths)} file(s) ({shown})"))
    return found


def check_config_warnings(app: Flask, settings: ClerkSettings, at_init: Any) -> list[Finding]:
    """The warnings ``init_app`` gives (once per process, so perhaps not in this one) and the one the first
    request would give: ignored keys, keys changed after ``init_app``, settings that do nothing."""
    problems = [*unknown_keys(app.config), *settings_warnings(settings)]
    found = [Finding("warning", "config", problem.message, problem.fix) for problem in problems]
    for key in changed_keys(app.config, at_init) if at_init is not None else []:
        message = f"{key} changed in app.config after ClerkSecurity.init_app read it: no effect."
        found.append(Finding("warning", "config", message, CHANGED_AFTER_INIT_FIX))
    return found


def audit_app(app: Flask, root: Path, ignore: Iterable[str] = ()) -> list[Finding]:
    """Every finding for ``app`` and the repository around ``root`` (``ignore``: paths the secrets scan skips)."""
    state = app.extensions.get("clerk_security")
    if state is not None:
        settings: ClerkSettings = state.settings
        csp = state.content_security_policy if state.talisman is not None else None
        found = check_settings(app, settings, csp) + check_config_warnings(app, settings, state.config_at_init)
    else:
        found = [
            Finding(
                "error",
                "setup",
                "ClerkSecurity is not set up on this app",
                "call ClerkSecurity(app) or clerk.init_app(app) in the app factory",
            )
        ]
        try:
            found.extend(check_settings(app, load_settings(app.config, {}), None))
        except ConfigurationError as exc:
            message, _, fix = str(exc).partition(" Fix: ")
            found.append(Finding("error", "config", message, fix))
    return found + check_repository(root, [*ignore, *_configured_ignores(app.config)])


def _configured_ignores(config: Any) -> tuple[str, ...]:
    """``CLERK_CHECK_IGNORE`` from the app's config, else the environment: comma-separated or a JSON list."""
    value = config.get("CLERK_CHECK_IGNORE", os.environ.get("CLERK_CHECK_IGNORE"))
    try:
        return split_list(value)
    except ValueError:
        return ()


def _load_failure(exc: Exception, root: Path, ignore: Iterable[str]) -> list[Finding]:
    """The app did not load: the error as a finding with its fix, then the repository checks that need no app."""
    if isinstance(exc, ConfigurationError):
        message, _, fix = str(exc).partition(" Fix: ")
        found = [Finding("error", "config", f"the app failed to load: {message}", fix)]
    else:
        fix = "pass --app module:create_app (or set FLASK_APP) from the project's directory"
        found = [Finding("error", "setup", f"no app to check: {str(exc).splitlines()[0]}", fix)]
    return found + check_repository(root, [*ignore, *_configured_ignores({})])


def _table(findings: list[Finding]) -> str:
    width = max(len(finding.check) for finding in findings)
    lines = [f"{'LEVEL':<8} {'CHECK':<{width}}  FINDING"]
    for finding in findings:
        lines.append(f"{finding.level:<8} {finding.check:<{width}}  {finding.message}")
        if finding.fix and finding.level != "ok":
            lines.append(f"{'':<8} {'':<{width}}  fix: {finding.fix}")
    return "\n".join(lines)


@clerk_cli.command("check", with_appcontext=False)
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Where the git repository is (default: the app's root path).",
)
@click.option(
    "--ignore",
    "ignore",
    multiple=True,
    metavar="GLOB",
    help="Skip tracked paths matching GLOB in the secrets scan (repeatable; also CLERK_CHECK_IGNORE).",
)
@click.pass_obj
def check_command(info: ScriptInfo, as_json: bool, root: Path | None, ignore: tuple[str, ...]) -> None:
    """Audit configuration and the repository; exit 1 when there are errors.

    The app is loaded here rather than by Flask, so a configuration error raised while loading it is
    reported as a finding with its fix instead of a traceback.
    """
    try:
        app = info.load_app()
    except (ConfigurationError, NoAppException) as exc:
        findings = _load_failure(exc, root or Path.cwd(), ignore)
    else:
        with app.app_context():
            findings = audit_app(app, root or Path(app.root_path or os.getcwd()), ignore)
    findings.sort(key=lambda finding: _LEVELS.index(finding.level))
    counts = {level: sum(1 for finding in findings if finding.level == level) for level in _LEVELS}
    if as_json:
        click.echo(json.dumps({"findings": [asdict(f) for f in findings], **counts}, indent=2))
    else:
        click.echo(_table(findings))
        click.echo(f"\n{counts['error']} error(s), {counts['warning']} warning(s), {counts['ok']} ok")
    if counts["error"]:
        raise click.exceptions.Exit(1)


def protection(app: Flask, rule: Rule) -> dict[str, Any]:
    """How ``rule`` is protected: ``public``/``signed-in``, the ``require(...)`` options it carries (its
    blueprints', its View class's and its view's, and its View methods') and the token types it accepts.
    Public-route patterns are matched against the rule with its variables filled in."""
    state = app.extensions.get("clerk_security")
    endpoint = rule.endpoint
    view = app.view_functions.get(endpoint)
    methods: list[str | None] = [*sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})] or [None]
    policies = [policy_of(app, endpoint, view, method) for method in methods]
    requirements: list[dict[str, Any]] = []
    for policy in policies:
        requirements += [dict(r.options) for r in policy.requirements if dict(r.options) not in requirements]
    accepts = next((p.accepts for p in policies if p.accepts is not None), None)
    if accepts is None:
        accepts = state.settings.accepts_token if state is not None else "session_token"
    if endpoint == "static":
        access = "public (static files)"
    elif all(policy.public for policy in policies):
        access = "public"
    elif state is not None and state.public_routes and state.public_routes(_sample_path(rule.rule)):
        access = "public (CLERK_PUBLIC_ROUTES)"
    else:
        access = "signed-in"
    if requirements:
        access = "signed-in"  # require() checks the session on public routes too
    return {
        "access": access,
        "requires": requirements,
        "accepts_token": sorted(accepts) if isinstance(accepts, frozenset) else [accepts],
    }


def _sample_path(rule: str) -> str:
    """``/users/<int:id>`` as a request path: each variable becomes ``1``."""
    return re.sub(r"<[^>]*>", "1", rule)


def _describe(entry: dict[str, Any]) -> str:
    text = str(entry["access"])
    for options in entry["requires"]:
        text += " require(" + ", ".join(f"{name}={value!r}" for name, value in options.items()) + ")"
    return text


@clerk_cli.command("routes")
@click.option("--json", "as_json", is_flag=True, help="Print the routes as JSON.")
def routes_command(as_json: bool) -> None:
    """List every endpoint with its methods, URL rule and protection (default deny: signed-in unless public)."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    if "clerk_security" not in app.extensions:
        raise click.ClickException("ClerkSecurity is not set up on this app: call ClerkSecurity(app) first")
    rows = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: (rule.rule, rule.endpoint)):
        methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        rows.append({"endpoint": rule.endpoint, "methods": methods, "rule": rule.rule, **protection(app, rule)})
    if as_json:
        click.echo(json.dumps({"routes": rows}, indent=2))
        return
    table = [("ENDPOINT", "METHODS", "RULE", "ACCEPTS", "PROTECTION")]
    for row in rows:
        accepts = ",".join(row["accepts_token"])
        table.append((row["endpoint"], ",".join(row["methods"]), row["rule"], accepts, _describe(row)))
    widths = [max(len(line[column]) for line in table) for column in range(4)]
    for line in table:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + "  " + line[4])
