"""Output file patterns and Batch's blob naming, on a real directory tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from acibatch_agent.globbing import blob_name, find, unsafe_blob_name

FILES = ["a.txt", "b.csv", ".hidden.txt", "out/c.txt", "out/deep/d.txt", "out/.dot/e.txt", "out/x1.dat", "out/y2.dat"]


@pytest.fixture
def wd(tmp_path: Path) -> Path:
    for file in FILES:
        (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / file).write_text(file)
    return tmp_path


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("*.txt", ["a.txt"]),
        (".*.txt", [".hidden.txt"]),
        ("**/*.txt", ["a.txt", "out/c.txt", "out/deep/d.txt"]),
        ("out/**/*.txt", ["out/c.txt", "out/deep/d.txt"]),
        ("out/.dot/*", ["out/.dot/e.txt"]),
        ("out/?1.dat", ["out/x1.dat"]),
        ("out/[!x]*.dat", ["out/y2.dat"]),
        ("out/[a-x]1.dat", ["out/x1.dat"]),
        ("b.csv", ["b.csv"]),
        ("missing.txt", []),
        ("../*", []),
        ("**", ["a.txt", "b.csv", "out/c.txt", "out/deep/d.txt", "out/x1.dat", "out/y2.dat"]),  # all, no dotfiles
        ("out/**", ["out/c.txt", "out/deep/d.txt", "out/x1.dat", "out/y2.dat"]),
        ("out/.dot/**", ["out/.dot/e.txt"]),
    ],
)
def test_patterns_match_like_batch(wd: Path, pattern: str, expected: list[str]) -> None:
    assert list(find(str(wd), pattern)) == expected


def test_links_are_never_followed(wd: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    secret = tmp_path_factory.mktemp("secrets") / "manifest.json"
    secret.write_text("sig=secret")
    os.symlink(secret, wd / "leak.txt")
    os.symlink(secret.parent, wd / "out" / "linked")
    assert "leak.txt" not in list(find(str(wd), "*.txt"))
    assert list(find(str(wd), "leak.txt")) == []
    assert not [file for file in find(str(wd), "out/**/*") if "linked" in file]


@pytest.mark.parametrize(
    ("pattern", "path", "file", "name"),
    [
        ("b.csv", "results/summary.csv", "b.csv", "results/summary.csv"),  # no wildcard: path is the blob
        ("out/c.txt", "", "out/c.txt", "c.txt"),  # no path: the file's name at the root
        ("out/c.txt", "jobs/j/tasks/t/outputs/", "out/c.txt", "jobs/j/tasks/t/outputs/c.txt"),  # a directory
        ("out/**/*.txt", "res", "out/deep/d.txt", "res/deep/d.txt"),  # wildcards: path is a virtual directory
        ("**/*.txt", "", "out/deep/d.txt", "out/deep/d.txt"),
        ("*.txt", "jobs/j/tasks/t/outputs/", "a.txt", "jobs/j/tasks/t/outputs/a.txt"),
        ("out/**", "res", "out/deep/d.txt", "res/deep/d.txt"),
    ],
)
def test_blob_names_follow_batch(pattern: str, path: str, file: str, name: str) -> None:
    assert blob_name(pattern, path, file) == name


@pytest.mark.parametrize(
    "name",
    [
        "jobs/j/tasks/t/outputs/..\\..\\inputs\\set\\data.csv",  # a backslash is read as `/`: `..` segments
        "jobs/j/tasks/t/outputs/../x",
        "jobs/j/tasks/t/outputs/./x",
        "jobs/j/tasks/t/outputs/a//b",
        "jobs/j/tasks/t/outputs/a\\\\b",
        "/x",
        "jobs/j/tasks/t/outputs/report.",
        "jobs/j/tasks/t/outputs/v1./x",
    ],
)
def test_blob_names_the_service_would_rewrite_are_named(name: str) -> None:
    assert unsafe_blob_name(name) is not None


@pytest.mark.parametrize("name", ["jobs/j/tasks/t/outputs/a.b/c.txt", "x/.hidden", "a\\b.txt", "x/..a"])
def test_ordinary_blob_names_pass(name: str) -> None:
    assert unsafe_blob_name(name) is None
