"""Layers import one way: dev tools -> Functions layers -> `acibatch/`. The contracts live in pyproject.toml
(`[tool.importlinter]`); this test runs them, checks `function_app.py` (a module, which import-linter cannot take as
a root), and checks that `.funcignore` keeps every dev tool out of the Azure package."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEV_TOOLS = ("localdev", "devhost", "aciemu", "localtools", "bench")


def test_import_contracts_are_kept() -> None:
    linter = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run([str(linter), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_function_app_imports_no_dev_tool() -> None:
    assert not imported_roots(ROOT / "function_app.py") & set(DEV_TOOLS)


def test_funcignore_keeps_dev_tools_out_of_the_package() -> None:
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".funcignore").read_text().splitlines()}
    assert set(DEV_TOOLS) <= ignored
