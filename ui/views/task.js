import { ApiError, enc, get } from "../api.js";
import { badge, h, when } from "../dom.js";
import { logPanel, TAIL_LINES } from "./tasklog.js";
import { outputsPanel } from "./taskfiles.js";

function timeline(task) {
  // The record keeps when the current attempt started and when the task ended; the steps between are shown as
  // reached or not, with the reason a queued task waits.
  const steps = [
    { name: "queued", done: task.state !== "Queued" || task.attempts > 0, note: task.pendingReason ? `waiting: ${task.pendingReason}` : "" },
    { name: "running", done: Boolean(task.startedAt), note: task.startedAt ? when(task.startedAt) : "" },
    { name: task.finishedAt ? task.state.toLowerCase() : "done", done: Boolean(task.finishedAt), note: task.finishedAt ? when(task.finishedAt) : "" },
  ];
  const current = steps.findIndex((step) => !step.done);
  return h("ol", { class: "timeline", "aria-label": "task timeline" },
    steps.map((step, i) => h("li", { class: i === current ? "current" : step.done ? "done" : "", "aria-current": i === current ? "step" : null },
      step.name, step.note ? h("div", { class: "muted" }, step.note) : null)));
}

const json = (value) => (value === null || value === undefined ? "—" : JSON.stringify(value, null, 2));

// One task: state, attempts, times, exit code, error, result, progress, output files and its log.
export function taskPage({ jobId, taskId, full, poll }) {
  const base = `jobs/${enc(jobId)}/tasks/${enc(taskId)}`;
  const head = h("div", { class: "toolbar" });
  const facts = h("dl", { class: "facts" });
  const steps = h("div");
  const result = h("pre", { id: "result" });
  const progress = h("pre", { id: "progress" });
  const logs = logPanel({ base, full, poll });
  const outputs = outputsPanel(base);
  const errorLine = h("p", { class: "error", role: "alert" });
  let finished = false;
  let shown = false;

  async function loadTask() {
    const { body: task, changed } = await get(base);
    if (!changed && shown) return; // a 304 on the first load still has to draw the kept body
    shown = true;
    head.replaceChildren(badge(task.state), task.pendingReason ? h("span", { id: "pending" }, `waiting: ${task.pendingReason}`) : "");
    facts.replaceChildren(
      h("dt", {}, "Attempts"), h("dd", {}, String(task.attempts)),
      h("dt", {}, "Exit code"), h("dd", {}, task.exitCode ?? "—"),
      h("dt", {}, "Error"), h("dd", { id: "task-error" }, task.error || "—"),
      // replaceChildren takes nodes only (null would show as text): the row is spread in when there is one.
      ...(task.failureCategory ? [h("dt", {}, "Failure"), h("dd", { id: "failure-category" }, task.failureCategory)] : []),
      h("dt", {}, "Container group"), h("dd", {}, task.groupName || "—"),
      h("dt", {}, "Started"), h("dd", {}, when(task.startedAt)),
      h("dt", {}, "Finished"), h("dd", {}, when(task.finishedAt)),
    );
    steps.replaceChildren(timeline(task));
    result.textContent = json(task.result);
    progress.textContent = json(task.progress);
    const wasFinished = finished;
    finished = ["Succeeded", "Failed", "Cancelled"].includes(task.state);
    logs.task(task);
    // The outputs are listed once the attempt has ended; a task seen running is listed again when it ends.
    if (finished && !wasFinished) outputs.load();
  }

  const section = h("section", {},
    h("p", {}, h("a", { href: `#/jobs/${enc(jobId)}` }, `← Job ${jobId}`)),
    h("h1", {}, `Task ${taskId}`),
    head, errorLine, steps, facts,
    h("h2", {}, "Result"), result,
    h("h2", {}, "Progress"), progress,
    outputs.node,
    h("h2", {}, full ? "Log" : `Log (last ${TAIL_LINES} lines)`), logs.node,
    full ? h("a", { href: `#/jobs/${enc(jobId)}/tasks/${enc(taskId)}` }, "Show the tail only")
      : h("a", { href: `#/jobs/${enc(jobId)}/tasks/${enc(taskId)}/log`, id: "whole-log" }, "Show the whole log"));
  loadTask()
    .then(() => (finished ? undefined : outputs.load())) // a finished task's files were asked for already
    .then(logs.start)
    .catch((error) => (errorLine.textContent = error instanceof ApiError && error.status === 404 ? `no task '${taskId}' in job '${jobId}' for this key` : error.message));
  poll(3000, async () => {
    if (finished) return;
    await loadTask();
    await logs.refresh();
  });
  return section;
}
