// The incoming-call box on every page, and its ring. The boxes are the server's own
// calls/_ringing.html: when the stream says a call rings for us, the page asks GET
// /calls/ringing for them (each carries this viewer's CSRF token, so they are never broadcast).

import { callUrl, isLive, me, memberOf, on, post, ringingEl, say } from "./common.js";

// Two tones, two seconds on, four off. Browsers allow sound only once the person has
// interacted with the page, so until then the box rings silently and says so.
const ringer = {
  ctx: null,
  timer: null,
  context() {
    if (!this.ctx && window.AudioContext) this.ctx = new AudioContext();
    return this.ctx;
  },
  burst() {
    const ctx = this.ctx;
    if (!ctx || ctx.state !== "running") {
      ringingEl.dataset.sound = "blocked";
      return;
    }
    ringingEl.dataset.sound = "on";
    const t = ctx.currentTime;
    for (const frequency of [440, 480]) {
      const tone = ctx.createOscillator();
      const gain = ctx.createGain();
      tone.frequency.value = frequency;
      gain.gain.setValueAtTime(0.0001, t);
      gain.gain.exponentialRampToValueAtTime(0.08, t + 0.05);
      gain.gain.setValueAtTime(0.08, t + 1.9);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + 2);
      tone.connect(gain).connect(ctx.destination);
      tone.start(t);
      tone.stop(t + 2.05);
    }
  },
  start() {
    if (this.timer) return;
    const ctx = this.context();
    if (ctx) ctx.resume().catch(() => {}).then(() => { if (this.timer) this.burst(); });
    this.burst();
    this.timer = setInterval(() => this.burst(), 4000);
  },
  stop() {
    clearInterval(this.timer);
    this.timer = null;
    delete ringingEl.dataset.sound;
  },
};

function boxes() {
  return ringingEl.querySelectorAll(".ringing-call");
}

// The server marks an unanswered call missed when it has rung CALL_RING_SECONDS, and the
// stream then takes its box away. A server restarted meanwhile may be late to do so, so the
// page also takes a box away itself at its data-rings-until (by the server's clock).
let serverSkew = 0; // set by startRinging: pages without the box import this module too
let ringTimer = null;
function dropExpired() {
  clearTimeout(ringTimer);
  ringTimer = null;
  const now = Date.now() + serverSkew;
  let next = Infinity;
  for (const box of boxes()) {
    const deadline = Date.parse(box.dataset.ringsUntil);
    if (isNaN(deadline)) continue;
    if (deadline <= now) box.remove();
    else next = Math.min(next, deadline);
  }
  // A moment after the server's own timer, which usually gets there first.
  if (next < Infinity) ringTimer = setTimeout(refresh, next - now + 1000);
}

const pageTitle = document.title;
function refresh() {
  dropExpired();
  if (boxes().length) {
    ringer.start();
    document.title = "Incoming call · " + pageTitle;
  } else {
    ringer.stop();
    document.title = pageTitle;
  }
}

// Only the answer to the newest request counts: an older one may list a call that has
// stopped ringing since.
let asked = 0;
let pending = false;
async function reload() {
  const ask = ++asked;
  pending = true;
  try {
    const response = await fetch(ringingEl.dataset.ringingUrl, {
      credentials: "same-origin",
      headers: { Accept: "text/html" },
    });
    if (!response.ok || ask !== asked) return;
    const html = await response.text();
    if (ask !== asked) return;
    place(html);
  } catch (error) {
    console.warn("ringing calls not loaded:", error.message);
  } finally {
    if (ask === asked) pending = false;
  }
}

// Keeps the boxes already shown (and the focus in them), adds the new ones, drops the rest.
function place(html) {
  const template = document.createElement("template");
  template.innerHTML = html;
  const fresh = new Map(Array.from(template.content.querySelectorAll(".ringing-call"), (b) => [b.id, b]));
  for (const box of boxes()) {
    if (fresh.has(box.id)) fresh.delete(box.id); else box.remove();
  }
  const sound = ringingEl.querySelector(".ringing-sound");
  for (const box of fresh.values()) ringingEl.insertBefore(box, sound);
  refresh();
}

function onCall(call) {
  const mine = memberOf(call, me);
  const forMe = isLive(call) && mine && mine.state === "invited";
  const box = document.getElementById("ringing-" + call.id);
  if (!forMe && box) {
    box.remove();
    refresh();
  }
  // A request under way may predate this event: ask again so the newest answer wins.
  if ((forMe && !box) || pending) reload();
}

// Answer and decline without leaving the page until the call page is needed.
async function onSubmit(event) {
  const form = event.target;
  const box = form.closest(".ringing-call");
  if (!box) return;
  event.preventDefault();
  const id = Number(box.dataset.callId);
  const answering = form.classList.contains("ringing-answer");
  try {
    await post(form.action);
    if (answering) location.assign(callUrl(id));
  } catch (error) {
    say(error.message);
  }
  box.remove();
  refresh();
}

// Answering from a call box (the conversation page's live call) goes to the call page too,
// where the sound and video are, once the stream says we are in. (The stream's copy of the
// box can replace the form before its own answer comes back, so that answer is not waited
// for.)
const answeringIds = new Set();
function onBeforeRequest(event) {
  const form = event.detail.elt;
  if (!form.matches || !form.matches(".call-answer") || document.getElementById("call-room")) return;
  const box = form.closest(".call");
  if (box) answeringIds.add(Number(box.dataset.callId));
}
function onAnswered(call) {
  const mine = memberOf(call, me);
  if (answeringIds.has(call.id) && isLive(call) && mine && mine.state === "joined") {
    answeringIds.delete(call.id);
    location.assign(callUrl(call.id));
  }
}

export function startRinging() {
  serverSkew = Date.parse(ringingEl.dataset.now) - Date.now() || 0;
  for (const type of ["pointerdown", "keydown"]) {
    document.addEventListener(type, () => {
      const ctx = ringer.context();
      if (ctx && ctx.state !== "running") ctx.resume().catch(() => {});
    }, { capture: true, passive: true });
  }
  ringingEl.addEventListener("submit", onSubmit);
  document.addEventListener("htmx:beforeRequest", onBeforeRequest);
  on("call", onCall);
  on("call", onAnswered);
  refresh();
}
