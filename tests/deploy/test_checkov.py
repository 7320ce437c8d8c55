"""checkov's Bicep scan of infra/ finds nothing that is not suppressed in the template with its reason.

checkov is installed in its own virtual environment (`make test` creates .venv/tools/checkov from
infra/requirements-checkov.txt): it pins packaging<24, which pytest 9 cannot run with. It runs with
--skip-download, so the scan needs no network; offline it has no severities (those come from the Prisma Cloud
API), so every finding counts, not only high ones, and the only way past one is an inline
`// checkov:skip=ID:reason` that docs/deploy.md lists too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.bicep import INFRA, ROOT

CHECKOV = Path(os.environ.get("ACIBATCH_CHECKOV", ROOT / ".venv" / "tools" / "checkov" / "bin" / "checkov"))
INSTALL_HINT = (
    "run `make test` (it installs checkov into .venv/tools/checkov), or: python3 -m venv .venv/tools/checkov && "
    ".venv/tools/checkov/bin/pip install -r infra/requirements-checkov.txt"
)


def scan(folder: Path) -> tuple[dict[str, Any], float]:
    if not CHECKOV.exists():
        pytest.fail(f"checkov is not installed at {CHECKOV}: {INSTALL_HINT}")
    started = time.monotonic()
    result = subprocess.run(
        [str(CHECKOV), "-d", str(folder), "--framework", "bicep", "--skip-download", "--compact", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    elapsed = time.monotonic() - started
    # 0: nothing failed, 1: some check failed; anything else is checkov itself failing.
    assert result.returncode in (0, 1), f"checkov exited {result.returncode}: {result.stderr[-2000:]}"
    report = json.loads(result.stdout)
    assert isinstance(report, dict), "one framework was scanned, so checkov answers one report"
    return report, elapsed


@pytest.fixture(scope="module")
def infra_report() -> dict[str, Any]:
    report, _ = scan(INFRA)
    return report


def test_every_bicep_file_parses_with_checkovs_parser(infra_report: dict[str, Any]) -> None:
    summary = infra_report["summary"]
    # checkov pins an older pycep than the tests use; a file it cannot parse would silently go unscanned.
    assert summary["parsing_errors"] == 0, infra_report["results"].get("parsing_errors")
    scanned = {
        Path(check["file_path"]).name
        for kind in ("passed_checks", "skipped_checks")
        for check in infra_report["results"][kind]
    }
    assert {"functionapp.bicep", "storage.bicep", "keyvault.bicep", "registry.bicep"} <= scanned


def test_checkov_finds_nothing_unsuppressed(infra_report: dict[str, Any]) -> None:
    failed = [
        f"{check['check_id']} {check['check_name']} on {check['resource']} ({check['file_path']})"
        for check in infra_report["results"]["failed_checks"]
    ]
    assert not failed, (
        "checkov findings (fix them, or suppress inline with the reason and list them in docs/deploy.md):\n"
        + "\n".join(failed)
    )


def test_every_suppression_has_a_reason_documented_in_docs(infra_report: dict[str, Any]) -> None:
    docs = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"CKV2?_AZURE_\d+", docs))
    for check in infra_report["results"]["skipped_checks"]:
        reason = (check.get("check_result") or {}).get("suppress_comment", "").strip()
        assert len(reason) > 20, f"{check['check_id']} on {check['resource']} is suppressed without a reason"
        assert check["check_id"] in documented, f"{check['check_id']} is suppressed but docs/deploy.md does not list it"


def test_the_scan_does_fail_on_a_finding(tmp_path: Path) -> None:
    # The storage module with shared keys turned back on: checkov must report it, so a pass above means something.
    shutil.copy(INFRA / "modules" / "storage.bicep", tmp_path / "storage.bicep")
    text = (tmp_path / "storage.bicep").read_text(encoding="utf-8")
    (tmp_path / "storage.bicep").write_text(
        text.replace("allowSharedKeyAccess: false", "allowSharedKeyAccess: true").replace(
            "minimumTlsVersion: 'TLS1_2'", "minimumTlsVersion: 'TLS1_0'"
        ),
        encoding="utf-8",
    )
    report, _ = scan(tmp_path)
    failed = {check["check_id"] for check in report["results"]["failed_checks"]}
    assert "CKV_AZURE_44" in failed, failed  # storage accounts use at least TLS 1.2
