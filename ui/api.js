// The JSON API as the dashboard uses it: the key from sessionStorage, ETag revalidation on every read.
const KEY = "acibatch.key";
const API = new URL("..", document.baseURI).pathname.replace(/\/$/, ""); // /api, whatever the route prefix

export class ApiError extends Error {
  constructor(status, message, code = null) {
    super(message);
    this.status = status;
    this.code = code; // the API's error code (e.g. FilesNotAvailable), when the answer had one
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

function errorOf(status, body) {
  const error = body && body.error ? body.error : null;
  return new ApiError(status, error ? error.message : `HTTP ${status}`, error ? error.code : null);
}

function signedOut() {
  session.clear();
  window.dispatchEvent(new Event("acibatch:signedout"));
}

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
  if (response.status === 401 && !probe) signedOut();
  if (!response.ok) throw errorOf(response.status, body);
  const etag = response.headers.get("ETag");
  if (method === "GET" && etag) kept.set(path, { etag, body });
  return { body, changed: true };
}

export const get = (path, options) => call("GET", path, options);

// A file's bytes (an output download). The key goes in a header, which a plain link cannot send, so the page
// fetches the bytes itself and hands the browser a blob: URL to save.
export async function getBytes(path) {
  const headers = { Authorization: `Bearer ${session.key()}` };
  const response = await fetch(`${API}/${path}`, { headers, cache: "no-store" });
  if (response.ok) return response.blob();
  if (response.status === 401) signedOut();
  let body = null;
  try {
    body = JSON.parse(await response.text());
  } catch {
    body = null;
  }
  throw errorOf(response.status, body);
}

export const post = (path) => call("POST", path);
export const forget = () => kept.clear();
export const enc = encodeURIComponent;
