"""``flask clerk check``: findings, table and --json output, exit status, never a secret in full."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flask import Blueprint, Flask
from flask.cli import ScriptInfo

from flask_clerk_security import ClerkSecurity
from flask_clerk_security.cli import clerk_cli
from flask_clerk_security.testing import ClerkTestIssuer

REPO_ROOT = Path(__file__).resolve().parents[1]


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A clean git repository: .env ignored, nothing secret tracked."""
    git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text(".env\n.env.*\n")
    (tmp_path / "app.py").write_text("import os\nSECRET = os.environ['CLERK_SECRET_KEY']\n")
    git(tmp_path, "add", ".")
    return tmp_path


def make_app(issuer: ClerkTestIssuer, **config: Any) -> Flask:
    app = Flask("checked_app")
    app.config.update(
        CLERK_SECRET_KEY=issuer.secret_key,
        CLERK_JWT_KEY=issuer.public_pem,
        CLERK_PUBLISHABLE_KEY=issuer.publishable_key,
        CLERK_AUTHORIZED_PARTIES="https://app.example.com",
        CLERK_RATELIMIT_STORAGE_URI="redis://127.0.0.1:6379",
    )
    app.config.update(config)
    ClerkSecurity(app)
    return app


def run_check(app: Flask, root: Path, *args: str) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(clerk_cli, ["check", "--root", str(root), *args])
    return result.exit_code, result.output


def findings(app: Flask, root: Path) -> tuple[int, dict[str, list[dict[str, str]]]]:
    code, output = run_check(app, root, "--json")
    data = json.loads(output)
    by_check: dict[str, list[dict[str, str]]] = {}
    for finding in data["findings"]:
        by_check.setdefault(finding["check"], []).append(finding)
    return code, by_check


def levels(by_check: dict[str, list[dict[str, str]]], check: str) -> list[str]:
    return [finding["level"] for finding in by_check.get(check, [])]


def test_clean_app_passes(clerk_issuer: ClerkTestIssuer, repo: Path) -> None:
    app = make_app(clerk_issuer)
    code, output = run_check(app, repo)
    assert code == 0, output
    assert output.splitlines()[0].split() == ["LEVEL", "CHECK", "FINDING"]
    assert "0 error(s), 0 warning(s)" in output
    assert f"script-src and connect-src allow https://{clerk_issuer.frontend_api}" in output
    assert clerk_issuer.secret_key not in output and clerk_issuer.secret_key[8:] not in output


