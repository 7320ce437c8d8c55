"""`GET /api/ui/{*path}`: the dashboard's static files (HTML, CSS, JavaScript modules), served by the app itself.

The files ship in the function app package (`ui/` beside `function_app.py`), so the dashboard works wherever the
app runs, with nothing else to deploy. Only files inside that folder with a known type are served; the page
talks to the JSON API with the key the user typed, which the browser keeps in sessionStorage.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from urllib.parse import urlsplit

import azure.functions as func

from api import bp
from api.common import ApiError, error_response
from api.dashboard_data import etag_matches

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
INDEX = "index.html"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",  # module scripts are refused unless served as JavaScript
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The page loads only its own files and calls only its own origin: injected markup could neither run inline
# script nor send a key elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@functools.cache
def _files() -> dict[str, tuple[bytes, str]]:
    """Every servable file by its path under UI_DIR, with its ETag: read once per worker, as deployed files do not
    change while the app runs, and a lookup by name cannot reach outside the folder."""
    files = {}
    for path in sorted(UI_DIR.rglob("*")):
        if path.is_file() and path.suffix in CONTENT_TYPES:
            data = path.read_bytes()
            files[path.relative_to(UI_DIR).as_posix()] = (data, '"' + hashlib.sha256(data).hexdigest()[:32] + '"')
    return files


def _not_found(relative: str) -> func.HttpResponse:
    message = f"no dashboard file '{relative[:80]}'; open /api/ui/ for the dashboard"
    return error_response(ApiError(404, "NotFound", message))


@bp.route(route="ui/{*path}", methods=["GET"])
def ui(req: func.HttpRequest) -> func.HttpResponse:
    relative = str(req.route_params.get("path") or "")
    if not relative and not urlsplit(str(req.url)).path.endswith("/"):
        # The page's relative links (app.js, style.css) resolve against /api/ui/, not /api/.
        return func.HttpResponse(status_code=308, headers={"Location": urlsplit(str(req.url)).path + "/"})
    name = relative or INDEX
    loaded = _files().get(name)
    if loaded is None:
        return _not_found(name)
    data, etag = loaded
    headers = {**SECURITY_HEADERS, "ETag": etag}
    if etag_matches(req.headers.get("If-None-Match"), etag):
        return func.HttpResponse(status_code=304, headers=headers)
    headers["Content-Type"] = CONTENT_TYPES[Path(name).suffix]
    return func.HttpResponse(data, status_code=200, headers=headers)
