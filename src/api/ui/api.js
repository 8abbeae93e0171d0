// Talking to the node that served the page: JSON reads with the token as a bearer header, and
// URLs for EventSource, which cannot send headers, with the token as ?access_token=.
// The token lives in sessionStorage only: it is gone when the browser tab is closed.

const TOKEN_KEY = 'yakt.console.token';

/** The token the user gave for this browser session ('' when none). */
export function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

/** Keeps (or, with '', forgets) the token for this browser session. */
export function setToken(value) {
  try {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage refused (private mode quotas): the token then lasts until the page is left.
  }
  window.dispatchEvent(new Event('yakt-token'));
}

/**
 * GET a JSON path relative to the node's root. Resolves to {status, body}; status 0 when the
 * node did not answer at all.
 */
export async function getJson(path) {
  const headers = { Accept: 'application/json' };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  let resp;
  try {
    resp = await fetch(`../${path}`, { headers, cache: 'no-store' });
  } catch (e) {
    return { status: 0, body: null, error: String(e) };
  }
  let body = null;
  try {
    body = await resp.json();
  } catch {
    body = null;
  }
  return { status: resp.status, body };
}

/** A `/stream` or `/fetch` URL with the given query, and the token when there is one. */
export function readUrl(endpoint, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const t = token();
  if (t) q.set('access_token', t);
  return `../${endpoint}?${q}`;
}