def test_live_keys_with_debug_and_no_authorized_parties(
    clerk_issuer: ClerkTestIssuer, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = ClerkTestIssuer(instance="live", private_key=clerk_issuer.private_key)
    app = make_app(live, CLERK_AUTHORIZED_PARTIES="")
    monkeypatch.setenv("FLASK_DEBUG", "1")  # what `flask --debug clerk check` sets
    code, by_check = findings(app, repo)
    assert code == 1
    assert levels(by_check, "debug") == ["error"]
    assert "fix" in by_check["debug"][0] and by_check["debug"][0]["fix"]
    monkeypatch.setenv("FLASK_DEBUG", "0")
    code, by_check = findings(app, repo)
    assert code == 1 and levels(by_check, "authorized-parties") == ["error"]
    test_app = make_app(clerk_issuer, CLERK_AUTHORIZED_PARTIES="")
    assert levels(findings(test_app, repo)[1], "authorized-parties") == ["warning"]


def test_webhook_blueprint_without_secret(clerk_issuer: ClerkTestIssuer, repo: Path) -> None:
    app = make_app(clerk_issuer)
    app.register_blueprint(Blueprint("clerk_webhooks", __name__))
    code, by_check = findings(app, repo)
    assert code == 1 and levels(by_check, "webhooks") == ["error"]
    app = make_app(clerk_issuer, CLERK_WEBHOOK_SECRET="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    app.register_blueprint(Blueprint("clerk_webhooks", __name__))
    assert levels(findings(app, repo)[1], "webhooks") == []


def test_memory_rate_limit_storage_warns(clerk_issuer: ClerkTestIssuer, repo: Path) -> None:
    code, by_check = findings(make_app(clerk_issuer, CLERK_RATELIMIT_STORAGE_URI="memory://"), repo)
    assert code == 0 and levels(by_check, "rate-limit") == ["warning"]


def test_csp_without_frontend_api_host(clerk_issuer: ClerkTestIssuer, repo: Path) -> None:
    app = Flask("custom_csp")
    app.config.update(CLERK_AUTHORIZED_PARTIES="https://a.example", **clerk_issuer.config)
    ClerkSecurity(app, talisman_options={"content_security_policy": {"default-src": "'self'"}})
    code, by_check = findings(app, repo)
    assert code == 1
    [finding] = by_check["csp"]
    assert finding["level"] == "error" and "script-src and connect-src" in finding["message"]
    wildcard = Flask("wildcard_csp")
    wildcard.config.update(CLERK_AUTHORIZED_PARTIES="https://a.example", **clerk_issuer.config)
    policy = {"default-src": "'self'", "script-src": "https://*.example.test", "connect-src": "https:"}
    ClerkSecurity(wildcard, talisman_options={"content_security_policy": policy})
    assert levels(findings(wildcard, repo)[1], "csp") == ["ok"]


def test_configuration_warnings_are_findings(
    clerk_issuer: ClerkTestIssuer, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The warnings init_app logs go to the package logger, which only has a NullHandler: an app that has not
    configured logging never shows them. The check reports each one, with its fix."""
    monkeypatch.setenv("CLERK_SATELITE_AUTO_SYNC", "true")  # a near miss in the environment
    app = make_app(clerk_issuer, CLERK_SIGNIN_URL="/sign-in", CLERK_SATELLITE_AUTO_SYNC=True)
    app.config["CLERK_SIGN_IN_URL"] = "/login"  # set after init_app read the configuration: no effect
    code, by_check = findings(app, repo)
    assert code == 0
    config = {finding["message"]: finding for finding in by_check["config"]}
    assert all(finding["level"] == "warning" for finding in config.values())
    signin = config["CLERK_SIGNIN_URL in app.config is not a flask-clerk-security setting and is ignored."]
    assert signin["fix"] == "rename it to CLERK_SIGN_IN_URL"
    near = config["CLERK_SATELITE_AUTO_SYNC in the environment is not a flask-clerk-security setting and is ignored."]
    assert near["fix"] == "rename it to CLERK_SATELLITE_AUTO_SYNC"
    changed = config["CLERK_SIGN_IN_URL changed in app.config after ClerkSecurity.init_app read it: no effect."]
    assert "before ClerkSecurity(app) / clerk.init_app(app)" in changed["fix"]
    auto = config["CLERK_SATELLITE_AUTO_SYNC is on but CLERK_IS_SATELLITE is not: it has no effect."]
    assert "CLERK_IS_SATELLITE" in auto["fix"]


def test_repository_checks(clerk_issuer: ClerkTestIssuer, repo: Path) -> None:
    app = make_app(clerk_issuer)
    (repo / ".gitignore").write_text("*.pyc\n")
    (repo / ".env").write_text(f"CLERK_SECRET_KEY={clerk_issuer.secret_key}\n")
    leaked = "sk_live_" + "Zx9" * 10
    (repo / "settings.py").write_text(f'WEBHOOK = "whsec_{"A" * 32}"\nKEY = "{leaked}"\n')
    git(repo, "add", "settings.py")
    code, output = run_check(app, repo)
    assert code == 1
    assert "gitignore" in output and ".gitignore does not cover .env and a .env file exists" in output
    assert "settings.py:1 whsec_****AAAA" in output and "settings.py:2 sk_live_****9Zx9" in output
    assert leaked not in output and "A" * 32 not in output and clerk_issuer.secret_key[8:] not in output
    assert "fix: rotate these keys" in output


def test_not_a_git_repository(clerk_issuer: ClerkTestIssuer, tmp_path: Path) -> None:
    code, by_check = findings(make_app(clerk_issuer), tmp_path)
    assert code == 0 and levels(by_check, "repository") == ["warning"]


def test_app_without_the_extension(clerk_issuer: ClerkTestIssuer, repo: Path) -> None:
    app = Flask("bare")
    app.config.update(CLERK_SECRET_KEY="sk_test_short!")
    code, by_check = findings(app, repo)
    assert code == 1
    assert levels(by_check, "setup") == ["error"]
    [config] = by_check["config"]
    assert "CLERK_SECRET_KEY is malformed" in config["message"] and "Clerk Dashboard" in config["fix"]


def test_flask_command_entry_point(clerk_issuer: ClerkTestIssuer, repo: Path, tmp_path: Path) -> None:
    """The real ``flask clerk check`` through the ``flask.commands`` entry point, in a subprocess."""
    (tmp_path / "checked.py").write_text(
        "from flask import Flask\nfrom flask_clerk_security import ClerkSecurity\n"
        "app = Flask(__name__)\napp.config.from_prefixed_env()\nClerkSecurity(app)\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(tmp_path)]),
        "FLASK_CLERK_SECRET_KEY": clerk_issuer.secret_key,
        "FLASK_CLERK_PUBLISHABLE_KEY": clerk_issuer.publishable_key,
    }
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "checked", "clerk", "check", "--root", str(repo), "--json"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["error"] == 0 and data["warning"] == 2  # authorized parties unset, memory rate limits
    assert clerk_issuer.secret_key not in result.stdout + result.stderr


def test_configuration_error_while_loading_is_a_finding(clerk_issuer: ClerkTestIssuer, repo: Path) -> None:
    """The app factory raises ConfigurationError: one finding with the fix, no traceback, exit 1."""

    def create_app() -> Flask:
        return make_app(clerk_issuer, CLERK_SECRET_KEY="sk_live_not a key")

    runner = Flask("runner").test_cli_runner()
    result = runner.invoke(clerk_cli, ["check", "--root", str(repo)], obj=ScriptInfo(create_app=create_app))
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert "error    config" in result.output
    assert "the app failed to load: CLERK_SECRET_KEY is malformed" in result.output
    assert "fix: copy the secret key" in result.output
    assert "not a key" not in result.output
    assert "secrets-in-git" in result.output  # the repository is still checked

    result = runner.invoke(clerk_cli, ["check", "--root", str(repo), "--json"], obj=ScriptInfo(create_app=create_app))
    data = json.loads(result.output)
    assert data["error"] == 1 and data["findings"][0]["check"] == "config" and data["findings"][0]["fix"]


def test_no_app_to_load_is_a_finding(repo: Path, tmp_path: Path) -> None:
    result = (
        Flask("runner")
        .test_cli_runner()
        .invoke(clerk_cli, ["check", "--root", str(repo)], obj=ScriptInfo(app_import_path="no_such_module_here"))
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "no app to check: Could not import 'no_such_module_here'" in result.output
    assert "fix: pass --app" in result.output


def test_secrets_scan_ignores_paths(clerk_issuer: ClerkTestIssuer, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Test fixtures with made-up keys: ``--ignore GLOB`` (repeatable) or CLERK_CHECK_IGNORE skip them, counted."""
    (repo / "tests").mkdir()
    (repo / "tests" / "test_keys.py").write_text(f'KEY = "sk_test_{"Q" * 24}"\n')
    (repo / "bench.py").write_text(f'SECRET = "whsec_{"B" * 32}"\n')
    git(repo, "add", ".")
    app = make_app(clerk_issuer)
    assert levels(findings(app, repo)[1], "secrets-in-git") == ["error"]

    code, output = run_check(app, repo, "--ignore", "tests/*", "--ignore", "bench.py")
    assert code == 0, output
    assert "ignored as asked: 2 file(s) (bench.py, tests/test_keys.py)" in output
    code, output = run_check(app, repo, "--ignore", "tests/*")
    assert code == 1 and "bench.py:1 whsec_****BBBB" in output
    assert "tests/test_keys.py" not in output.split("ignored as asked")[0]

    configured = make_app(clerk_issuer, CLERK_CHECK_IGNORE="tests/*, bench.py")
    assert findings(configured, repo)[0] == 0
    monkeypatch.setenv("CLERK_CHECK_IGNORE", '["tests/*", "bench.py"]')
    assert findings(app, repo)[0] == 0


def routes_of(app: Flask) -> dict[str, dict[str, Any]]:
    result = app.test_cli_runner().invoke(clerk_cli, ["routes", "--json"])
    assert result.exit_code == 0, result.output
    return {row["endpoint"]: row for row in json.loads(result.output)["routes"]}


def test_routes_lists_every_endpoint_and_its_protection(clerk_issuer: ClerkTestIssuer) -> None:
    app = Flask("routed")
    app.config.update(CLERK_WEBHOOK_SECRET=clerk_issuer.webhook_secret, **clerk_issuer.config)
    clerk = ClerkSecurity(app, public_routes=["/docs/:page"])

    @app.get("/api/me")
    def me() -> str:
        return "me"

    @app.route("/health", methods=["GET", "POST"])
    @clerk.public
    def health() -> str:
        return "ok"

    @app.get("/docs/<int:page>")
    def docs(page: int) -> str:
        return str(page)

    @app.post("/api/admin")
    @clerk.require(role="admin")
    @clerk.require(reverification="strict")
    def admin() -> str:
        return "admin"

    @app.get("/api/reports")
    @clerk.require(accepts_token=["api_key", "m2m_token"], scopes=["reports:read"])
    def reports() -> str:
        return "reports"

    @app.get("/api/profile")
    @clerk.require
    async def profile() -> str:
        return "profile"

    app.register_blueprint(clerk.webhooks)
    rows = routes_of(app)
    assert set(rows) == {"me", "health", "docs", "admin", "reports", "profile", "static", "clerk_webhooks.receive"}
    assert rows["me"] == {
        "endpoint": "me", "methods": ["GET"], "rule": "/api/me", "access": "signed-in", "requires": [],
        "accepts_token": ["session_token"],
    }  # fmt: skip
    assert rows["health"]["access"] == "public" and rows["health"]["methods"] == ["GET", "POST"]
    assert rows["docs"]["access"] == "public (CLERK_PUBLIC_ROUTES)"
    assert rows["admin"]["requires"] == [{"reverification": "strict"}, {"role": "admin"}]
    assert rows["reports"]["requires"] == [{"accepts_token": ["api_key", "m2m_token"], "scopes": ["reports:read"]}]
    assert rows["reports"]["accepts_token"] == ["api_key", "m2m_token"]
    assert rows["profile"] == {**rows["profile"], "access": "signed-in", "requires": [{}]}
    assert rows["clerk_webhooks.receive"]["access"] == "public"
    assert rows["clerk_webhooks.receive"]["methods"] == ["POST"]
    assert rows["static"]["access"] == "public (static files)"

    result = app.test_cli_runner().invoke(clerk_cli, ["routes"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["ENDPOINT", "METHODS", "RULE", "ACCEPTS", "PROTECTION"]
    [admin_line] = [line for line in lines if line.startswith("admin ")]
    assert admin_line.split()[1:4] == ["POST", "/api/admin", "session_token"]
    assert admin_line.endswith("signed-in require(reverification='strict') require(role='admin')")
    [reports_line] = [line for line in lines if line.startswith("reports ")]
    assert "api_key,m2m_token" in reports_line and "require(accepts_token=['api_key', 'm2m_token']" in reports_line


def test_routes_public_route_made_signed_in_by_require(clerk_issuer: ClerkTestIssuer) -> None:
    """``require`` on a public view still asks for a session (documented in authorization.md)."""
    app = Flask("routed")
    app.config.update(clerk_issuer.config)
    clerk = ClerkSecurity(app, public_routes=["/open"])
    app.get("/open")(clerk.require(permission="org:x:read")(lambda: "x"))
    row = routes_of(app)["<lambda>"]
    assert row["access"] == "signed-in" and row["requires"] == [{"permission": "org:x:read"}]
    client = app.test_client()
    assert client.get("/open").status_code == 401


def test_routes_without_the_extension() -> None:
    result = Flask("bare").test_cli_runner().invoke(clerk_cli, ["routes"])
    assert result.exit_code == 1 and "ClerkSecurity is not set up" in result.output
