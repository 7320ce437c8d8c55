"""Build the deployment zip of this Python app exactly as `func azure functionapp publish` (remote build) does.

Azure Functions Core Tools (Azure/azure-functions-core-tools) builds a Python app's package in
`ZipHelper.GetAppZipFile` -> `PythonHelpers.GetPythonDeploymentPackage` -> `ZipHelper.CreateZip`, over the files of
`FileSystemHelpers.GetLocalFiles`, filtered by `.funcignore` through its own `GitIgnoreParser`. This module repeats
those rules, including where they differ from git's:

- `.git` and `.vscode` folders are skipped at any depth, and so are files named `.funcignore`, `.gitignore`,
  `local.settings.json` and `project.lock.json` (names compared case-insensitively), before `.funcignore` is read.
- A `.funcignore` pattern is anchored at the start of the path relative to the app folder and must end on a regex
  word boundary: `__pycache__` drops only the top-level folder (nested ones need `**/__pycache__`), `*.md` only
  top-level Markdown files, and `*` never crosses a `/` while `**` does. A `!` line re-includes what it matches.
- `requirements.txt` must exist (the remote build installs it); a `.python_packages` folder is deleted before the
  zip is made, so nothing under it is shipped.
- Entries use `/` separators and Unix permissions 0666.

Run `python -m infra.funcpack [--app DIR] [--out dist/acibatch.zip]` (what `make release` does).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

FUNCIGNORE = ".funcignore"
REQUIREMENTS = "requirements.txt"
# FileSystemHelpers.GetLocalFiles: skipped before .funcignore applies, compared case-insensitively.
ALWAYS_SKIPPED_DIRS = frozenset({".git", ".vscode"})
ALWAYS_SKIPPED_FILES = frozenset({".funcignore", ".gitignore", "local.settings.json", "project.lock.json"})
# PythonHelpers.GetPythonDeploymentPackage deletes this folder before a remote-build package is zipped.
PYTHON_PACKAGES = ".python_packages"
# ZipHelper.CreateZip: regular file, rw for everyone.
UNIX_READ_WRITE = 0o100666
ZIP_CREATED_BY_UNIX = 3

# GitIgnoreParser.PrepareRegexPattern escapes exactly these characters (`*` is translated, not escaped).
_ESCAPED = re.compile(r"[\-\[\]/{}()+?.\\^$|]")
_MATCH_NOTHING = re.compile(r"$^")


class PackageError(Exception):
    """The app folder cannot be packaged; the message says what to fix."""


def _pattern(line: str) -> str:
    escaped = _ESCAPED.sub(lambda match: "\\" + match.group(0), line)
    return escaped.replace("**", "(.+)").replace("*", "([^\\/]+)")


def _combined(patterns: list[str]) -> re.Pattern[str]:
    if not patterns:
        return _MATCH_NOTHING
    # The tool joins the sorted patterns into one ECMAScript regex; ASCII matches its \b.
    alternatives = ")|(".join(_pattern(pattern) for pattern in sorted(patterns))
    return re.compile(f"^(({alternatives}))\\b", re.ASCII)


@dataclass(frozen=True)
class FuncIgnore:
    """`.funcignore` with Core Tools' semantics (GitIgnoreParser), not git's."""

    positive: re.Pattern[str]
    negative: re.Pattern[str]

    @classmethod
    def parse(cls, text: str) -> FuncIgnore:
        positive: list[str] = []
        negative: list[str] = []
        for raw in text.split("\n"):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            target = positive
            if line.startswith("!"):
                target, line = negative, line[1:]
            target.append(line.removeprefix("/"))
        return cls(_combined(positive), _combined(negative))

    def accepts(self, relative_path: str) -> bool:
        return bool(self.negative.search(relative_path)) or not self.positive.search(relative_path)


def _walk(folder: Path) -> Iterator[Path]:
    # GetFiles: a folder's files first, then each subfolder; sorted here so the zip is reproducible.
    entries = sorted(folder.iterdir(), key=lambda path: path.name)
    for entry in entries:
        if entry.is_file() and entry.name.lower() not in ALWAYS_SKIPPED_FILES:
            yield entry
    for entry in entries:
        if entry.is_dir() and entry.name.lower() not in ALWAYS_SKIPPED_DIRS:
            yield from _walk(entry)


def package_files(app_dir: Path) -> list[str]:
    """The app-relative paths (with `/`) that the publish package holds, in zip order."""
    if not (app_dir / REQUIREMENTS).is_file():
        raise PackageError(f"{app_dir / REQUIREMENTS} is missing: a Python app needs one for the remote build")
    ignore_file = app_dir / FUNCIGNORE
    ignore = FuncIgnore.parse(ignore_file.read_text(encoding="utf-8") if ignore_file.is_file() else "")
    files = []
    for path in _walk(app_dir):
        relative = path.relative_to(app_dir).as_posix()
        if relative.split("/", 1)[0] == PYTHON_PACKAGES:
            continue
        if ignore.accepts(relative):
            files.append(relative)
    return files


def build(app_dir: Path, out: Path) -> list[str]:
    """Write the zip to `out` and return its entry names."""
    app_dir = app_dir.resolve()
    out = out.resolve()
    names = [name for name in package_files(app_dir) if (app_dir / name).resolve() != out]
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            info = zipfile.ZipInfo.from_file(app_dir / name, arcname=name)
            info.external_attr = UNIX_READ_WRITE << 16
            info.create_system = ZIP_CREATED_BY_UNIX
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, (app_dir / name).read_bytes())
    os.replace(partial, out)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build the Functions deployment zip like `func azure functionapp publish`."
    )
    parser.add_argument("--app", type=Path, default=Path("."), help="the app folder (with host.json)")
    parser.add_argument("--out", type=Path, default=Path("dist/acibatch.zip"), help="where to write the zip")
    args = parser.parse_args(argv)
    if not (args.app / "host.json").is_file():
        print(f"error: {args.app / 'host.json'} is missing: point --app at the Functions app folder", file=sys.stderr)
        return 2
    try:
        names = build(args.app, args.out)
    except PackageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    size = args.out.stat().st_size
    print(f"{args.out}: {len(names)} files, {size:,} bytes (remote build installs {REQUIREMENTS})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
