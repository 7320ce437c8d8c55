// Small DOM helpers: every value goes in as text, never as markup.
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    // Through the CSSOM: the page's Content-Security-Policy refuses inline style attributes.
    else if (name === "style") Object.assign(node.style, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const STATES = ["Queued", "Running", "Succeeded", "Failed", "Cancelled"];
export const LETTERS = { Q: "Queued", R: "Running", S: "Succeeded", F: "Failed", C: "Cancelled" };

export function colours() {
  const style = getComputedStyle(document.documentElement);
  return Object.fromEntries(STATES.map((s) => [s, style.getPropertyValue(`--${s.toLowerCase()}`).trim()]));
}

export const badge = (state) => h("span", { class: `badge s-${state}` }, state);

export function countsBar(counts, total) {
  const sum = total || STATES.reduce((n, s) => n + (counts[s] || 0), 0) || 1;
  const label = STATES.filter((s) => counts[s]).map((s) => `${counts[s]} ${s.toLowerCase()}`).join(", ") || "no tasks";
  return h(
    "div",
    { class: "bar", role: "img", "aria-label": label, title: label },
    STATES.filter((s) => counts[s]).map((s) => h("span", { class: `s-${s}`, style: { width: `${(100 * counts[s]) / sum}%` } })),
  );
}

export function countsList(counts) {
  return h("div", { class: "counts" }, STATES.map((s) => h("span", {}, badge(s), ` ${counts[s] || 0}`)));
}

export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

export function duration(fromIso, toIso) {
  if (!fromIso) return "—";
  const from = new Date(fromIso).getTime();
  const to = toIso ? new Date(toIso).getTime() : Date.now();
  if (Number.isNaN(from) || Number.isNaN(to)) return "—";
  let seconds = Math.max(0, Math.round((to - from) / 1000));
  const hours = Math.floor(seconds / 3600);
  seconds -= hours * 3600;
  const minutes = Math.floor(seconds / 60);
  seconds -= minutes * 60;
  return hours ? `${hours}h ${minutes}m ${seconds}s` : minutes ? `${minutes}m ${seconds}s` : `${seconds}s`;
}

export function announce(text) {
  document.getElementById("announce").textContent = text;
}
