"""`make demo` end to end: every check in its summary holds, with blob storage (tenant gamma's files job) and
without (gamma skipped, saying why)."""

from pathlib import Path

import pytest

from localdev.demo import run_demo
from localtools.azurite import find_azurite
from tests.conftest import AZURITE_MISSING

pytestmark = pytest.mark.e2e


def test_demo_passes_every_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if find_azurite() is None:
        pytest.skip(AZURITE_MISSING)
    checks = run_demo(tmp_path, timeout=120)
    failed = [name for name, ok, _ in checks.results if not ok]
    assert failed == []
    assert len(checks.results) >= 9
    gamma = [name for name, _, _ in checks.results if name.startswith("gamma")]
    assert (
        "gamma: the merged word counts are right (stop words from the httpUrl input left out)" in gamma
        and len(gamma) >= 6
    )
    out = capsys.readouterr().out
    assert "container groups left in the emulator: 0" in out


def test_demo_without_storage_skips_gamma_and_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checks = run_demo(tmp_path, timeout=120, storage=False)
    failed = [name for name, ok, _ in checks.results if not ok]
    assert failed == []
    assert not [name for name, _, _ in checks.results if name.startswith("gamma")]
    out = capsys.readouterr().out
    assert "skipping tenant gamma (input and output files in blob storage): storage is off (--no-storage)" in out
    assert "container groups left in the emulator: 0" in out
