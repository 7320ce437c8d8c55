// The JSON API as the dashboard uses it: the key from sessionStorage, ETag revalidation on every read.
const KEY = "acibatch.key";
const API = new URL("..", document.baseURI).pathname.replace(/\/$/, ""); // /api, whatever the route prefix

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export const session = {
  key: () => sessionStorage.getItem(KEY),
  set: (key) => sessionStorage.setItem(KEY, key),
  clear: () => sessionStorage.removeItem(KEY),
  // Tenant keys are acb_<tenant>_<secret>; anything else can only be the admin key.
  tenant: () => {
    const match = /^acb_([a-z0-9-]+)_/.exec(session.key() || "");
    return match ? match[1] : null;
  },
};

const kept = new Map(); // path -> {etag, body}: what a 304 means

// `probe`: a sign-in's check of a key not yet accepted, whose 401 is the form's to show.
async function call(method, path, { fresh = false, probe = false } = {}) {
  const headers = { Authorization: `Bearer ${session.key()}` };
  const cached = kept.get(path);
  if (method === "GET" && cached && !fresh) headers["If-None-Match"] = cached.etag;
  const response = await fetch(`${API}/${path}`, { method, headers, cache: "no-store" });
  if (response.status === 304 && cached) return { body: cached.body, changed: false };
  let body = null;
  const text = await response.text();
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (response.status === 401 && !probe) {
    session.clear();
    window.dispatchEvent(new Event("acibatch:signedout"));
  }
  if (!response.ok) {
    const message = body && body.error ? body.error.message : `HTTP ${response.status}`;
    throw new ApiError(response.status, message);
  }
  const etag = response.headers.get("ETag");
  if (method === "GET" && etag) kept.set(path, { etag, body });
  return { body, changed: true };
}

export const get = (path, options) => call("GET", path, options);
export const post = (path) => call("POST", path);
export const forget = () => kept.clear();
export const enc = encodeURIComponent;
