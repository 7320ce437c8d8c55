"""The web dashboard on the local stack: its JSON reads over real HTTP, and the pages in a real headless Chromium.

The browser tests drive Debian's `chromium` through Playwright (`executable_path`; Playwright's own browser
download is not used) and skip with a reason when either is missing. With ACIBATCH_SCREENSHOTS=docs/screenshots
they also save the screenshots of the pages that the README shows.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localdev.client import BatchClient
from localdev.localstack import EXAMPLE_WORKER_IMAGE, LocalStack, local_stack
from tests.e2e.conftest import make_tenant, python_job, wait_job

pytestmark = pytest.mark.e2e

# Where the pages' screenshots go: docs/screenshots/ when refreshing the README's pictures
# (ACIBATCH_SCREENSHOTS=docs/screenshots); otherwise they are taken and dropped, leaving the tree as it was.
SCREENSHOTS = os.environ.get("ACIBATCH_SCREENSHOTS")
QUICK = "import acibatch_report as r; r.succeeded({'ok': 1})"
# Task i sleeps i seconds, so the tasks finish one after another while the page watches.
STAGGERED = "import os, time; time.sleep(int(os.environ['BATCH_TASK_INDEX'])); print('done')"
FAILING = "import sys; print('boom-marker: the input was bad'); sys.exit(3)"
SLEEPER = "import time; time.sleep(600)"
BIG_TASKS = 10_000


@pytest.fixture(scope="module")
def dash_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    # Its own stack: the 10,000-task job below keeps devhost busy until the stack stops, which no other module
    # should share.
    with local_stack(tmp_path_factory.mktemp("dashboard-stack"), settings={"BATCH_POLL_SECONDS": "1"}) as running:
        yield running


@pytest.fixture(scope="module")
def dash_admin(dash_stack: LocalStack) -> BatchClient:
    return BatchClient(dash_stack.api_url, dash_stack.admin_key)


@pytest.fixture(scope="module")
def tenants(dash_admin: BatchClient) -> tuple[BatchClient, BatchClient]:
    quota = {"maxGroups": 4, "maxCores": 4, "maxMemoryGb": 8, "weight": 1}
    return make_tenant(dash_admin, "dash-red", **quota), make_tenant(dash_admin, "dash-blue", **quota)


def call(stack: LocalStack, path: str, key: str | None, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    """GET `path` under the API; (status, headers, JSON body or None)."""
    sent = {**(headers or {}), **({"Authorization": f"Bearer {key}"} if key else {})}
    request = urllib.request.Request(f"{stack.api_url}/{path}", headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, response.headers, json.loads(raw) if raw.startswith(b"{") else raw
    except urllib.error.HTTPError as error:
        with error:  # closes the answer's socket
            raw = error.read()
        return error.code, error.headers, json.loads(raw) if raw.startswith(b"{") else raw


# -- the JSON reads ---------------------------------------------------------------------------------------------


def test_grid_tasks_and_etags(dash_stack: LocalStack, tenants: tuple[BatchClient, BatchClient]) -> None:
    red, blue = tenants
    red.submit(python_job(FAILING, tasks=3, jobId="api-mixed", maxAttempts=1))
    job = wait_job(red, "api-mixed")
    assert job["state"] == "Failed"

    status, headers, grid = call(dash_stack, "jobs/api-mixed/grid", red.key)
    assert status == 200
    assert grid["states"] == "FFF" and grid["counts"]["Failed"] == 3 and grid["taskCount"] == 3
    etag = headers["ETag"]
    # Unchanged: 304 with no body, and the same tag; a weak form of the tag and a list holding it match too.
    for sent in (etag, f"W/{etag}", f'"other", {etag}'):
        again, again_headers, body = call(dash_stack, "jobs/api-mixed/grid", red.key, {"If-None-Match": sent})
        assert (again, again_headers["ETag"], body) == (304, etag, b"")
    assert call(dash_stack, "jobs/api-mixed/grid", red.key, {"If-None-Match": '"stale"'})[0] == 200

    status, _, page = call(dash_stack, "jobs/api-mixed/tasks?state=Failed&limit=2", red.key)
    assert status == 200 and page["total"] == 3 and [t["id"] for t in page["tasks"]] == ["0", "1"]
    assert page["nextOffset"] == 2 and "exit code 3" in page["tasks"][0]["error"]
    assert call(dash_stack, "jobs/api-mixed/tasks?state=Succeeded", red.key)[2]["total"] == 0
    status, _, task = call(dash_stack, "jobs/api-mixed/tasks/2", red.key)
    assert status == 200 and task["id"] == "2" and task["index"] == 2 and task["exitCode"] == 3
    assert "pendingReason" in task  # null once the task ran; present so the page can show it while queued
    assert call(dash_stack, "jobs/api-mixed/taskids", red.key)[2]["taskIds"] == ["0", "1", "2"]

    # Another tenant's job does not exist for this key, on every read.
    for path in ("grid", "taskids", "tasks", "tasks/0"):
        status, _, body = call(dash_stack, f"jobs/api-mixed/{path}", blue.key)
        assert status == 404 and body["error"]["code"] == "JobNotFound"
    assert call(dash_stack, "jobs/api-mixed/grid", dash_stack.admin_key)[0] == 403
    assert call(dash_stack, "jobs/api-mixed/grid", None)[0] == 401


def test_bad_queries_are_400_with_what_to_fix(dash_stack: LocalStack, tenants: tuple[BatchClient, BatchClient]) -> None:
    red, _ = tenants
    for path, word in (
        ("dashboard/jobs?since=yesterday", "'since' must be an integer"),
        ("dashboard/jobs?state=Done", "Queued, Running"),
        ("jobs/api-mixed/tasks?state=failed", "Failed"),
        ("jobs/api-mixed/tasks?limit=0", "limit"),
        ("dashboard/tenants?offset=-1", "offset"),
    ):
        status, _, body = call(dash_stack, path, red.key)
        assert status == 400, path
        assert word in body["error"]["message"], (path, body)
    status, _, body = call(dash_stack, "jobs/api-mixed/tasks/nope", red.key)
    assert status == 404 and body["error"]["code"] == "TaskNotFound"


def test_job_summaries_and_tenants(
    dash_stack: LocalStack, dash_admin: BatchClient, tenants: tuple[BatchClient, BatchClient]
) -> None:
    _, blue = tenants
    blue.submit(python_job(QUICK, tasks=2, jobId="api-quick"))
    wait_job(blue, "api-quick")
    status, headers, page = call(dash_stack, "dashboard/jobs", blue.key)
    assert status == 200
    assert [(j["jobId"], j["state"], j["taskCount"], j["counts"]["Succeeded"]) for j in page["jobs"]] == [
        ("api-quick", "Succeeded", 2, 2)
    ]
    assert call(dash_stack, "dashboard/jobs", blue.key, {"If-None-Match": headers["ETag"]})[0] == 304
    assert call(dash_stack, "dashboard/jobs?state=Failed", blue.key)[2]["total"] == 0
    in_an_hour, an_hour_ago = int(time.time()) + 3600, int(time.time()) - 3600
    assert call(dash_stack, f"dashboard/jobs?since={in_an_hour}", blue.key)[2]["total"] == 0
    assert call(dash_stack, f"dashboard/jobs?since={an_hour_ago}", blue.key)[2]["total"] == 1

    _, _, everyone = call(dash_stack, "dashboard/tenants", dash_admin.key)
    assert {"dash-red", "dash-blue"} <= {t["tenant"] for t in everyone["tenants"]}
    _, _, itself = call(dash_stack, "dashboard/tenants", blue.key)
    assert [t["tenant"] for t in itself["tenants"]] == ["dash-blue"]
    assert itself["tenants"][0]["usage"]["tasks"]["succeeded"] == 2
    assert call(dash_stack, "dashboard/jobs", dash_admin.key)[0] == 403


def test_static_files(dash_stack: LocalStack) -> None:
    status, headers, page = call(dash_stack, "ui/", None)
    assert status == 200 and b'<script type="module" src="app.js">' in page
    assert headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert call(dash_stack, "ui/", None, {"If-None-Match": headers["ETag"]})[0] == 304
    status, headers, _ = call(dash_stack, "ui/views/job.js", None)
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    for outside in ("ui/../host.json", "ui/%2e%2e/function_app.py", "ui/nothing.js", "ui/index.html.bak"):
        status, _, body = call(dash_stack, outside, None)
        assert status == 404 and "open /api/ui/" in body["error"]["message"], outside
    # Without the slash, the page's relative links would miss: the bare route redirects.
    request = urllib.request.Request(f"{dash_stack.api_url}/ui")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    with pytest.raises(urllib.error.HTTPError) as redirected:
        urllib.request.build_opener(NoRedirect).open(request, timeout=30)
    redirected.value.close()
    assert redirected.value.code == 308 and redirected.value.headers["Location"].endswith("/api/ui/")


# -- the pages in Chromium ---------------------------------------------------------------------------------------


def chromium_path() -> str | None:
    return os.environ.get("ACIBATCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def browser_missing() -> str | None:
    if chromium_path() is None:
        return "needs Chromium (apt-get install chromium, or set ACIBATCH_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "needs Playwright for Python (pip install playwright; it drives the system Chromium)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    yield opened
    context.close()
    # A script error or a refused resource (CSP) shows in the console: none is expected. The API's 401 and 404
    # answers the tests ask for (a wrong key, another tenant's job) are logged by Chromium as failed resources.
    expected = ("status of 401", "status of 404")
    unexpected = [e for e in errors if not (e.startswith("Failed to load resource") and any(x in e for x in expected))]
    assert unexpected == []


def sign_in(page: Any, stack: LocalStack, key: str | None, fragment: str = "") -> None:
    page.goto(f"{stack.api_url}/ui/{fragment}")
    page.fill("#key", key or "")
    page.click("button[type=submit]")


def cell_states(page: Any, count: int) -> str:
    """The grid's cells as the canvas shows them: each cell's centre pixel mapped back to its state letter."""
    letters: str = page.evaluate(
        """(count) => {
            const canvas = document.querySelector('canvas.grid');
            const cell = Number(canvas.dataset.cell), cols = Number(canvas.dataset.cols);
            const scale = canvas.width / (cols * cell);
            const ctx = canvas.getContext('2d');
            const style = getComputedStyle(document.documentElement);
            const rgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.trim().slice(i, i + 2), 16));
            const palette = {Q: 'queued', R: 'running', S: 'succeeded', F: 'failed', C: 'cancelled'};
            const known = Object.entries(palette).map(([l, n]) => [l, rgb(style.getPropertyValue('--' + n))]);
            let out = '';
            for (let i = 0; i < count; i++) {
                const x = Math.floor(((i % cols) * cell + (cell - 1) / 2) * scale);
                const y = Math.floor((Math.floor(i / cols) * cell + (cell - 1) / 2) * scale);
                const [r, g, b] = ctx.getImageData(x, y, 1, 1).data;
                const hit = known.find(([, c]) => Math.abs(c[0] - r) + Math.abs(c[1] - g) + Math.abs(c[2] - b) < 12);
                out += hit ? hit[0] : '?';
            }
            return out;
        }""",
        count,
    )
    return letters


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


def shoot(page: Any, name: str) -> None:
    if SCREENSHOTS is None:
        assert page.screenshot()[:8] == b"\x89PNG\r\n\x1a\n"
        return
    Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"))


@pytest.mark.browser
def test_sign_in_and_see_the_jobs(page: Any, dash_stack: LocalStack, tenants: tuple[BatchClient, BatchClient]) -> None:
    red, _ = tenants
    sign_in(page, dash_stack, "acb_dash-red_not-the-key")
    page.wait_for_selector("text=the key is not valid")
    assert page.evaluate("sessionStorage.length") == 0  # a refused key is not kept
    page.fill("#key", red.key)
    page.click("button[type=submit]")
    page.wait_for_selector("tr[data-job=api-mixed]")
    assert page.evaluate("sessionStorage.getItem('acibatch.key')") == red.key
    assert page.evaluate("localStorage.length") == 0  # the key lives in this tab's session only
    row = page.locator("tr[data-job=api-mixed]")
    assert "Failed" in row.inner_text() and "3 tasks" in row.inner_text()
    page.select_option("#f-state", "Succeeded")
    page.wait_for_selector("text=no jobs match")
    page.select_option("#f-state", "")
    page.wait_for_selector("tr[data-job=api-mixed]")


@pytest.mark.browser
def test_running_job_grid_changes_as_tasks_finish(
    page: Any, dash_stack: LocalStack, tenants: tuple[BatchClient, BatchClient]
) -> None:
    red, _ = tenants
    red.submit(python_job(STAGGERED, tasks=4, jobId="ui-staggered"))
    sign_in(page, dash_stack, red.key, "#/jobs/ui-staggered")
    page.wait_for_selector("canvas.grid[data-cell]")
    seen = [cell_states(page, 4)]

    def mixed(states: str) -> bool:
        return ("R" in states or "Q" in states) and "S" in states

    def watch() -> bool:
        states = cell_states(page, 4)
        if mixed(states) and not any(mixed(before) for before in seen):
            shoot(page, "job")  # the page mid-run
        seen.append(states)
        return states == "SSSS"

    # Task i ends after about i seconds: the canvas must pass through mixed states to all-succeeded.
    wait_for(watch, 60, "every cell to turn succeeded")
    assert any(mixed(states) for states in seen), seen
    page.wait_for_selector(".toolbar .badge.s-Succeeded")
    assert page.locator("#cancel").is_disabled()


@pytest.mark.browser
def test_failed_task_and_its_log(page: Any, dash_stack: LocalStack, tenants: tuple[BatchClient, BatchClient]) -> None:
    red, _ = tenants
    sign_in(page, dash_stack, red.key, "#/jobs/api-mixed")
    page.wait_for_selector("#failed a")
    assert "exit 3" in page.locator("#failed").inner_text()
    page.locator("#failed a").first.click()
    page.wait_for_selector("#log:has-text('boom-marker')")
    assert "exit code 3" in page.locator("#task-error").inner_text()
    assert page.url.endswith("#/jobs/api-mixed/tasks/0")
    shoot(page, "task")
    page.click("#whole-log")
    page.wait_for_selector("h2:text('Log')")  # the whole log, not the tail
    page.wait_for_selector("#log:has-text('boom-marker')")


@pytest.mark.browser
def test_keyboard_opens_a_task_from_the_grid(
    page: Any, dash_stack: LocalStack, tenants: tuple[BatchClient, BatchClient]
) -> None:
    red, _ = tenants
    sign_in(page, dash_stack, red.key, "#/jobs/api-mixed")
    page.wait_for_selector("canvas.grid[data-cell][data-ids]")  # laid out, and its task ids have arrived
    page.focus("canvas.grid")
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")
    assert "task 1: Failed" in page.locator("#announce").inner_text()
    page.keyboard.press("Enter")
    page.wait_for_url("**#/jobs/api-mixed/tasks/1")


@pytest.mark.browser
def test_hovering_a_cell_shows_the_task(
    page: Any, dash_stack: LocalStack, tenants: tuple[BatchClient, BatchClient]
) -> None:
    red, _ = tenants
    sign_in(page, dash_stack, red.key, "#/jobs/api-mixed")
    page.wait_for_selector("canvas.grid[data-cell][data-ids]")  # laid out, and its task ids have arrived
    cell = int(page.get_attribute("canvas.grid", "data-cell") or 0)
    page.hover("canvas.grid", position={"x": cell * 2 + cell / 2, "y": cell / 2})  # the third cell: task 2
    page.wait_for_selector(".tip:has-text('task 2: Failed, 1 attempt')")
    page.click("canvas.grid", position={"x": cell * 2 + cell / 2, "y": cell / 2})
    page.wait_for_url("**#/jobs/api-mixed/tasks/2")


def relative_luminance(hex_colour: str) -> float:
    channels = [int(hex_colour.strip()[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.browser
def test_colours_meet_wcag_aa(page: Any, dash_stack: LocalStack) -> None:
    page.goto(f"{dash_stack.api_url}/ui/")
    names = ["fg", "muted", "link", "bg", "queued", "running", "succeeded", "failed", "cancelled", "focus"]
    colours = page.evaluate(
        "(names) => Object.fromEntries(names.map((n) => "
        "[n, getComputedStyle(document.documentElement).getPropertyValue('--' + n).trim()]))",
        names,
    )
    for text in ("fg", "muted", "link", "failed"):  # text on the page
        assert contrast(colours[text], colours["bg"]) >= 4.5, text
    for state in ("queued", "running", "succeeded", "failed", "cancelled"):
        assert contrast("#ffffff", colours[state]) >= 4.5, state  # a badge's white text on its colour
    assert contrast(colours["focus"], colours["bg"]) >= 3  # the focus ring, a non-text element


@pytest.mark.browser
def test_queued_tasks_say_why_and_a_job_is_cancelled(
    page: Any, dash_stack: LocalStack, tenants: tuple[BatchClient, BatchClient]
) -> None:
    red, _ = tenants
    # Six long tasks on a four-group quota: four run, two wait for the tenant's quota.
    red.submit(python_job(SLEEPER, tasks=6, jobId="ui-cancel", taskTimeoutSeconds=900))
    sign_in(page, dash_stack, red.key, "#/jobs/ui-cancel")
    page.wait_for_selector(".toolbar .badge.s-Running", timeout=30_000)

    def first_waiting() -> tuple[str, str] | None:
        queued = red.request("GET", "jobs/ui-cancel/tasks", query={"state": "Queued", "limit": 1})["tasks"]
        return (queued[0]["id"], queued[0]["pendingReason"]) if queued and queued[0].get("pendingReason") else None

    task_id, reason = wait_for(first_waiting, 30, "a queued task's pendingReason")
    page.wait_for_selector(f"#waiting:has-text('waiting: {reason}')")
    page.goto(f"{dash_stack.api_url}/ui/#/jobs/ui-cancel/tasks/{task_id}")
    page.wait_for_selector(f"#pending:has-text('waiting: {reason}')")
    page.go_back()
    page.wait_for_selector(".toolbar .badge.s-Running")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#cancel")
    page.wait_for_selector(".toolbar .badge.s-Cancelled", timeout=60_000)
    assert red.job("ui-cancel", limit=0)["state"] == "Cancelled"
    assert cell_states(page, 6) == "CCCCCC"
    page.click("text=← Jobs")
    page.wait_for_selector("tr[data-job=ui-cancel] .s-Cancelled")
    shoot(page, "jobs")  # by now the tenant has a failed, a succeeded and a cancelled job


@pytest.mark.browser
def test_a_tenant_cannot_open_another_tenants_job(
    page: Any, dash_stack: LocalStack, tenants: tuple[BatchClient, BatchClient]
) -> None:
    _, blue = tenants
    sign_in(page, dash_stack, blue.key, "#/jobs/api-mixed")
    page.wait_for_selector("text=Job not found")
    assert page.locator("canvas.grid[data-cell]").count() == 0
    assert "boom-marker" not in page.content()
    page.goto(f"{dash_stack.api_url}/ui/#/jobs/api-mixed/tasks/0")
    page.wait_for_selector("text=no task '0' in job 'api-mixed' for this key")
    assert "boom-marker" not in page.content()
    page.goto(f"{dash_stack.api_url}/ui/#/jobs")
    page.wait_for_selector("tr[data-job=api-quick]")
    assert page.locator("tr[data-job=api-mixed]").count() == 0


@pytest.mark.browser
def test_a_rotated_key_signs_the_page_out(page: Any, dash_stack: LocalStack, dash_admin: BatchClient) -> None:
    rotated = make_tenant(dash_admin, "dash-rotated")
    sign_in(page, dash_stack, rotated.key)
    page.wait_for_selector("text=no jobs match")
    assert dash_admin.rotate_key("dash-rotated")["applied"] is True
    # The jobs page's next poll gets a 401: the key is dropped and the sign-in form is back.
    page.wait_for_selector("#key", timeout=15_000)
    assert page.evaluate("sessionStorage.getItem('acibatch.key')") is None


@pytest.mark.browser
def test_tenants_page_for_the_admin(
    page: Any, dash_stack: LocalStack, tenants: tuple[BatchClient, BatchClient]
) -> None:
    sign_in(page, dash_stack, dash_stack.admin_key)
    page.wait_for_selector("[data-tenant=dash-red]")
    card = page.locator("[data-tenant=dash-red]")
    assert "4 groups, 4 cores" in card.inner_text()
    before = card.locator(".cost").inner_text()
    assert before.startswith("$")
    shoot(page, "tenants")
    page.fill("#price-core", "1")
    page.locator("#price-core").dispatch_event("change")
    wait_for(lambda: card.locator(".cost").inner_text() != before, 5, "the cost to follow the price")
    # A tenant key is not offered the admin's view: it sees itself only.
    page.click("#signout")
    sign_in(page, dash_stack, tenants[1].key, "#/tenants")
    page.wait_for_selector("[data-tenant=dash-blue]")
    assert page.locator("[data-tenant=dash-red]").count() == 0


@pytest.mark.browser
def test_phone_width(browser: Any, dash_stack: LocalStack, tenants: tuple[BatchClient, BatchClient]) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    phone = context.new_page()
    try:
        sign_in(phone, dash_stack, tenants[0].key)
        phone.wait_for_selector("tr[data-job=api-mixed]")
        # Nothing wider than the screen: no sideways scrolling of the page itself.
        assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        phone.goto(f"{dash_stack.api_url}/ui/#/jobs/api-mixed")
        phone.wait_for_selector("canvas.grid[data-cell]")
        assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    finally:
        context.close()


@pytest.mark.browser
def test_ten_thousand_task_grid(page: Any, dash_stack: LocalStack, dash_admin: BatchClient) -> None:
    # 10,000 real task orchestrations behind a one-group quota: one container runs, the rest wait for a lease, so
    # the page reads 10,000 real states from the progress entity without 10,000 containers.
    big = make_tenant(dash_admin, "dash-big", maxGroups=1, maxCores=1, maxMemoryGb=2, weight=1)
    spec = {"jobId": "big", "image": EXAMPLE_WORKER_IMAGE, "command": ["sleep", "3600"], "cpu": 1, "memoryGb": 1,
            "taskCount": BIG_TASKS, "maxAttempts": 1}  # fmt: skip
    big.submit(spec)
    # The first task holds the tenant's one group; the others start and queue behind it while the page loads.
    wait_for(lambda: dash_admin.get_tenant("dash-big")["running"]["groups"] == 1, 120, "the first lease")

    sign_in(page, dash_stack, big.key, "#/jobs/big")
    page.wait_for_function("() => performance.getEntriesByName('grid-render').length > 0", timeout=30_000)
    timings = page.evaluate(
        """() => ({
            render: performance.getEntriesByName('grid-render')[0].duration,
            fetch: performance.getEntriesByName('grid-fetch')[0].duration,
            draw: performance.getEntriesByName('grid-first-draw')[0].duration,
        })"""
    )
    states = cell_states(page, BIG_TASKS)
    assert states.count("R") <= 1 and states.count("Q") >= BIG_TASKS - 1, states.count("?")

    # Polling a 10,000-task page must not freeze it. For 12 s the page polls as usual while the job is cancelled
    # (cells turn Cancelled as fast as the stack gets through the cancellation, which on a loaded machine may be
    # none at all in that time), then the window is resized, which lays the grid out again and repaints all
    # 10,000 cells. Long tasks (over 50 ms of the page's main thread) are watched throughout; nothing else runs in
    # the page meanwhile (reading the canvas's pixels would be one).
    page.evaluate(
        """() => {
            window.longTasks = [];
            new PerformanceObserver((list) => window.longTasks.push(...list.getEntries().map((e) => e.duration)))
                .observe({type: 'longtask'});
        }"""
    )
    big.cancel("big")
    time.sleep(12)
    page.set_viewport_size({"width": 1000, "height": 800})
    page.wait_for_function("() => performance.getEntriesByName('grid-redraw').some((m) => m.detail.resized)")
    polls = page.evaluate("() => performance.getEntriesByName('grid-poll').map((m) => [m.duration, m.detail.changed])")
    redraws = page.evaluate(
        "() => performance.getEntriesByName('grid-redraw').map((m) => [m.duration, m.detail.painted])"
    )
    long_tasks = page.evaluate("() => window.longTasks")
    full = [duration for duration, painted in redraws if painted == BIG_TASKS]
    shown = cell_states(page, BIG_TASKS)
    shoot(page, "job-10000-tasks")
    browser_ms = timings["render"] - timings["fetch"]  # opening the page to a drawn grid, less the API's answer
    numbers = {
        "browser_ms": round(browser_ms, 1),
        "open_to_drawn_ms": round(timings["render"], 1),
        "api_fetch_ms": round(timings["fetch"], 1),
        "first_draw_ms": round(timings["draw"], 1),
        "polls": len(polls),
        "polls_changed": sum(1 for _, changed in polls if changed),
        "redraws": len(redraws),
        "max_redraw_ms": round(max(d for d, _ in redraws), 1),
        "full_repaint_ms": [round(d, 1) for d in full],
        "long_tasks_ms": [round(d) for d in long_tasks],
        "cancelled_shown": shown.count("C"),
    }
    print(f"\n10,000-task grid: {json.dumps(numbers)}")
    assert browser_ms < 1000, numbers
    assert len(polls) >= 4 and full, numbers
    assert "?" not in shown and shown.count("C") + shown.count("Q") + shown.count("R") == BIG_TASKS, numbers
    assert max(d for d, _ in redraws) < 100, numbers
    assert all(d < 200 for d in long_tasks), numbers


# -- a task's files and stored log, on a stack with blob storage ---------------------------------------------------

LOG_LINE = "x" * 1023 + "\n"
LOG_LINES = 9 * 1024  # 9 MiB of 1 KiB lines: three of the API's 4 MiB pages
TAIL_LINES = 200  # the lines the task page shows before "Show the whole log" (ui/views/tasklog.js)
DATA = bytes(range(256)) * 400  # every byte value: a download that mangled bytes would not match
# Attempt 1 fails after a line of its own (so the page has two attempts to pick from); attempt 2 writes two
# outputs, a log three pages long and a line on stderr.
WITH_FILES = f"""
import os, pathlib, sys
if os.environ['BATCH_ATTEMPT'] == '1':
    print('first-attempt-marker')
    sys.exit(1)
