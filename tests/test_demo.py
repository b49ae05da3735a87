"""The offline demo (the README's first command) passes every step."""

from __future__ import annotations

import pytest

from flask_clerk_security import demo


def test_demo_passes_every_step(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main() == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out
    assert f"{len(demo.STEPS)} passed, 0 failed" in out


def test_demo_reports_a_misbehaving_step(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_: demo.Demo) -> str:
        raise demo.DemoFailure("expected 401, got 200")

    monkeypatch.setattr(demo, "STEPS", [*demo.STEPS, ("a broken protection", broken)])
    assert demo.main() == 1
    assert "FAIL  a broken protection: expected 401, got 200" in capsys.readouterr().out
