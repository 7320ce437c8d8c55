"""`make release` builds the zip `func azure functionapp publish` would: the app, no dev tools, and an app that
indexes under the Python worker's rules with nothing but what requirements.txt installs."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from infra import funcpack
from tests.deploy.bicep import ROOT

FUNCIGNORE = (ROOT / ".funcignore").read_text(encoding="utf-8")
APP_LAYERS = ("acibatch/", "api/", "orchestrators/", "activities/", "entities/")
DEV_TOOLS = (
    "devhost/",
    "aciemu/",
    "localtools/",
    "tests/",
    "bench/",
    "examples/",
    "infra/",
    "docs/",
    ".venv/",
    "dist/",
)
# Never shipped: local secrets (local.settings.json, azd's environment with its generated keys under .azure/).
SECRET_PLACES = ("local.settings.json", ".azure/")


@pytest.fixture(scope="module")
def release_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("release") / "acibatch.zip"
    funcpack.build(ROOT, out)
    return out


def test_the_zip_holds_the_app_and_its_requirements(release_zip: Path) -> None:
    with zipfile.ZipFile(release_zip) as archive:
        names = archive.namelist()
        infos = archive.infolist()
    assert {"function_app.py", "host.json", "requirements.txt"} <= set(names)
    for layer in APP_LAYERS:
        assert f"{layer}__init__.py" in names, f"the zip lacks {layer}"
    # Every Python file of the app's packages is shipped.
    for layer in APP_LAYERS:
        for path in (ROOT / layer).glob("*.py"):
            assert path.relative_to(ROOT).as_posix() in names
    assert all(info.external_attr >> 16 == funcpack.UNIX_READ_WRITE for info in infos)
    assert all(info.create_system == funcpack.ZIP_CREATED_BY_UNIX for info in infos)


def test_the_zip_holds_no_dev_tools_caches_or_secrets(release_zip: Path) -> None:
    with zipfile.ZipFile(release_zip) as archive:
        names = archive.namelist()
    leaked = [n for n in names if n.startswith(DEV_TOOLS) or any(place in n for place in SECRET_PLACES)]
    assert not leaked, f"dev tools or secrets in the package: {leaked[:10]}"
    assert not [n for n in names if "__pycache__/" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.startswith((".", "pyproject.toml", "azure.yaml", "Makefile"))]


def make_app(root: Path, files: list[str], funcignore: str = FUNCIGNORE) -> Path:
    for name in [*files, "requirements.txt", "host.json"]:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x", encoding="utf-8")
    (root / ".funcignore").write_text(funcignore, encoding="utf-8")
    return root


def test_the_projects_funcignore_keeps_out_what_must_not_ship(tmp_path: Path) -> None:
    planted = [
        ".azure/dev/config.json",  # azd keeps the generated keys here
        ".azure/dev/.env",
        "acibatch/__pycache__/spec.cpython-311.pyc",
        "__pycache__/function_app.cpython-311.pyc",
        "acibatch.egg-info/PKG-INFO",
        ".coverage",
        ".hypothesis/examples/x",
        "dist/acibatch.zip",
        "infra/main.bicep",
        "docs/deploy.md",
        "README.md",
        "pyproject.toml",
        "azure.yaml",
        "tests/test_x.py",
        "devhost/host.py",
        ".python_packages/lib/site-packages/x.py",
        "api/local.settings.json",
        "api/.git/config",
        ".vscode/settings.json",
    ]
    kept = ["function_app.py", "acibatch/spec.py", "api/jobs.py", "ui/index.html"]
    files = funcpack.package_files(make_app(tmp_path, planted + kept))
    assert sorted(files) == sorted([*kept, "host.json", "requirements.txt"])


def test_funcignore_follows_core_tools_not_git() -> None:
    # Azure/azure-functions-core-tools src/Cli/func/Common/GitIgnoreParser.cs: patterns anchored at the start of
    # the app-relative path, ending on a word boundary; `*` stays inside one folder, `**` crosses folders.
    ignore = funcpack.FuncIgnore.parse("__pycache__\n*.md\ndocs/\n!docs/keep.md\nbuild/**/out\n")
    assert not ignore.accepts("__pycache__/x.pyc")
    assert ignore.accepts("acibatch/__pycache__/x.pyc")  # git would drop it; Core Tools ships it
    assert not ignore.accepts("README.md")
    assert ignore.accepts("api/README.md")
    assert not ignore.accepts("docs/deploy.md")
    assert ignore.accepts("docs/keep.md")
    assert not ignore.accepts("build/a/b/out")
    # The boundary after `docs/` needs a word character next: a dot file right under it is not matched.
    assert ignore.accepts("docs/.hidden")


def test_a_python_app_without_requirements_is_refused(tmp_path: Path) -> None:
    app = make_app(tmp_path, ["function_app.py"])
    (app / "requirements.txt").unlink()
    with pytest.raises(funcpack.PackageError, match=r"requirements\.txt is missing"):
        funcpack.package_files(app)


INDEX_SCRIPT = r"""
import importlib, importlib.util, json, sys
app_dir, rules_path, site_packages = sys.argv[1:4]
sys.path[:0] = [app_dir, site_packages]
spec = importlib.util.spec_from_file_location("workerrules", rules_path)
rules = importlib.util.module_from_spec(spec)
sys.modules["workerrules"] = rules
spec.loader.exec_module(rules)
import azure.functions as func
module = importlib.import_module("function_app")
apps = [value for value in vars(module).values() if isinstance(value, func.FunctionRegister)]
assert len(apps) == 1, f"function_app.py defines {len(apps)} function apps"
functions = apps[0].get_functions()
for function in functions:
    rules.check_function(function)
