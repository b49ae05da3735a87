"""Logging as a library should: one warning per process, one meaning of ``route=``, nothing on stderr unasked
but configuration warnings (Python warnings when the app has not configured logging, so a newcomer sees them)."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_clerk_security import ClerkSecurity
from flask_clerk_security.testing import ClerkTestIssuer

ROOT = Path(__file__).resolve().parents[1]


def test_authorized_parties_warning_once_per_process(
    clerk_issuer: ClerkTestIssuer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flask_clerk_security import config_warnings

    monkeypatch.setattr(config_warnings, "_warned_keys", set())
    with caplog.at_level(logging.WARNING, logger="flask_clerk_security"):
        for _ in range(5):
            app = Flask("many")
            app.config.update(clerk_issuer.config)
            ClerkSecurity(app)
    assert [r.getMessage() for r in caplog.records].count(
        "CLERK_AUTHORIZED_PARTIES is not set: tokens minted for any origin of this Clerk instance are accepted. "
        "Set it to your frontend origins in production."
    ) == 1


def test_rate_limit_audit_record_route_is_the_path(
    clerk_issuer: ClerkTestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    app = Flask("limited")
    app.config.update(TESTING=True, **clerk_issuer.config)
    clerk = ClerkSecurity(app)

    @app.get("/items/<item_id>")
    @clerk.limiter.limit("1 per minute")
    def item(item_id: str) -> dict[str, str]:
        return {"id": item_id}

    client = app.test_client()
    headers = clerk_issuer.auth_header(user_id="user_route")
    with caplog.at_level(logging.INFO, logger="flask_clerk_security.audit"):
        assert client.get("/items/7", headers=headers).status_code == 200
        assert client.get("/items/7", headers=headers).status_code == 429
        assert client.get("/items/8").status_code == 401
    records: list[Any] = [r.clerk_audit for r in caplog.records if r.name == "flask_clerk_security.audit"]
    assert [(r["event"], r["route"]) for r in records] == [
        ("rate-limit-exceeded", "/items/7"),
        ("authentication-failed", "/items/8"),
    ]
    assert all("route=/items/" in r.getMessage() for r in caplog.records if r.name.endswith(".audit"))


def test_only_configuration_warnings_reach_stderr_unless_logging_is_configured(tmp_path: Path) -> None:
    program = textwrap.dedent(
        """
        import logging
        from flask import Flask
        from flask_clerk_security import ClerkSecurity
        from flask_clerk_security.testing import ClerkTestIssuer

        issuer = ClerkTestIssuer()
        app = Flask("quiet")
        app.config.update(TESTING=True, **issuer.config, CLERK_SIGNIN_URL="/typo")
        clerk = ClerkSecurity(app)           # warns: CLERK_AUTHORIZED_PARTIES unset, CLERK_SIGNIN_URL unknown

        @app.get("/api/x")
        @clerk.require(role="admin")
        def x():
            return {}

        client = app.test_client()
        assert client.get("/api/x").status_code == 401                                   # audit: INFO
        assert client.get("/api/x", headers=issuer.auth_header()).status_code == 403     # audit: WARNING
        assert logging.root.handlers == []
        package = logging.getLogger("flask_clerk_security")
        assert [type(h) for h in package.handlers] == [logging.NullHandler]
        assert logging.getLogger("flask_clerk_security.audit").handlers == []
        print("ran")
        """
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60, check=False
    )
    assert done.stdout == "ran\n", done.stderr
    warned = [line for line in done.stderr.splitlines() if "UserWarning: flask-clerk-security: " in line]
    assert len(warned) == 2, done.stderr
    assert "Did you mean CLERK_SIGN_IN_URL?" in warned[0] or "Did you mean CLERK_SIGN_IN_URL?" in warned[1]
    assert any("CLERK_AUTHORIZED_PARTIES is not set" in line for line in warned)
    assert "audit" not in done.stderr and "authorization-denied" not in done.stderr  # records stay unasked


def test_configured_logging_gets_the_warnings(tmp_path: Path) -> None:
    program = textwrap.dedent(
        """
        import logging
        logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
        from flask import Flask
        from flask_clerk_security import ClerkSecurity
        from flask_clerk_security.testing import ClerkTestIssuer

        issuer = ClerkTestIssuer()
        for _ in range(3):
            app = Flask("loud")
            app.config.update(TESTING=True, **issuer.config)
            ClerkSecurity(app)
        assert app.test_client().get("/nothing-here").status_code == 404
        """
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("CLERK_AUTHORIZED_PARTIES is not set") == 1
