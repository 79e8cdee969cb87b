// The one way the page talks to the service: `fetch` against the JSON API that
// /openapi.json documents. Every request the page makes (except the panel's own polls)
// is remembered with its status and `X-Cache` header, for the live panel.

/** How many requests the panel lists. */
export const LOG_SIZE = 8;

const log = [];
const listeners = new Set();

/** A 4xx or 5xx answer, carrying the API's JSON error body (`{error, field}`). */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error ?? `HTTP ${status}`);
    this.status = status;
    this.field = body?.field ?? null;
  }

  /** "422 · age: field `age` verification failed…", for a person. */
  describe() {
    const where = this.field ? `${this.field}: ` : '';
    return this.status ? `${this.status} · ${where}${this.message}` : this.message;
  }
}

/**
 * Sends `method path` with an optional JSON `body`; resolves to `{status, json, xCache}`
 * on 2xx, rejects with an `ApiError` otherwise. `quiet` keeps it out of the log.
 */
export async function api(method, path, body, { quiet = false } = {}) {
  const init = { method, headers: { accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    if (!quiet) remember({ method, path, status: 0, xCache: null });
    throw new ApiError(0, { error: 'the service does not answer' });
  }
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = { error: text.slice(0, 200) };
  }
  const xCache = res.headers.get('x-cache');
  if (!quiet) remember({ method, path, status: res.status, xCache });
  if (!res.ok) throw new ApiError(res.status, json);
  return { status: res.status, json, xCache };
}

/** Calls `fn(entries)`, newest first, now and after every request. */
export function onRequests(fn) {
  listeners.add(fn);
  fn(log.slice());
}

function remember(entry) {
  log.unshift({ ...entry, at: new Date() });
  log.length = Math.min(log.length, LOG_SIZE);
  for (const fn of listeners) fn(log.slice());
}
