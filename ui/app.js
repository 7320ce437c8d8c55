// The dashboard: sign-in, then Jobs / Job / Task / Tenants pages chosen by the URL's #fragment.
import { session, forget } from "./api.js";
import { signIn } from "./views/signin.js";
import { jobsPage } from "./views/jobs.js";
import { jobPage } from "./views/job.js";
import { taskPage } from "./views/task.js";
import { tenantsPage } from "./views/tenants.js";

const main = document.getElementById("main");
let stopCurrent = () => {};

// A page registers its pollers here; leaving the page stops them. Polls run one after another (never
// overlapping) and pause while the tab is hidden.
function pollerFor(route) {
  const timers = new Set();
  let live = true;
  stopCurrent = () => {
    live = false;
    timers.forEach(clearTimeout);
  };
  return (ms, fn) => {
    const tick = async () => {
      if (!live) return;
      if (!document.hidden) {
        try {
          await fn();
        } catch (error) {
          console.warn(`refresh of ${route} failed`, error);
        }
      }
      if (live) timers.add(setTimeout(tick, ms));
    };
    timers.add(setTimeout(tick, ms));
  };
}

function render() {
  stopCurrent();
  const route = location.hash.replace(/^#\/?/, "");
  const parts = route.split("/").map((part) => {
    try {
      return decodeURIComponent(part);
    } catch {
      return part; // a malformed %-escape names nothing; the API answers 404 for it
    }
  });
  const signedIn = Boolean(session.key());
  const tenant = session.tenant();
  document.getElementById("signout").hidden = !signedIn;
  document.getElementById("who").textContent = signedIn ? (tenant ? `tenant ${tenant}` : "admin") : "";
  document.querySelector('[data-nav="jobs"]').hidden = !signedIn || !tenant;
  document.querySelector('[data-nav="tenants"]').hidden = !signedIn;
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === parts[0]) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  main.replaceChildren();
  if (!signedIn) {
    // After sign-in, stay on a page the link asked for; else go to the key's home page.
    main.append(signIn(() => {
      const home = session.tenant() ? "#/jobs" : "#/tenants";
      if (route || location.hash === home) render();
      else location.hash = home;
    }));
    return;
  }
  const poll = pollerFor(route);
  let page;
  if (parts[0] === "tenants") page = tenantsPage({ poll });
  else if (!tenant) page = tenantsPage({ poll }); // the admin key reads tenants; jobs belong to tenants
  else if (parts[0] === "jobs" && parts[1] && parts[2] === "tasks" && parts[3]) {
    page = taskPage({ jobId: parts[1], taskId: parts[3], full: parts[4] === "log", poll });
  } else if (parts[0] === "jobs" && parts[1]) page = jobPage({ jobId: parts[1], poll });
  else page = jobsPage({ poll });
  main.append(page);
  const heading = main.querySelector("h1");
  if (heading) document.title = `${heading.textContent} · acibatch`;
}

document.getElementById("signout").addEventListener("click", () => {
  session.clear();
  forget();
  location.hash = "#/";
  render();
});
// A key that stops working (rotated, tenant removed) signs the page out rather than failing every poll.
window.addEventListener("acibatch:signedout", () => {
  forget();
  render();
});
window.addEventListener("hashchange", () => {
  render();
  main.focus();
});
render();