out = pathlib.Path(os.environ['AZ_BATCH_TASK_WORKING_DIR'], 'out')
out.mkdir()
(out / 'report.txt').write_text('report\\n')
(out / 'data.bin').write_bytes(bytes(range(256)) * 400)
sys.stdout.write({LOG_LINE!r} * {LOG_LINES})
print('end-of-log-marker')
print('stderr-marker', file=sys.stderr)
"""
TICK_COUNT = 24  # a line every 0.5 s: the task runs long enough to be watched in the tail, then in the whole log
TICKS = f"import time\nfor n in range({TICK_COUNT}):\n    print('tick', n, flush=True); time.sleep(0.5)\n"


@pytest.fixture(scope="module")
def files_tenant(storage_stack: LocalStack) -> BatchClient:
    admin = BatchClient(storage_stack.api_url, storage_stack.admin_key)
    return make_tenant(admin, "dash-files", maxGroups=2, maxCores=2, maxMemoryGb=4, weight=1)


@pytest.fixture(scope="module")
def files_job(files_tenant: BatchClient) -> dict[str, Any]:
    outputs = [{"filePattern": "out/*", "destination": {"container": {"path": "results"}}}]
    files_tenant.submit(python_job(WITH_FILES, jobId="ui-files", maxAttempts=2, outputFiles=outputs))
    return wait_job(files_tenant, "ui-files", timeout=180)


def log_text(page: Any) -> str:
    text: str = page.evaluate("document.getElementById('log').textContent")
    return text


@pytest.mark.browser
@pytest.mark.azurite
def test_task_outputs_download_and_the_whole_stored_log(
    page: Any, storage_stack: LocalStack, files_tenant: BatchClient, files_job: dict[str, Any]
) -> None:
    assert files_job["state"] == "Succeeded", files_job["tasks"]
    sign_in(page, storage_stack, files_tenant.key, "#/jobs/ui-files/tasks/0")
    row = page.locator("#files tr[data-file='out/data.bin']")
    row.wait_for()
    assert page.locator("#files tbody tr").count() == 2
    assert "100.0 KiB" in row.inner_text() and hashlib.sha256(DATA).hexdigest()[:12] in row.inner_text()
    assert "jobs/ui-files/tasks/0/outputs/results/data.bin" in row.inner_text()
    # The facts list holds only its terms and values (no stray text such as a "null").
    assert page.evaluate("[...document.querySelector('dl.facts').childNodes].every((n) => /^D[TD]$/.test(n.nodeName))")
    # The download sends the key in a header (fetch, then a blob: URL): the saved bytes are the task's own.
    with page.expect_download() as download:
        row.locator("button.download").click()
    assert download.value.suggested_filename == "data.bin"
    assert Path(download.value.path()).read_bytes() == DATA
    page.wait_for_selector("#files tr[data-file='out/data.bin'] :text('sha256 checked')")

    # The tail of the stored log of the latest attempt, then the other stream and the failed first attempt.
    page.wait_for_selector("#log:has-text('end-of-log-marker')")
    assert "stored log" in page.inner_text("#log-note") and "attempt 2 of 2" in page.inner_text("#log-note")
    assert len(log_text(page).splitlines()) == TAIL_LINES
    page.select_option("#log-stream", "stderr")
    page.wait_for_selector("#log:text-is('stderr-marker')")
    page.select_option("#log-stream", "stdout")
    page.select_option("#log-attempt", "1")
    page.wait_for_selector("#log:text-is('first-attempt-marker')")
    assert "attempt 1 of 2" in page.inner_text("#log-note")
    shoot(page, "task-files")

    # The whole log, a page at a time: every byte of it reaches the page.
    page.click("#whole-log")
    page.wait_for_selector("#log-more:visible")
    pages = 1
    while page.locator("#log-more").is_visible():
        before = len(log_text(page))
        page.click("#log-more")
        pages += 1
        wait_for(lambda shown=before: len(log_text(page)) > shown, 30, f"page {pages} of the log")
    text = log_text(page)
    assert pages == 3 and text == LOG_LINE * LOG_LINES + "end-of-log-marker\n"
    assert page.inner_text("#log-note").endswith("whole log")


@pytest.mark.browser
@pytest.mark.azurite
def test_a_running_tasks_stored_log_is_followed(
    page: Any, storage_stack: LocalStack, files_tenant: BatchClient
) -> None:
    files_tenant.submit(python_job(TICKS, jobId="ui-ticks"))
    sign_in(page, storage_stack, files_tenant.key, "#/jobs/ui-ticks/tasks/0")
    # Seen mid-run in the tail, then in the whole log: the page says it follows, and lines arrive as printed.
    page.wait_for_selector("#log-note:has-text('following the running attempt')", timeout=90_000)
    page.wait_for_selector("#log:has-text('tick 2')")
    assert f"tick {TICK_COUNT - 1}" not in log_text(page)
    page.click("#whole-log")
    page.wait_for_selector("#log-note:has-text('following the running attempt')")
    page.wait_for_selector(f"#log:has-text('tick {TICK_COUNT - 1}')", timeout=60_000)
    page.wait_for_selector("#log-note:has-text('whole log')", timeout=30_000)
    assert log_text(page) == "".join(f"tick {n}\n" for n in range(TICK_COUNT))


@pytest.mark.browser
@pytest.mark.azurite
def test_a_task_that_failed_around_its_command_shows_the_category(
    page: Any, storage_stack: LocalStack, files_tenant: BatchClient
) -> None:
    # Stage-in fails for real: the second input would put a file under `d/f.txt`, which the first made a file.
    files_tenant.upload_input("clash", "f.txt", b"f\n")
    inputs = [
        {"autoStorageContainerName": "clash", "filePath": "d"},
        {"autoStorageContainerName": "clash", "filePath": "d/f.txt"},
    ]
    files_tenant.submit(python_job("print('never runs')", jobId="ui-clash", maxAttempts=1, resourceFiles=inputs))
    task = wait_job(files_tenant, "ui-clash", timeout=120)["tasks"][0]
    assert task["failureCategory"] == "preProcessingError", task
    sign_in(page, storage_stack, files_tenant.key, "#/jobs/ui-clash/tasks/0")
    page.wait_for_selector("#failure-category:text-is('preProcessingError')")
    assert page.inner_text("#task-error").startswith("preProcessingError: ")
    assert page.evaluate("[...document.querySelector('dl.facts').childNodes].every((n) => /^D[TD]$/.test(n.nodeName))")
    page.wait_for_selector("#log-note:has-text('stored log')")  # the agent ran; the command did not
