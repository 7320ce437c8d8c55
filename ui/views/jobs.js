import { enc, get } from "../api.js";
import { badge, countsBar, duration, h, STATES, when } from "../dom.js";

const PAGE = 20;
const SINCE = { any: null, hour: 3600, day: 86400, week: 7 * 86400 };

// The tenant's jobs, newest first: state, counts as a bar, times; filter by state and age; server-side pages.
export function jobsPage({ poll }) {
  const view = { state: "", since: "any", offset: 0 };
  const stateSelect = h("select", { id: "f-state" }, h("option", { value: "" }, "any state"),
    STATES.map((s) => h("option", { value: s }, s)));
  const sinceSelect = h("select", { id: "f-since" }, h("option", { value: "any" }, "any time"),
    h("option", { value: "hour" }, "last hour"), h("option", { value: "day" }, "last 24 hours"),
    h("option", { value: "week" }, "last 7 days"));
  const auto = h("input", { type: "checkbox", id: "auto", checked: true });
  const body = h("tbody");
  const status = h("p", { class: "muted", "aria-live": "polite" });
  const prev = h("button", { type: "button" }, "Newer");
  const next = h("button", { type: "button" }, "Older");

  async function load(fresh = false) {
    const params = new URLSearchParams({ offset: view.offset, limit: PAGE });
    if (view.state) params.set("state", view.state);
    // 'since' moves by whole minutes, so polls within a minute ask the same URL and can get a 304.
    const minute = Math.floor(Date.now() / 60000) * 60000;
    if (SINCE[view.since]) params.set("since", String(minute / 1000 - SINCE[view.since]));
    const { body: page, changed } = await get(`dashboard/jobs?${params}`, { fresh });
    if (!changed) return;
    body.replaceChildren(
      ...page.jobs.map((job) =>
        h("tr", { "data-job": job.jobId },
          h("td", {}, h("a", { href: `#/jobs/${enc(job.jobId)}` }, job.jobId)),
          h("td", {}, badge(job.state)),
          h("td", {}, countsBar(job.counts, job.taskCount), h("span", { class: "muted" }, `${job.taskCount} tasks`)),
          h("td", { class: "hide-narrow" }, when(job.createdAt)),
          h("td", { class: "hide-narrow" }, when(job.finishedAt)),
          h("td", {}, duration(job.createdAt, job.finishedAt)),
        )),
    );
    status.textContent = page.total
      ? `jobs ${view.offset + 1}–${view.offset + page.jobs.length} of ${page.total}`
      : "no jobs match";
    prev.disabled = view.offset === 0;
    next.disabled = page.nextOffset === null;
  }
  stateSelect.addEventListener("change", () => { view.state = stateSelect.value; view.offset = 0; load(true); });
  sinceSelect.addEventListener("change", () => { view.since = sinceSelect.value; view.offset = 0; load(true); });
  prev.addEventListener("click", () => { view.offset = Math.max(0, view.offset - PAGE); load(true); });
  next.addEventListener("click", () => { view.offset += PAGE; load(true); });
  load(true).catch((error) => (status.textContent = error.message));
  poll(3000, () => (auto.checked ? load() : null));

  return h("section", {},
    h("h1", {}, "Jobs"),
    h("div", { class: "toolbar" },
      h("label", { for: "f-state" }, "State "), stateSelect,
      h("label", { for: "f-since" }, "Submitted "), sinceSelect,
      h("label", {}, auto, " auto-refresh")),
    h("div", { class: "table-wrap" },
      h("table", {},
        h("thead", {}, h("tr", {}, h("th", {}, "Job"), h("th", {}, "State"), h("th", {}, "Tasks"),
          h("th", { class: "hide-narrow" }, "Submitted"), h("th", { class: "hide-narrow" }, "Finished"),
          h("th", {}, "Duration"))),
        body)),
    h("div", { class: "toolbar" }, prev, next, status));
}
