"""The app settings acibatch/settings.py reads, found in its source rather than kept as a second list.

Every read in settings.py names its setting as a string literal: the first argument of a call (`get("X")`,
`required("X", ...)`, `number("X", ...)`, `source.get("X")`, `os.environ.get("X")`) or a subscript
(`os.environ["X"]`). A setting added there in any of these forms is found here, so the template test fails until
the setting has an entry in infra/modules/functionapp.bicep.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SETTINGS_PY = Path(__file__).resolve().parents[2] / "acibatch" / "settings.py"
SETTING_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")


def _literal_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and SETTING_NAME.fullmatch(node.value):
        return node.value
    return None


def names_read_by_settings(source: str | None = None) -> set[str]:
    tree = ast.parse(SETTINGS_PY.read_text(encoding="utf-8") if source is None else source)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            name = _literal_name(node.args[0])
        elif isinstance(node, ast.Subscript):
            name = _literal_name(node.slice)
        else:
            continue
        if name is not None:
            names.add(name)
    return names
