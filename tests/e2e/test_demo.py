"""`make demo` end to end: every check in its summary holds."""

from pathlib import Path

import pytest

from localdev.demo import run_demo

pytestmark = pytest.mark.e2e


def test_demo_passes_every_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checks = run_demo(tmp_path, timeout=120)
    failed = [name for name, ok, _ in checks.results if not ok]
    assert failed == []
    assert len(checks.results) >= 9
    out = capsys.readouterr().out
    assert "container groups left in the emulator: 0" in out
