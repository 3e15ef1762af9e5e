// What the parts of the calls code share: who is signed in, JSON posts to the server (with the
// CSRF token), the toast, and the page's event stream.

export const me = Number(document.body.dataset.userId || 0);
export const ringingEl = document.getElementById("ringing");
const csrfMeta = document.querySelector('meta[name="csrf-token"]');
export const csrf = csrfMeta ? csrfMeta.content : "";

// /calls/<id> and /calls/<id>/<action>, from the URL the server wrote for call 0.
export function callUrl(id, action) {
  const url = ringingEl.dataset.callUrl.replace(/0$/, String(id));
  return action ? url + "/" + action : url;
}

export function say(text) {
  const el = document.getElementById("toast");
  if (!el) return;
  el.textContent = text;
  el.hidden = false;
  setTimeout(() => { el.hidden = true; }, 6000);
}

export async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: {
      Accept: "application/json",
      "Content-Type": "application/json",
      "X-CSRFToken": csrf,
    },
    body: JSON.stringify(body || {}),
  });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || "The server said no (" + response.status + ").");
  return data;
}

export function memberOf(call, userId) {
  return call.members.find((m) => m.user_id === userId) || null;
}

export function isLive(call) {
  return call.status === "ringing" || call.status === "active";
}

// The event stream. htmx's SSE extension owns the EventSource (a new one after a hard
// failure); every one it opens gets our listeners. Modules run before htmx opens it.
const listeners = { call: [], "call-signal": [] };
const sources = new WeakSet();
let streamOpen = false;
const whenOpen = [];
document.addEventListener("htmx:sseOpen", (event) => {
  const source = event.detail.source;
  if (source && !sources.has(source)) {
    sources.add(source);
    for (const name of Object.keys(listeners)) {
      source.addEventListener(name, (e) => {
        const data = JSON.parse(e.data);
        for (const fn of listeners[name]) fn(data);
      });
    }
  }
  streamOpen = true;
  for (const fn of whenOpen.splice(0)) fn();
});

// `call` events carry a call as /calls/<id> shows it; `call-signal` ones a peer's signal.
export function on(name, fn) {
  listeners[name].push(fn);
}

export function onStreamOpen(fn) {
  if (streamOpen) fn(); else whenOpen.push(fn);
}
