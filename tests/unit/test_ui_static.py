"""The dashboard's static files: every one ships in the deployment package, every module import resolves, and the
`ui` function serves only them (real `azure.functions` requests, no host needed)."""

from __future__ import annotations

import re
from pathlib import Path

import azure.functions as func
import pytest

from api.ui import CONTENT_TYPES, UI_DIR, ui
from infra.funcpack import package_files

REPO = Path(__file__).resolve().parents[2]
IMPORT = re.compile(r"""(?:import|from)\s*(?:[^"';]*?\s+from\s+)?["'](\.{1,2}/[^"']+)["']""")


def ui_files() -> list[Path]:
    return sorted(path for path in UI_DIR.rglob("*") if path.is_file())


def request(path: str, headers: dict[str, str] | None = None, url: str | None = None) -> func.HttpResponse:
    req = func.HttpRequest(
        "GET",
        url or f"http://127.0.0.1:7071/api/ui/{path}",
        headers=headers or {},
        params={},
        route_params={"path": path} if path else {},
        body=b"",
    )
    response: func.HttpResponse = ui.build().get_user_function()(req)
    return response


def test_every_dashboard_file_is_packaged_and_servable() -> None:
    packaged = set(package_files(REPO))
    for path in ui_files():
        relative = path.relative_to(REPO).as_posix()
        assert relative in packaged, f"{relative} would not be deployed: check .funcignore"
        assert path.suffix in CONTENT_TYPES, f"{relative} has a type the ui function does not serve"


def test_every_module_import_resolves() -> None:
    scripts = [path for path in ui_files() if path.suffix == ".js"]
    found = 0
    for script in scripts:
        for target in IMPORT.findall(script.read_text()):
            found += 1
            assert (script.parent / target).resolve().is_file(), f"{script.name} imports missing {target}"
    assert found >= len(scripts)  # the pattern does find the imports (app.js alone has several)


def test_serves_files_with_their_type_and_security_headers() -> None:
    page = request("")
    assert page.status_code == 200 and b'src="app.js"' in page.get_body()
    assert page.headers["Content-Type"].startswith("text/html")
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    script = request("views/job.js")
    assert script.status_code == 200 and script.headers["Content-Type"].startswith("text/javascript")
    assert request("", {"If-None-Match": page.headers["ETag"]}).status_code == 304


@pytest.mark.parametrize(
    "path", ["../host.json", "../api/ui.py", "/etc/passwd", "views/../../function_app.py", "nothing.js", "app.js.map"]
)
def test_nothing_outside_the_folder_or_unknown_is_served(path: str) -> None:
    response = request(path)
    assert response.status_code == 404
    assert b"open /api/ui/" in response.get_body()


def test_the_bare_route_redirects_to_the_folder() -> None:
    response = request("", url="http://127.0.0.1:7071/api/ui")
    assert response.status_code == 308 and response.headers["Location"] == "/api/ui/"


# Ways a script can turn a string into markup or code: the pages build every node with dom.js's `h` (text nodes),
# so data from the API (log lines, file names, errors) can never become markup.
MARKUP_SINKS = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "srcdoc")


def test_no_script_turns_strings_into_markup_or_code() -> None:
    for script in (path for path in ui_files() if path.suffix == ".js"):
        text = script.read_text()
        for sink in MARKUP_SINKS:
            assert sink not in text, f"{script.relative_to(UI_DIR)} uses {sink}: build nodes with dom.js's h()"


def test_only_the_api_module_talks_to_the_server() -> None:
    # The key goes in the Authorization header, which only api.js sets: a view that fetched by itself (or linked to
    # an API URL, which cannot carry the header) would either fail or need the key in the URL.
    for script in (path for path in ui_files() if path.suffix == ".js"):
        text = script.read_text()
        if script.name != "api.js":
            assert "fetch(" not in text and "XMLHttpRequest" not in text, script.name
        assert ("?key=" not in text and "Bearer" not in text) or script.name == "api.js", script.name