loaded = sorted({m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None)})
print(json.dumps({"functions": sorted(f.get_function_name() for f in functions), "loaded": loaded}))
"""


def index(app_dir: Path) -> dict[str, list[str]]:
    """Import the app as Azure's worker would find it and check every function with devhost.workerrules.

    `-S -s -E`: no site-packages .pth files (this project's editable install would make devhost, aciemu and
    localtools importable from anywhere) and no PYTHON* variables; site-packages is put on the path by hand."""
    site_packages = sysconfig.get_paths()["purelib"]
    result = subprocess.run(
        [
            sys.executable,
            "-E",
            "-s",
            "-S",
            "-c",
            INDEX_SCRIPT,
            str(app_dir),
            str(ROOT / "devhost" / "workerrules.py"),
            site_packages,
        ],
        cwd=app_dir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"the packaged app does not index:\n{result.stderr[-3000:]}"
    answer: dict[str, list[str]] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def installed_by_requirements() -> set[str]:
    """The distributions a remote build installs: requirements.txt and everything they require, transitively."""
    wanted = [
        Requirement(line)
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    found: set[str] = set()
    while wanted:
        requirement = wanted.pop()
        name = canonicalize_name(requirement.name)
        if name in found:
            continue
        found.add(name)
        for extra in metadata.requires(requirement.name) or []:
            dependency = Requirement(extra)
            if dependency.marker is None or dependency.marker.evaluate({"extra": ""}):
                wanted.append(dependency)
    return found


def distribution_of_files() -> dict[str, str]:
    owners = {}
    for distribution in metadata.distributions():
        for file in distribution.files or []:
            owners[str(Path(distribution.locate_file(file)).resolve())] = canonicalize_name(
                distribution.metadata["Name"]
            )
    return owners


def test_the_packaged_app_indexes_like_the_source_with_only_its_requirements(release_zip: Path, tmp_path: Path) -> None:
    unpacked = tmp_path / "wwwroot"
    with zipfile.ZipFile(release_zip) as archive:
        archive.extractall(unpacked)
    packaged = index(unpacked)
    source = index(ROOT)
    assert packaged["functions"] == source["functions"] and len(packaged["functions"]) > 10

    site_packages = Path(sysconfig.get_paths()["purelib"]).resolve()
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    owners = distribution_of_files()
    allowed = installed_by_requirements()
    checker = (ROOT / "devhost" / "workerrules.py").resolve()
    outside_requirements = set()
    for file in (Path(name).resolve() for name in packaged["loaded"]):
        in_stdlib = file.is_relative_to(stdlib) and not file.is_relative_to(site_packages)
        if file == checker or in_stdlib or file.is_relative_to(unpacked.resolve()):
            continue
        assert file.is_relative_to(site_packages), f"the packaged app loaded {file}, which Azure would not have"
        owner = owners.get(str(file))
        if owner is None or owner not in allowed:
            outside_requirements.add(owner or str(file))
    assert not outside_requirements, (
        f"the app imports packages requirements.txt does not install: {sorted(outside_requirements)}"
    )
