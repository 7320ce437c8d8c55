import { ApiError, get, session } from "../api.js";
import { h } from "../dom.js";

// Sign-in with a tenant key or the admin key. The key is checked against the API, then kept in sessionStorage
// only: it goes when the tab closes, and is never written anywhere else.
export function signIn(done) {
  const input = h("input", { id: "key", type: "password", autocomplete: "off", required: true, spellcheck: "false" });
  const message = h("p", { class: "error", role: "alert" });
  const form = h(
    "form",
    { class: "signin" },
    h("h1", {}, "Sign in"),
    h("p", { class: "muted" }, "Use your tenant key (acb_…) to see your jobs, or the admin key to see tenants."),
    h("label", { for: "key" }, "API key"),
    input,
    h("button", { type: "submit" }, "Sign in"),
    message,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.textContent = "";
    session.set(input.value.trim());
    try {
      await get("dashboard/tenants?limit=1", { fresh: true, probe: true });
      done();
    } catch (error) {
      session.clear();
      message.textContent = error instanceof ApiError ? error.message : `cannot reach the API: ${error.message}`;
    }
  });
  queueMicrotask(() => input.focus());
  return form;
}
