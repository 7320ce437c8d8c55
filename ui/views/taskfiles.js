// A task's output files, as its final attempt's result.json lists them: name, size, sha256 and a download.
import { ApiError, enc, getBytes, get } from "../api.js";
import { h } from "../dom.js";

const UNITS = ["B", "KiB", "MiB", "GiB"];

export function bytes(count) {
  let value = Number(count) || 0;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

async function sha256Hex(blob) {
  // crypto.subtle exists only in secure contexts (https, or http to this machine): without it nothing is checked.
  if (!globalThis.crypto || !crypto.subtle) return null;
  const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

// Hand the bytes to the browser's download: a link to a blob: URL, clicked, then released.
function save(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export function outputsPanel(base) {
  const note = h("p", { class: "muted", id: "files-note" }, "loading…");
  const rows = h("tbody");
  const table = h("table", { id: "files" },
    h("thead", {}, h("tr", {}, h("th", {}, "File"), h("th", {}, "Size"), h("th", { class: "hide-narrow" }, "SHA-256"), h("th", {}, ""))),
    rows);
  table.hidden = true;

  async function download(item, button, status) {
    button.disabled = true;
    status.textContent = "downloading…";
    try {
      // Each segment escaped on its own: the route takes the name's slashes as they are.
      const blob = await getBytes(`${base}/files/${String(item.name).split("/").map(enc).join("/")}`);
      const digest = await sha256Hex(blob);
      if (digest !== null && item.sha256 && digest !== item.sha256) {
        status.textContent = "the bytes received do not match the listed sha256; try again";
        return;
      }
      save(blob, String(item.name).split("/").pop());
      status.textContent = digest === null ? "saved" : "saved, sha256 checked";
    } catch (error) {
      status.textContent = error.message;
    } finally {
      button.disabled = false;
    }
  }

  function row(item) {
    const status = h("span", { class: "muted", role: "status" });
    let action;
    if (item.destination === "custom") {
      action = h("span", { class: "muted" }, "in your own container");
    } else {
      const button = h("button", { type: "button", class: "download" }, "Download");
      button.addEventListener("click", () => download(item, button, status));
      action = h("span", {}, button, " ", status);
    }
    const digest = String(item.sha256 || "");
    return h("tr", { "data-file": item.file },
      h("td", {}, item.file, h("div", { class: "muted small" }, item.name)),
      h("td", { "data-size": item.size }, bytes(item.size)),
      h("td", { class: "hide-narrow mono", title: digest }, digest.slice(0, 12)),
      h("td", {}, action));
  }

  async function load() {
    try {
      const { body: listing } = await get(`${base}/files`, { fresh: true });
      const files = listing.files || [];
      rows.replaceChildren(...files.map(row));
      table.hidden = files.length === 0;
      note.textContent = files.length ? `from attempt ${listing.attempt}` : `attempt ${listing.attempt} uploaded no output files`;
      node.hidden = false;
    } catch (error) {
      rows.replaceChildren();
      table.hidden = true;
      note.textContent = error instanceof ApiError ? error.message : String(error);
      // A deployment without blob storage has no files for any task: the section would only say so every time.
      node.hidden = error instanceof ApiError && error.code === "StorageNotConfigured";
    }
  }

  const node = h("section", { id: "outputs", "aria-label": "output files" },
    h("h2", {}, "Output files"), note, h("div", { class: "table-wrap" }, table));
  return { node, load };
}
