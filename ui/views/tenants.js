import { get } from "../api.js";
import { h } from "../dom.js";

const PRICES = "acibatch.prices"; // not a secret: kept across sessions in localStorage
const SAMPLES = "acibatch.coreSamples";
const HOUR_MS = 3600 * 1000;
// ACI Linux pay-as-you-go list prices (USD) per vCPU-second and per GB-second; regions differ, so they are editable.
const DEFAULT_PRICES = { core: 0.0000135, gb: 0.0000015 };

function loadPrices() {
  try {
    return { ...DEFAULT_PRICES, ...JSON.parse(localStorage.getItem(PRICES) || "{}") };
  } catch {
    return { ...DEFAULT_PRICES };
  }
}

// Running cores per tenant as this browser saw them, for the last hour (the API keeps no history of it).
function recordSample(tenants) {
  const now = Date.now();
  let samples = {};
  try {
    samples = JSON.parse(sessionStorage.getItem(SAMPLES) || "{}");
  } catch { /* start afresh */ }
  for (const t of tenants) {
    const series = (samples[t.tenant] || []).filter(([at]) => now - at <= HOUR_MS);
    series.push([now, t.running.cores]);
    samples[t.tenant] = series;
  }
  sessionStorage.setItem(SAMPLES, JSON.stringify(samples));
  return samples;
}

function chart(series, max) {
  const canvas = h("canvas", { class: "chart", role: "img" });
  const last = series.length ? series[series.length - 1][1] : 0;
  canvas.setAttribute("aria-label", `running cores over the last hour, now ${last}`);
  requestAnimationFrame(() => {
    const dpr = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 280;
    const height = canvas.clientHeight || 60;
    canvas.width = width * dpr;
    canvas.height = height * dpr;
    const ctx = canvas.getContext("2d");
    ctx.scale(dpr, dpr);
    const style = getComputedStyle(document.documentElement);
    ctx.strokeStyle = style.getPropertyValue("--line").trim();
    ctx.strokeRect(0.5, 0.5, width - 1, height - 1);
    if (!series.length) return;
    const now = Date.now();
    const top = Math.max(max, 1);
    ctx.strokeStyle = style.getPropertyValue("--running").trim();
    ctx.lineWidth = 2;
    ctx.beginPath();
    series.forEach(([at, cores], i) => {
      const x = width - ((now - at) / HOUR_MS) * width;
      const y = height - 4 - (cores / top) * (height - 8);
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
    // Each sample as a dot too, so the first one shows before there is a line.
    ctx.fillStyle = ctx.strokeStyle;
    for (const [at, cores] of series) {
      ctx.fillRect(width - ((now - at) / HOUR_MS) * width - 2, height - 4 - (cores / top) * (height - 8) - 2, 4, 4);
    }
  });
  return canvas;
}

const money = (value) => `$${value.toFixed(value < 1 ? 4 : 2)}`;

// Tenants: quota, running and queued work, usage and its estimated cost, running cores over the last hour.
export function tenantsPage({ poll }) {
  const prices = loadPrices();
  const cards = h("div", { class: "cards" });
  const status = h("p", { class: "muted", "aria-live": "polite" });
  let latest = null;
  const priceInput = (name, label) => {
    const input = h("input", { id: `price-${name}`, type: "number", min: 0, step: "any", value: prices[name] });
    input.addEventListener("change", () => {
      const value = Number(input.value);
      if (Number.isFinite(value) && value >= 0) {
        prices[name] = value;
        localStorage.setItem(PRICES, JSON.stringify(prices));
        if (latest) draw(latest);
      }
    });
    return [h("label", { for: `price-${name}` }, label), input];
  };

  function draw(body) {
    const samples = recordSample(body.tenants);
    cards.replaceChildren(...body.tenants.map((t) => {
      const cost = t.usage.coreSeconds * prices.core + t.usage.gbSeconds * prices.gb;
      const series = samples[t.tenant] || [];
      return h("article", { class: "card", "data-tenant": t.tenant },
        h("h2", {}, t.tenant),
        h("dl", { class: "facts" },
          h("dt", {}, "Quota"), h("dd", {}, `${t.quota.maxGroups} groups, ${t.quota.maxCores} cores, ${t.quota.maxMemoryGb} GB, weight ${t.quota.weight}`),
          h("dt", {}, "Running"), h("dd", {}, `${t.running.groups} groups, ${t.running.cores} cores, ${t.running.memoryGb} GB`),
          h("dt", {}, "Queued"), h("dd", {}, `${t.queued} tasks`),
          h("dt", {}, "Usage"), h("dd", {}, `${t.usage.coreSeconds} core-s, ${t.usage.gbSeconds} GB-s`),
          h("dt", {}, "Estimated cost"), h("dd", { class: "cost" }, money(cost)),
          h("dt", {}, "Tasks"), h("dd", {}, Object.entries(t.usage.tasks).map(([k, v]) => `${v} ${k}`).join(", ")),
          h("dt", {}, "Jobs"), h("dd", {}, String(t.jobs))),
        h("p", { class: "muted" }, "Running cores, last hour (sampled while this page is open)"),
        chart(series, t.quota.maxCores));
    }));
    status.textContent = `${body.total} tenant(s)`;
  }

  async function load() {
    const { body } = await get("dashboard/tenants?limit=200");
    latest = body;
    draw(body); // redrawn on every poll: the chart gains a sample even when nothing else changed
  }
  load().catch((error) => (status.textContent = error.message));
  poll(5000, load);
  return h("section", {},
    h("h1", {}, "Tenants"),
    h("div", { class: "prices toolbar" }, h("span", {}, "Prices (USD):"),
      ...priceInput("core", "per vCPU-second"), ...priceInput("gb", "per GB-second")),
    status, cards);
}
