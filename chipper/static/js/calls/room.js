// The call page: a tile for each person in the call, the status line and timer, and the
// controls (mute, camera, share screen, hang up). What the page's plain forms do without
// JavaScript, this does with sound and video. Leaving the page hangs up.

import { csrf, isLive, me, memberOf, on, onStreamOpen, post } from "./common.js";
import { LocalMedia } from "./media.js";
import { Mesh } from "./mesh.js";

const TILE_STATES = {
  new: "connecting",
  connecting: "connecting",
  connected: "",
  disconnected: "reconnecting",
  failed: "connection failed",
  closed: "",
};

export function room(el) {
  let call = JSON.parse(el.dataset.call);
  const clockSkew = Date.parse(el.dataset.now) - Date.now();
  const stage = el.querySelector(".call-stage");
  let started = false;
  let leaving = false;
  let elsewhere = false;

  const media = new LocalMedia(note);
  const mesh = new Mesh({
    me,
    iceServers: JSON.parse(el.dataset.iceServers || "[]"),
    media,
    hooks: {
      // Once we hang up we are no longer in the call: the server would refuse it.
      signal: (to, type, data) => (leaving ? null : post(el.dataset.signalUrl, { to, type, data })),
      track: showTrack,
      state: (userId, state) => {
        setTileState(userId, TILE_STATES[state]);
        tile(userId).dataset.connection = state;
        refreshStatus();
      },
      media: (userId, data) => {
        const figure = tile(userId);
        figure.dataset.audio = data.audio ? "on" : "off";
        figure.dataset.camera = data.video || data.screen ? "on" : "off";
        figure.classList.toggle("tile-screen", !!data.screen);
        showVideo(figure);
      },
    },
  });

  el.hidden = false;
  if (!media.canShare()) el.querySelector('[data-action="screen"]').hidden = true;

  function note(text) {
    const p = el.querySelector(".call-note");
    p.textContent = text || "";
    p.hidden = !text;
  }

  function nameOf(userId) {
    const member = memberOf(call, userId);
    return member ? member.name : "Someone";
  }

  function findTile(userId) {
    return stage.querySelector('.tile[data-user-id="' + userId + '"]');
  }

  function tile(userId) {
    const existing = findTile(userId);
    if (existing) return existing;
    const figure = document.createElement("figure");
    figure.className = "tile" + (userId === me ? " tile-me" : "");
    figure.dataset.userId = userId;
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    if (userId === me) video.muted = true;
    video.addEventListener("resize", () => showVideo(figure));
    const avatar = document.createElement("span");
    avatar.className = "avatar";
    avatar.setAttribute("aria-hidden", "true");
    const member = memberOf(call, userId);
    if (member && member.avatar) {
      const picture = document.createElement("img");
      picture.src = member.avatar;
      picture.alt = "";
      avatar.append(picture);
    } else {
      avatar.textContent = nameOf(userId).charAt(0).toUpperCase();
    }
    const caption = document.createElement("figcaption");
    const name = document.createElement("span");
    name.className = "tile-name";
    name.textContent = userId === me ? "You" : nameOf(userId);
    const state = document.createElement("span");
    state.className = "tile-state";
    caption.append(name, state);
    figure.append(video, avatar, caption);
    if (userId === me) stage.append(figure); else stage.insertBefore(figure, stage.querySelector(".tile-me"));
    countTiles();
    return figure;
  }

  // Two people: the other fills the stage and you are a small picture in its corner.
  function countTiles() {
    stage.dataset.count = stage.querySelectorAll(".tile").length;
  }

  // A tile shows its video while a live, unmuted video track plays; otherwise the avatar.
  function showVideo(figure) {
    const video = figure.querySelector("video");
    const stream = video.srcObject;
    const live = !!stream && stream.getVideoTracks().some((t) => t.readyState === "live" && !t.muted && t.enabled);
    const sized = figure.dataset.userId == me || video.videoWidth > 0;
    figure.classList.toggle("has-video", live && sized && figure.dataset.camera !== "off");
  }

  function showTrack(userId, event) {
    const figure = tile(userId);
    const video = figure.querySelector("video");
    const stream = event.streams[0] || video.srcObject || new MediaStream();
    if (!event.streams[0]) stream.addTrack(event.track);
    if (video.srcObject !== stream) video.srcObject = stream;
    event.track.onmute = event.track.onunmute = event.track.onended = () => showVideo(figure);
    showVideo(figure);
  }

  function setTileState(userId, text) {
    tile(userId).querySelector(".tile-state").textContent = text ? " · " + text : "";
  }

  function showLocal() {
    const figure = tile(me);
    const video = figure.querySelector("video");
    video.srcObject = new MediaStream(media.video ? [media.video] : []);
    figure.classList.toggle("tile-screen", !!media.screen);
    figure.dataset.camera = media.video ? "on" : "off";
    showVideo(figure);
  }

  function disconnect(userId) {
    mesh.disconnect(userId);
    const figure = findTile(userId);
    if (figure) figure.remove();
    countTiles();
  }

  // One tab per browser runs the call: a second one would answer the same signals.
  function start() {
    if (started || elsewhere) return;
    if (!navigator.locks) return begin();
    elsewhere = true; // until the lock says otherwise
    navigator.locks.request("chipper-call-" + call.id, { ifAvailable: true }, (lock) => {
      if (!lock) {
        el.dataset.phase = "elsewhere";
        note("This call is open in another tab of this browser: carry on there.");
        refreshStatus();
        return null;
      }
      elsewhere = false;
      begin();
      // Held for as long as this page lives.
      return new Promise(() => {});
    });
  }

  async function begin() {
    if (started) return;
    started = true;
    el.dataset.phase = "joining";
    await media.open(call.type === "video");
    showLocal();
    refreshControls();
    onStreamOpen(() => {
      el.dataset.phase = "in-call";
      // Whoever arrives calls everyone already there; both sides calling at once is fine.
      for (const m of call.members) {
        if (m.user_id !== me && m.state === "joined" && !mesh.has(m.user_id)) mesh.connect(m.user_id);
      }
      refreshStatus();
    });
  }

  function leave() {
    leaving = true;
    mesh.close();
    media.stopAll();
    location.assign(el.dataset.backUrl);
  }

  function update(next) {
    if (next.id !== call.id) return;
    call = next;
    const mine = memberOf(call, me);
    if (!isLive(call) || (started && (!mine || mine.state !== "joined"))) {
      // Over, or we hung up in another tab.
      if (!leaving) leave();
      return;
    }
    if (mine && mine.state === "joined") start();
    for (const userId of mesh.ids()) {
      const member = memberOf(call, userId);
      if (!member || member.state !== "joined") disconnect(userId);
    }
    for (const m of call.members) {
      const figure = findTile(m.user_id);
      if (figure) figure.dataset.screenSharing = m.screen_sharing ? "on" : "off";
    }
    el.dataset.screenSharing = call.screen_sharing ? "on" : "off";
    refreshStatus();
  }

  function refreshStatus() {
    const states = mesh.states();
    let text;
    if (el.dataset.phase === "elsewhere") text = "In another tab";
    else if (!started) text = "Join the call to talk.";
    else if (call.status === "ringing") text = "Ringing…";
    else if (!states.length) text = "Waiting for the others…";
    else if (states.every((s) => s === "connected")) text = "Connected";
    else if (states.some((s) => s === "failed" || s === "disconnected")) text = "Connection trouble, trying again…";
    else text = "Connecting…";
    el.querySelector(".call-connection").textContent = text;
    el.dataset.connection = text === "Connected" ? "connected" : "other";
  }

  function tick() {
    const timer = el.querySelector(".call-timer");
    if (!call.started_at) {
      timer.textContent = "0:00";
      return;
    }
    const seconds = Math.max(0, Math.floor((Date.now() + clockSkew - Date.parse(call.started_at)) / 1000));
    const h = Math.floor(seconds / 3600);
    const m = Math.floor(seconds / 60) % 60;
    const s = seconds % 60;
    timer.textContent = (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(s).padStart(2, "0");
  }

  function refreshControls() {
    // Each button: its label, and its icon from the page's sprite (calls/show.html).
    const set = (action, pressed, label, icon) => {
      const button = el.querySelector('[data-action="' + action + '"]');
      if (pressed !== null) button.setAttribute("aria-pressed", String(pressed));
      button.querySelector(".control-label").textContent = label;
      const use = button.querySelector("use");
      if (use) use.setAttribute("href", use.getAttribute("href").replace(/#.*$/, "#" + icon));
    };
    set("mute", media.muted, media.muted ? "Unmute" : "Mute", media.muted ? "mic-off" : "mic");
    set("camera", null, media.camera ? "Camera off" : "Camera on", media.camera ? "video" : "video-off");
    set("screen", !!media.screen, media.screen ? "Stop sharing" : "Share screen",
      media.screen ? "screen-share-off" : "screen-share");
  }

  function videoChanged() {
    mesh.sendVideo();
    showLocal();
    refreshControls();
  }

  async function toggleCamera() {
    if (media.camera) media.cameraOff();
    else if (!(await media.cameraOn())) return;
    videoChanged();
  }

  async function toggleScreen() {
    if (media.screen) return stopSharing();
    if (!(await media.shareScreen(stopSharing))) return;
    videoChanged();
    post(el.dataset.screenUrl, { sharing: "on" }).catch((error) => note(error.message));
  }

  function stopSharing() {
    if (!media.screen) return;
    media.stopSharing();
    videoChanged();
    post(el.dataset.screenUrl, { sharing: "off" }).catch(() => {});
  }

  el.querySelector(".call-controls").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const action = button.dataset.action;
    if (action === "hangup") {
      leaving = true;
      post(el.dataset.endUrl).catch(() => {}).then(leave);
      return;
    }
    if (!started || !media.stream) return;
    if (action === "mute") {
      media.setMuted(!media.muted);
      refreshControls();
      mesh.sendMediaToAll();
    } else if (action === "camera") {
      toggleCamera();
    } else if (action === "screen") {
      toggleScreen();
    }
  });

  // Closing or leaving the page hangs up, so nobody stays "in the call" on an empty tab.
  window.addEventListener("pagehide", () => {
    if (!started || leaving) return;
    const form = new FormData();
    form.append("csrf_token", csrf);
    navigator.sendBeacon(el.dataset.endUrl, form);
  });

  on("call-signal", (signal) => {
    if (signal.call_id === call.id && started && !leaving) mesh.receive(signal);
  });
  on("call", update);

  setInterval(tick, 1000);
  tick();
  if (!isLive(call)) {
    el.hidden = true; // a call that is over: the page shows how it went
    return;
  }
  update(call);
  if (!started) refreshStatus();
}
