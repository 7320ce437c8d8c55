// A task's log. A task run with the acibatch agent has its whole log in blob storage, per stream and attempt, read
// from an offset in pages of at most 4 MiB: the panel pages through it ("Load more") and follows a running attempt
// by asking from the offset it reached. A task without the agent has only what ACI gives: its live log while the
// container runs, the tail kept when it ended.
import { ApiError, get } from "../api.js";
import { h } from "../dom.js";
import { bytes } from "./taskfiles.js";

export const TAIL_LINES = 200;
// The API's largest page (LOG_PAGE_MAX_BYTES in acibatch/filelimits.py). A JSON page ends at a whole character, so
// a full page may be up to 3 bytes short; a page that long may have more after it.
const PAGE_BYTES = 4 * 1024 * 1024;
const CUT_CHARACTER_MAX = 3;
const FOLLOW_MS = 2000;

const lastLines = (text, count) => {
  const lines = text.split("\n");
  const ended = text.endsWith("\n");
  const kept = lines.slice(-(count + (ended ? 1 : 0)));
  return kept.join("\n");
};

export function logPanel({ base, full, poll }) {
  const log = h("pre", { id: "log", tabindex: 0, "aria-label": "task log" });
  const note = h("p", { class: "muted", id: "log-note" });
  const stream = h("select", { id: "log-stream" }, h("option", { value: "stdout" }, "stdout"), h("option", { value: "stderr" }, "stderr"));
  const attempt = h("select", { id: "log-attempt" });
  const attemptLabel = h("label", {}, "Attempt ", attempt);
  const controls = h("div", { class: "toolbar", id: "log-controls" }, h("label", {}, "Stream ", stream), attemptLabel);
  const more = h("button", { type: "button", id: "log-more" }, "Load more");
  controls.hidden = true;
  attemptLabel.hidden = true;
  more.hidden = true;

  let stored = false; // the log is the agent's stored log (known from the first answer)
  let taskFinished = false;
  let latest = 0; // the latest attempt the API has named
  // The stored log on screen: {attempt, nextOffset, complete, full (its last page was a whole one: more may follow),
  // text (the tail's lines)}.
  let shown = null;
  let generation = 0; // bumped when the stream or attempt changes: an answer for the earlier choice is dropped
  let busy = false;

  const picked = () => (attempt.value ? Number(attempt.value) : null); // null: the latest attempt

  async function read(params) {
    const { body } = await get(`${base}/logs?${new URLSearchParams(params)}`, { fresh: true });
    return body;
  }

  function attemptOptions(count) {
    if (count <= latest) return;
    latest = count;
    const chosen = attempt.value;
    const options = [h("option", { value: "" }, `latest (${latest})`)];
    for (let n = 1; n <= latest; n += 1) options.push(h("option", { value: String(n) }, String(n)));
    attempt.replaceChildren(...options);
    attempt.value = chosen;
    attemptLabel.hidden = latest < 2;
  }

  function describe() {
    const where = `stored log · attempt ${shown.attempt}${latest > 1 ? ` of ${latest}` : ""} · ${stream.value}`;
    let amount = full ? `${bytes(shown.nextOffset)} shown` : `last ${TAIL_LINES} lines`;
    if (shown.nextOffset === 0) amount = "empty so far";
    let state = full ? "whole log" : "attempt ended";
    if (full && shown.full) state = "more to load";
    else if (following()) state = "following the running attempt…";
    note.textContent = `${where} · ${amount} · ${state}`;
    more.hidden = !(full && shown.full);
  }

  // A stored page: the first of a view (`fresh`) or the next one after what is shown.
  function accept(body, fresh) {
    if (picked() === null) attemptOptions(body.attempt);
    const size = body.nextOffset - body.offset;
    if (fresh || !shown) shown = { attempt: body.attempt, text: "" };
    if (full) {
      if (fresh) log.replaceChildren();
      if (body.content) log.append(body.content); // a text node: log bytes are never markup
    } else {
      shown.text = lastLines(shown.text + body.content, TAIL_LINES);
      log.textContent = shown.text;
    }
    // A tail ends where the log ends however long it is; a page read from an offset may stop short of the end.
    const behind = !(fresh && !full) && size >= PAGE_BYTES - CUT_CHARACTER_MAX;
    Object.assign(shown, { nextOffset: body.nextOffset, complete: body.complete, full: behind });
    describe();
  }

  // The log of a task without the agent, as the API has always answered it.
  function acceptAci(body) {
    log.textContent = body.content || "(empty)";
    note.textContent = body.source === "aci" ? "live from the container" : "kept after the container ended";
  }

  // The view from its start: the tail, or the first page, of the chosen stream and attempt.
  async function start() {
    const mine = ++generation;
    busy = true;
    try {
      // `stream` and `attempt` mean something only for a stored log; the API takes them for every task.
      const params = { stream: stream.value };
      if (picked() !== null) params.attempt = picked();
      if (!full) params.tail = TAIL_LINES;
      const body = await read(params);
      if (mine !== generation) return;
      if (body.source !== "blob") return acceptAci(body);
      stored = true;
      controls.hidden = false;
      accept(body, true);
    } catch (error) {
      if (mine !== generation) return;
      shown = null;
      log.textContent = "";
      more.hidden = true;
      note.textContent = error instanceof ApiError ? error.message : String(error);
    } finally {
      if (mine === generation) busy = false;
    }
  }

  // Whether more of the shown log may still come: its attempt runs, or a next attempt may start.
  const following = () => shown && (!shown.complete || (picked() === null && !taskFinished));

  async function next() {
    const mine = generation;
    busy = true;
    try {
      const params = { stream: stream.value, offset: shown.nextOffset };
      if (picked() !== null) params.attempt = picked();
      const body = await read(params);
      if (mine !== generation) return;
      // The latest attempt is no longer the one shown (the task was retried): show the new one from its start.
      if (body.attempt !== shown.attempt) {
        busy = false;
        await start();
        return;
      }
      accept(body, false);
    } catch (error) {
      if (mine === generation) note.textContent = error instanceof ApiError ? error.message : String(error);
    } finally {
      if (mine === generation) busy = false;
    }
  }

  async function follow() {
    if (!stored || busy || !following()) return;
    // Behind by a full page: the whole view waits for "Load more"; the tail jumps to the end again.
    if (shown.full) return full ? undefined : start();
    await next();
  }

  const restart = () => {
    shown = null;
    start();
  };
  stream.addEventListener("change", restart);
  attempt.addEventListener("change", restart);
  more.addEventListener("click", () => {
    if (shown && !busy) next();
  });
  poll(FOLLOW_MS, follow);

  return {
    node: h("div", {}, controls, note, log, more),
    start,
    // The task page's refresh while the task runs: a log without the agent is asked for again (ACI's live log).
    refresh: () => (stored ? undefined : start()),
    task: (task) => {
      const finished = ["Succeeded", "Failed", "Cancelled"].includes(task.state);
      const changed = finished !== taskFinished;
      taskFinished = finished;
      // The note says whether the log may still grow: the task's end can settle that with no new page to read.
      if (changed && stored && shown && !busy) describe();
    },
  };
}
