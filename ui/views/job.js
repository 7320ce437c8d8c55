import { ApiError, enc, get, post } from "../api.js";
import { announce, badge, colours, countsList, duration, h, STATES } from "../dom.js";
import { TaskGrid } from "../grid.js";

const REFRESH_MS = 2000;
const FAILED_SHOWN = 20;

// One job: header with counts and elapsed time, the grid of every task, its failed tasks, cancel.
export function jobPage({ jobId, poll }) {
  performance.clearMarks("job-open");
  performance.clearMarks("grid-drawn");
  performance.clearMeasures();
  performance.mark("job-open");
  let ids = null;
  const title = h("h1", {}, `Job ${jobId}`);
  const state = h("span");
  const facts = h("dl", { class: "facts" });
  const counts = h("div");
  const errorLine = h("p", { class: "error", role: "alert" });
  const failed = h("ul", { id: "failed" });
  const cancel = h("button", { type: "button", class: "danger", id: "cancel" }, "Cancel job");
  const retry = h("button", { type: "button", disabled: true, title: "retrying failed tasks is not supported yet" },
    "Retry failed tasks");
  const openTask = (index) => {
    if (ids) location.hash = `#/jobs/${enc(jobId)}/tasks/${enc(ids[index])}`;
  };
  const attemptsSeen = new Map();
  let hoverTimer = 0;
  const grid = new TaskGrid({
    onOpen: openTask,
    describe: (index) => (ids ? `task ${ids[index]}` : `task #${index + 1}`),
    // Attempts are not in the state string: read the one task when the pointer rests on it.
    onHover: (index, show) => {
      clearTimeout(hoverTimer);
      if (!ids) return;
      const id = ids[index];
      if (attemptsSeen.has(id)) return show(attemptsSeen.get(id));
      hoverTimer = setTimeout(async () => {
        try {
          const { body } = await get(`jobs/${enc(jobId)}/tasks/${enc(id)}`);
          const waiting = body.pendingReason ? ` (waiting: ${body.pendingReason})` : "";
          const more = `, ${body.attempts} attempt${body.attempts === 1 ? "" : "s"}${waiting}`;
          // Only a finished task's attempts cannot change: keep those, ask again for the others.
          if (["Succeeded", "Failed", "Cancelled"].includes(body.state)) attemptsSeen.set(id, more);
          show(more);
        } catch {
          show(""); // the tip keeps the id and state it already shows
        }
      }, 250);
    },
  });
  const palette = colours();
  const legend = h("div", { class: "legend", "aria-hidden": "true" },
    STATES.map((s) => h("span", {}, h("span", { class: "swatch", style: { background: palette[s] } }), s)));
  let last = null;
  let failedCount = -1;
  const waiting = h("p", { id: "waiting", class: "muted" });

  // Why queued tasks wait (tenant quota, region capacity, create rate), from the first queued task's record.
  async function refreshWaiting(queued) {
    if (!queued) {
      waiting.textContent = "";
      return;
    }
    const { body } = await get(`jobs/${enc(jobId)}/tasks?state=Queued&limit=1`);
    const reason = body.tasks.length ? body.tasks[0].pendingReason : null;
    waiting.textContent = reason ? `${queued} queued task(s) waiting: ${reason}` : "";
  }

  async function refreshFailed(count) {
    if (count === failedCount) return;
    failedCount = count;
    const { body } = await get(`jobs/${enc(jobId)}/tasks?state=Failed&limit=${FAILED_SHOWN}`);
    failed.replaceChildren(...body.tasks.map((task) =>
      h("li", {}, h("a", { href: `#/jobs/${enc(jobId)}/tasks/${enc(task.id)}` }, `task ${task.id}`),
        ` — exit ${task.exitCode ?? "none"}, ${task.attempts} attempt(s): ${task.error || "no error recorded"}`)));
    if (!body.tasks.length) failed.append(h("li", { class: "muted" }, "no failed tasks"));
    else if (body.total > body.tasks.length) failed.append(h("li", { class: "muted" }, `… and ${body.total - body.tasks.length} more`));
  }

  async function refresh() {
    const asked = performance.now();
    const { body, changed } = await get(`jobs/${enc(jobId)}/grid`);
    // The wait for the API is the server's time, not the page's: measured apart so the two can be told.
    if (!last) performance.measure("grid-fetch", { start: asked, end: performance.now() });
    else performance.measure("grid-poll", { start: asked, end: performance.now(), detail: { changed } });
    // A 304 still gives the body this page has not drawn yet, when an earlier visit fetched it.
    if (changed || !last) {
      const start = performance.now();
      const painted = grid.update(body.states);
      const end = performance.now();
      if (!last) {
        performance.mark("grid-drawn");
        performance.measure("grid-render", "job-open", "grid-drawn");
        performance.measure("grid-first-draw", { start, end });
      } else {
        performance.measure("grid-redraw", { start, end, detail: { painted } });
      }
      state.replaceChildren(badge(body.state));
      counts.replaceChildren(countsList(body.counts));
      cancel.disabled = ["Succeeded", "Failed", "Cancelled"].includes(body.state) || body.cancelRequested;
      errorLine.textContent = body.error || "";
      if (last && last.state !== body.state) announce(`job ${jobId} is now ${body.state}`);
      last = body;
      refreshFailed(body.counts.Failed || 0).catch(() => {});
    }
    // A task's reason to wait changes without any state changing: asked on every poll (a 304 when unchanged).
    refreshWaiting(last.counts.Queued || 0).catch(() => {});
    facts.replaceChildren(
      h("dt", {}, "Tasks"), h("dd", {}, String(last.taskCount)),
      h("dt", {}, "Submitted"), h("dd", {}, last.createdAt ? new Date(last.createdAt).toLocaleString() : "—"),
      h("dt", {}, "Elapsed"), h("dd", { id: "elapsed" }, duration(last.startedAt || last.createdAt, last.finishedAt)),
    );
  }

  cancel.addEventListener("click", async () => {
    if (!confirm(`Cancel job ${jobId}? Running containers are stopped and queued tasks never start.`)) return;
    try {
      await post(`jobs/${enc(jobId)}/cancel`);
      announce(`cancelling job ${jobId}`);
      cancel.disabled = true;
      await refresh();
    } catch (error) {
      errorLine.textContent = error.message;
    }
  });

  // A new width (a window resized, a phone turned) lays the grid out again and repaints every cell.
  let resizeTimer = 0;
  const relayout = () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      if (!last || !grid.element.isConnected) return;
      const start = performance.now();
      const painted = grid.update(last.states);
      performance.measure("grid-redraw", { start, end: performance.now(), detail: { painted, resized: true } });
    }, 100);
  };
  window.addEventListener("resize", relayout);
  // Leaving the page replaces main's content: the listener goes with it.
  const stopResize = new MutationObserver(() => {
    if (!section.isConnected) {
      window.removeEventListener("resize", relayout);
      stopResize.disconnect();
    }
  });
  queueMicrotask(() => stopResize.observe(document.getElementById("main"), { childList: true }));

  const section = h("section", {},
    h("p", {}, h("a", { href: "#/jobs" }, "← Jobs")),
    title,
    h("div", { class: "toolbar" }, state, cancel, retry),
    counts, waiting, facts, errorLine,
    h("h2", {}, "Tasks"), legend, grid.element,
    h("p", { class: "muted" }, "Hover or focus a cell for its task; click or press Enter to open it."),
    h("h2", {}, "Failed tasks"), failed);
  refresh()
    .catch((error) => {
      errorLine.textContent = error instanceof ApiError && error.status === 404 ? `no job '${jobId}' for this key` : error.message;
      title.textContent = "Job not found";
      section.querySelectorAll("button").forEach((b) => (b.disabled = true));
    })
    .then(() => get(`jobs/${enc(jobId)}/taskids`))
    .then((answer) => {
      if (answer) {
        ids = answer.body.taskIds;
        grid.canvas.dataset.ids = "loaded"; // cells are named by task id from now on (tests wait for this)
      }
    })
    .catch(() => {});
  poll(REFRESH_MS, () => (last ? refresh() : null));
  return section;
}
