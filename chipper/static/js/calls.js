// Calls in the browser. On every page: the incoming-call box and its ring. On the call page:
// the media, peer to peer. Each other member gets an RTCPeerConnection; offers, answers and
// ICE candidates go through POST /calls/<id>/signal and come back on the page's event stream.
// Glare (both sides offering at once) is settled by "perfect negotiation": the polite side
// gives way. Everything here degrades to the call page's plain forms.
(function () {
  "use strict";

  var me = Number(document.body.dataset.userId || 0);
  var ringing = document.getElementById("ringing");
  if (!me || !ringing) return;
  var csrf = document.querySelector('meta[name="csrf-token"]').content;

  function callUrl(id, action) {
    var url = ringing.dataset.callUrl.replace(/0$/, String(id));
    return action ? url + "/" + action : url;
  }

  function say(text) {
    var el = document.getElementById("toast");
    if (!el) return;
    el.textContent = text;
    el.hidden = false;
    setTimeout(function () { el.hidden = true; }, 6000);
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        Accept: "application/json",
        "Content-Type": "application/json",
        "X-CSRFToken": csrf,
      },
      body: JSON.stringify(body || {}),
    }).then(function (response) {
      if (response.status === 204) return null;
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) throw new Error(data.error || "The server said no (" + response.status + ").");
        return data;
      });
    });
  }

  function memberOf(call, userId) {
    return call.members.filter(function (m) { return m.user_id === userId; })[0] || null;
  }

  function isLive(call) {
    return call.status === "ringing" || call.status === "active";
  }

  // The event stream. htmx's SSE extension owns the EventSource (a new one after a hard
  // failure); every one it opens gets our listeners.
  var listeners = { call: [], "call-signal": [] };
  var sources = new WeakSet();
  var streamOpen = false;
  var whenOpen = [];
  document.addEventListener("htmx:sseOpen", function (event) {
    var source = event.detail.source;
    if (source && !sources.has(source)) {
      sources.add(source);
      Object.keys(listeners).forEach(function (name) {
        source.addEventListener(name, function (e) {
          var data = JSON.parse(e.data);
          listeners[name].forEach(function (fn) { fn(data); });
        });
      });
    }
    streamOpen = true;
    whenOpen.splice(0).forEach(function (fn) { fn(); });
  });
  function onStreamOpen(fn) {
    if (streamOpen) fn(); else whenOpen.push(fn);
  }

  // The ring: two tones, two seconds on, four off. Browsers allow sound only once the person
  // has interacted with the page, so until then the box rings silently and says so.
  var ringer = {
    ctx: null,
    timer: null,
    context: function () {
      if (!this.ctx && window.AudioContext) this.ctx = new AudioContext();
      return this.ctx;
    },
    burst: function () {
      var ctx = this.ctx;
      if (!ctx || ctx.state !== "running") {
        ringing.dataset.sound = "blocked";
        return;
      }
      ringing.dataset.sound = "on";
      var t = ctx.currentTime;
      [440, 480].forEach(function (frequency) {
        var tone = ctx.createOscillator();
        var gain = ctx.createGain();
        tone.frequency.value = frequency;
        gain.gain.setValueAtTime(0.0001, t);
        gain.gain.exponentialRampToValueAtTime(0.08, t + 0.05);
        gain.gain.setValueAtTime(0.08, t + 1.9);
        gain.gain.exponentialRampToValueAtTime(0.0001, t + 2);
        tone.connect(gain).connect(ctx.destination);
        tone.start(t);
        tone.stop(t + 2.05);
      });
    },
    start: function () {
      if (this.timer) return;
      var ctx = this.context();
      var self = this;
      if (ctx) ctx.resume().catch(function () {}).then(function () { if (self.timer) self.burst(); });
      this.burst();
      this.timer = setInterval(function () { self.burst(); }, 4000);
    },
    stop: function () {
      clearInterval(this.timer);
      this.timer = null;
      delete ringing.dataset.sound;
    },
  };
  ["pointerdown", "keydown"].forEach(function (type) {
    document.addEventListener(type, function () {
      var ctx = ringer.context();
      if (ctx && ctx.state !== "running") ctx.resume().catch(function () {});
    }, { capture: true, passive: true });
  });

  // The server marks an unanswered call missed after CALL_RING_SECONDS, and the stream then
  // takes its box away. A server restarted meanwhile has forgotten the call's timer, so the
  // page also takes a box away itself once that time has passed (by the server's clock).
  var ringMs = Number(ringing.dataset.ringSeconds) * 1000;
  var serverSkew = Date.parse(ringing.dataset.now) - Date.now() || 0;
  var ringTimer = null;
  function dropExpiredRinging() {
    clearTimeout(ringTimer);
    ringTimer = null;
    if (!(ringMs > 0)) return;
    var now = Date.now() + serverSkew;
    var next = Infinity;
    ringing.querySelectorAll(".ringing-call").forEach(function (box) {
      var deadline = Date.parse(box.dataset.createdAt) + ringMs;
      if (isNaN(deadline)) return;
      if (deadline <= now) box.remove();
      else next = Math.min(next, deadline);
    });
    // A moment after the server's own timer, which usually gets there first.
    if (next < Infinity) ringTimer = setTimeout(refreshRinging, next - now + 1000);
  }

  var pageTitle = document.title;
  function refreshRinging() {
    dropExpiredRinging();
    var box = ringing.querySelector(".ringing-call");
    if (box) {
      ringer.start();
      document.title = "Incoming call · " + pageTitle;
    } else {
      ringer.stop();
      document.title = pageTitle;
    }
  }

  function ringingBox(call) {
    // The same box as calls/_ringing.html.
    var caller = memberOf(call, call.initiated_by);
    var box = document.createElement("div");
    box.className = "ringing-call";
    box.id = "ringing-" + call.id;
    box.dataset.callId = call.id;
    box.dataset.createdAt = call.created_at;
    box.setAttribute("role", "alertdialog");
    box.setAttribute("aria-labelledby", box.id + "-text");
    var text = document.createElement("p");
    text.id = box.id + "-text";
    var who = document.createElement("strong");
    who.textContent = caller ? caller.name : "Someone";
    text.append(who, " is calling you: " + call.type + " call" +
      (call.conversation_name ? " in " + call.conversation_name : ""));
    var actions = document.createElement("div");
    actions.className = "ringing-actions";
    [["answer", "Answer", ""], ["decline", "Decline", "danger"]].forEach(function (spec) {
      var form = document.createElement("form");
      form.method = "post";
      form.action = callUrl(call.id, spec[0]);
      form.className = "inline ringing-" + spec[0];
      var token = document.createElement("input");
      token.type = "hidden";
      token.name = "csrf_token";
      token.value = csrf;
      var button = document.createElement("button");
      button.type = "submit";
      button.textContent = spec[1];
      if (spec[2]) button.className = spec[2];
      form.append(token, button);
      actions.append(form);
    });
    box.append(text, actions);
    return box;
  }

  listeners.call.push(function (call) {
    var mine = memberOf(call, me);
    var forMe = isLive(call) && mine && mine.state === "invited";
    var box = document.getElementById("ringing-" + call.id);
    if (forMe && !box) ringing.insertBefore(ringingBox(call), ringing.querySelector(".ringing-sound"));
    if (!forMe && box) box.remove();
    refreshRinging();
  });

  // Answer and decline without leaving the page until the call page is needed.
  ringing.addEventListener("submit", function (event) {
    var form = event.target;
    var box = form.closest(".ringing-call");
    if (!box) return;
    event.preventDefault();
    var id = Number(box.dataset.callId);
    var answering = form.classList.contains("ringing-answer");
    post(form.action).then(function () {
      if (answering) location.assign(callUrl(id));
    }, function (error) {
      say(error.message);
    }).then(function () {
      box.remove();
      refreshRinging();
    });
  });

  // Answering from a call box (the conversation page's live call) goes to the call page too,
  // where the sound and video are, once the stream says we are in. (The stream's copy of the
  // box can replace the form before its own answer comes back, so that answer is not waited
  // for.)
  var answering = new Set();
  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.detail.elt;
    if (!form.matches || !form.matches(".call-answer") || document.getElementById("call-room")) return;
    var box = form.closest(".call");
    if (box) answering.add(Number(box.dataset.callId));
  });
  listeners.call.push(function (call) {
    var mine = memberOf(call, me);
    if (answering.has(call.id) && isLive(call) && mine && mine.state === "joined") {
      answering.delete(call.id);
      location.assign(callUrl(call.id));
    }
  });

  refreshRinging();

  var roomEl = document.getElementById("call-room");
  if (roomEl && window.RTCPeerConnection && navigator.mediaDevices) room(roomEl);

  // The call page.
  function room(el) {
    var call = JSON.parse(el.dataset.call);
    var iceServers = JSON.parse(el.dataset.iceServers || "[]");
    var clockSkew = Date.parse(el.dataset.now) - Date.now();
    var stage = el.querySelector(".call-stage");
    var peers = new Map();
    var local = null;
    var camera = null; // the camera's video track, while it is on
    var screen = null; // the shared screen's track, while sharing
    var muted = false;
    var started = false;
    var leaving = false;

    el.hidden = false;
    var shareButton = el.querySelector('[data-action="screen"]');
    if (!navigator.mediaDevices.getDisplayMedia) shareButton.hidden = true;

    function note(text) {
      var p = el.querySelector(".call-note");
      p.textContent = text || "";
      p.hidden = !text;
    }

    function nameOf(userId) {
      var member = memberOf(call, userId);
      return member ? member.name : "Someone";
    }

    function tile(userId) {
      var existing = stage.querySelector('.tile[data-user-id="' + userId + '"]');
      if (existing) return existing;
      var figure = document.createElement("figure");
      figure.className = "tile" + (userId === me ? " tile-me" : "");
      figure.dataset.userId = userId;
      var video = document.createElement("video");
      video.autoplay = true;
      video.playsInline = true;
      if (userId === me) video.muted = true;
      video.addEventListener("resize", function () { showVideo(figure); });
      var avatar = document.createElement("span");
      avatar.className = "avatar";
      avatar.setAttribute("aria-hidden", "true");
      avatar.textContent = nameOf(userId).charAt(0).toUpperCase();
      var caption = document.createElement("figcaption");
      var name = document.createElement("span");
      name.className = "tile-name";
      name.textContent = userId === me ? "You" : nameOf(userId);
      var state = document.createElement("span");
      state.className = "tile-state";
      caption.append(name, state);
      figure.append(video, avatar, caption);
      if (userId === me) stage.append(figure); else stage.insertBefore(figure, stage.querySelector(".tile-me"));
      countTiles();
      return figure;
    }

    // A tile shows its video while a live, unmuted video track plays; otherwise the avatar.
    function showVideo(figure) {
      var video = figure.querySelector("video");
      var stream = video.srcObject;
      var playing = !!stream && stream.getVideoTracks().some(function (t) {
        return t.readyState === "live" && !t.muted && t.enabled;
      }) && (figure.dataset.userId == me || video.videoWidth > 0) && figure.dataset.camera !== "off";
      figure.classList.toggle("has-video", playing);
    }

    function setTileState(userId, text) {
      var figure = tile(userId);
      figure.querySelector(".tile-state").textContent = text ? " · " + text : "";
    }

    function showLocal() {
      var figure = tile(me);
      var video = figure.querySelector("video");
      var shown = new MediaStream((screen ? [screen] : camera ? [camera] : []));
      video.srcObject = shown;
      figure.classList.toggle("tile-screen", !!screen);
      figure.dataset.camera = screen || camera ? "on" : "off";
      showVideo(figure);
    }

    function mediaState() {
      return { audio: !muted, video: !!camera, screen: !!screen };
    }

    function sendMedia(peer) {
      peer.send("media", mediaState());
    }

    function connect(userId) {
      var pc = new RTCPeerConnection({ iceServers: iceServers });
      var peer = {
        id: userId,
        pc: pc,
        polite: me > userId,
        makingOffer: false,
        ignoreOffer: false,
        videoSender: null,
        early: [], // candidates that came before the description they belong to
        offerTimer: null,
        inbox: Promise.resolve(),
        outbox: Promise.resolve(),
        send: function (type, data) {
          // One at a time, so the other side gets them in the order they were made.
          peer.outbox = peer.outbox.then(function () {
            // Once we hang up we are no longer in the call: the server would refuse it.
            if (leaving) return null;
            return post(el.dataset.signalUrl, { to: userId, type: type, data: data });
          }).catch(function (error) { console.warn("signal not sent:", error.message); });
        },
      };
      peers.set(userId, peer);
      tile(userId);
      setTileState(userId, "connecting");
      local.getAudioTracks().forEach(function (track) { pc.addTrack(track, local); });
      var video = screen || camera;
      if (video) peer.videoSender = pc.addTrack(video, local);
      pc.onnegotiationneeded = function () {
        peer.makingOffer = true;
        pc.setLocalDescription().then(function () {
          sendDescription(peer);
        }).catch(function (error) {
          console.warn("offer failed:", error);
        }).then(function () { peer.makingOffer = false; });
      };
      pc.onicecandidate = function (event) {
        if (event.candidate) peer.send("candidate", event.candidate.toJSON());
      };
      pc.ontrack = function (event) {
        var figure = tile(userId);
        var videoEl = figure.querySelector("video");
        var stream = event.streams[0] || videoEl.srcObject || new MediaStream();
        if (!event.streams[0]) stream.addTrack(event.track);
        if (videoEl.srcObject !== stream) videoEl.srcObject = stream;
        event.track.onmute = event.track.onunmute = event.track.onended = function () { showVideo(figure); };
        showVideo(figure);
      };
      pc.onconnectionstatechange = function () {
        var state = pc.connectionState;
        setTileState(userId, { new: "connecting", connecting: "connecting", connected: "",
          disconnected: "reconnecting", failed: "connection failed", closed: "" }[state]);
        tile(userId).dataset.connection = state;
        // A path that broke may come back over other ICE candidates.
        if (state === "failed") pc.restartIce();
        if (state === "connected") sendMedia(peer);
        refreshStatus();
      };
      return peer;
    }

    // Signals are live only: one sent while the other page was still loading (or its stream
    // reconnecting) is lost. An offer nobody answered goes again, until it is answered.
    var OFFER_RETRY_MS = 4000;

    function sendDescription(peer) {
      var description = peer.pc.localDescription;
      peer.send(description.type, description.toJSON());
      clearTimeout(peer.offerTimer);
      if (description.type !== "offer") return;
      peer.offerTimer = setTimeout(function () {
        if (peers.get(peer.id) === peer && peer.pc.signalingState === "have-local-offer") {
          sendDescription(peer);
        }
      }, OFFER_RETRY_MS);
    }

    function disconnect(userId) {
      var peer = peers.get(userId);
      if (peer) {
        clearTimeout(peer.offerTimer);
        peer.pc.close();
        peers.delete(userId);
      }
      var figure = stage.querySelector('.tile[data-user-id="' + userId + '"]');
      if (figure) figure.remove();
      countTiles();
    }

    // Two people: the other fills the stage and you are a small picture in its corner.
    function countTiles() {
      stage.dataset.count = stage.querySelectorAll(".tile").length;
    }

    function receive(signal) {
      if (signal.call_id !== call.id || !started || leaving) return;
      var peer = peers.get(signal.from);
      if (!peer) {
        if (signal.type !== "offer") return;
        peer = connect(signal.from);
      }
      peer.inbox = peer.inbox.then(function () {
        return handle(peer, signal);
      }).catch(function (error) { console.warn("signal failed:", error); });
    }

    function handle(peer, signal) {
      var pc = peer.pc;
      if (signal.type === "media") {
        var figure = tile(peer.id);
        figure.dataset.audio = signal.data.audio ? "on" : "off";
        figure.dataset.camera = signal.data.video || signal.data.screen ? "on" : "off";
        figure.classList.toggle("tile-screen", !!signal.data.screen);
        showVideo(figure);
        return null;
      }
      if (signal.type === "candidate") {
        if (!pc.remoteDescription) {
          // Its description was lost and will come again (or was ignored, below).
          peer.early.push(signal.data);
          return null;
        }
        return pc.addIceCandidate(signal.data).catch(function (error) {
          if (!peer.ignoreOffer) throw error;
        });
      }
      // An answer to an offer already answered: a repeat of a resent offer's answer.
      if (signal.type === "answer" && pc.signalingState !== "have-local-offer") return null;
      var collision = signal.type === "offer" && (peer.makingOffer || pc.signalingState !== "stable");
      peer.ignoreOffer = !peer.polite && collision;
      if (peer.ignoreOffer) return null;
      return pc.setRemoteDescription(signal.data).then(function () {
        var early = peer.early.splice(0);
        return Promise.all(early.map(function (candidate) {
          // Some belong to an offer this side ignored: those do not apply.
          return pc.addIceCandidate(candidate).catch(function () {});
        }));
      }).then(function () {
        // Answered already if adding our tracks made the browser negotiate meanwhile.
        if (signal.type !== "offer" || pc.signalingState !== "have-remote-offer") return null;
        return pc.setLocalDescription().then(function () {
          sendDescription(peer);
        });
      });
    }
    listeners["call-signal"].push(receive);

    function getMedia() {
      var wantVideo = call.type === "video";
      return navigator.mediaDevices.getUserMedia({ audio: true, video: wantVideo }).catch(function () {
        if (!wantVideo) throw new Error("no microphone");
        note("No camera could be opened: you are in the call with sound only.");
        return navigator.mediaDevices.getUserMedia({ audio: true });
      }).catch(function () {
        note("No microphone could be opened: the others will not hear you.");
        return new MediaStream();
      });
    }

    // One tab per browser runs the call: a second one would answer the same signals.
    var elsewhere = false;
    function start() {
      if (started || elsewhere) return;
      if (!navigator.locks) return begin();
      elsewhere = true; // until the lock says otherwise
      navigator.locks.request("chipper-call-" + call.id, { ifAvailable: true }, function (lock) {
        if (!lock) {
          el.dataset.phase = "elsewhere";
          note("This call is open in another tab of this browser: carry on there.");
          refreshStatus();
          return null;
        }
        elsewhere = false;
        begin();
        // Held for as long as this page lives.
        return new Promise(function () {});
      });
    }

    function begin() {
      if (started) return;
      started = true;
      el.dataset.phase = "joining";
      getMedia().then(function (stream) {
        local = stream;
        camera = stream.getVideoTracks()[0] || null;
        showLocal();
        refreshControls();
        onStreamOpen(function () {
          el.dataset.phase = "in-call";
          // Whoever arrives calls everyone already there; both sides calling at once is fine.
          call.members.forEach(function (m) {
            if (m.user_id !== me && m.state === "joined" && !peers.has(m.user_id)) connect(m.user_id);
          });
          refreshStatus();
        });
      });
    }

    function leave() {
      leaving = true;
      peers.forEach(function (peer) { peer.pc.close(); });
      peers.clear();
      [camera, screen].concat(local ? local.getTracks() : []).forEach(function (track) {
        if (track) track.stop();
      });
      location.assign(el.dataset.backUrl);
    }

    function update(next) {
      if (next.id !== call.id) return;
      call = next;
      var mine = memberOf(call, me);
      if (!isLive(call) || (started && (!mine || mine.state !== "joined"))) {
        // Over, or we hung up in another tab.
        if (!leaving) leave();
        return;
      }
      if (mine && mine.state === "joined") start();
      peers.forEach(function (peer, userId) {
        var member = memberOf(call, userId);
        if (!member || member.state !== "joined") disconnect(userId);
      });
      call.members.forEach(function (m) {
        var figure = stage.querySelector('.tile[data-user-id="' + m.user_id + '"]');
        if (figure) figure.dataset.screenSharing = m.screen_sharing ? "on" : "off";
      });
      el.dataset.screenSharing = call.screen_sharing ? "on" : "off";
      refreshStatus();
    }
    listeners.call.push(update);

    function refreshStatus() {
      var text;
      var states = Array.from(peers.values()).map(function (p) { return p.pc.connectionState; });
      if (el.dataset.phase === "elsewhere") text = "In another tab";
      else if (!started) text = "Join the call to talk.";
      else if (call.status === "ringing") text = "Ringing…";
      else if (!states.length) text = "Waiting for the others…";
      else if (states.every(function (s) { return s === "connected"; })) text = "Connected";
      else if (states.some(function (s) { return s === "failed" || s === "disconnected"; })) text = "Connection trouble, trying again…";
      else text = "Connecting…";
      el.querySelector(".call-connection").textContent = text;
      el.dataset.connection = text === "Connected" ? "connected" : "other";
    }

    function tick() {
      var timer = el.querySelector(".call-timer");
      if (!call.started_at) {
        timer.textContent = "0:00";
        return;
      }
      var seconds = Math.max(0, Math.floor((Date.now() + clockSkew - Date.parse(call.started_at)) / 1000));
      var h = Math.floor(seconds / 3600);
      var m = Math.floor(seconds / 60) % 60;
      var s = seconds % 60;
      timer.textContent = (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(s).padStart(2, "0");
    }
    setInterval(tick, 1000);
    tick();

    function refreshControls() {
      function set(action, pressed, label) {
        var button = el.querySelector('[data-action="' + action + '"]');
        if (pressed !== null) button.setAttribute("aria-pressed", String(pressed));
        button.textContent = label;
      }
      set("mute", muted, muted ? "Unmute" : "Mute");
      set("camera", null, camera ? "Camera off" : "Camera on");
      set("screen", !!screen, screen ? "Stop sharing" : "Share screen");
    }

    function everyPeer(fn) { peers.forEach(fn); }

    // Puts a video track (camera, screen, or none) on every connection: replaceTrack where a
    // video sender exists, so nothing is renegotiated; addTrack where none does yet (an audio
    // call turning video on), which renegotiates.
    function sendVideo(track) {
      everyPeer(function (peer) {
        if (peer.videoSender) peer.videoSender.replaceTrack(track);
        else if (track) peer.videoSender = peer.pc.addTrack(track, local);
        sendMedia(peer);
      });
      showLocal();
      refreshControls();
    }

    function toggleCamera() {
      if (camera) {
        camera.stop();
        camera = null;
        if (!screen) sendVideo(null); else { showLocal(); refreshControls(); everyPeer(sendMedia); }
        return;
      }
      navigator.mediaDevices.getUserMedia({ video: true }).then(function (stream) {
        camera = stream.getVideoTracks()[0];
        if (!screen) sendVideo(camera); else { showLocal(); refreshControls(); everyPeer(sendMedia); }
      }, function () {
        note("The camera could not be opened.");
      });
    }

    function shareScreen() {
      if (screen) return stopSharing();
      navigator.mediaDevices.getDisplayMedia({ video: true, audio: false }).then(function (stream) {
        screen = stream.getVideoTracks()[0];
        screen.addEventListener("ended", stopSharing);
        sendVideo(screen);
        post(el.dataset.screenUrl, { sharing: "on" }).catch(function (error) { note(error.message); });
      }, function () {
        note("Screen sharing was cancelled or is not allowed.");
      });
    }

    function stopSharing() {
      if (!screen) return;
      screen.stop();
      screen = null;
      sendVideo(camera);
      post(el.dataset.screenUrl, { sharing: "off" }).catch(function () {});
    }

    el.querySelector(".call-controls").addEventListener("click", function (event) {
      var button = event.target.closest("button[data-action]");
      if (!button) return;
      var action = button.dataset.action;
      if (action === "hangup") {
        leaving = true;
        post(el.dataset.endUrl).catch(function () {}).then(leave);
        return;
      }
      if (!started || !local) return;
      if (action === "mute") {
        muted = !muted;
        local.getAudioTracks().forEach(function (track) { track.enabled = !muted; });
        refreshControls();
        everyPeer(sendMedia);
      } else if (action === "camera") {
        toggleCamera();
      } else if (action === "screen") {
        shareScreen();
      }
    });

    // Closing or leaving the page hangs up, so nobody stays "in the call" on an empty tab.
    window.addEventListener("pagehide", function () {
      if (!started || leaving) return;
      var form = new FormData();
      form.append("csrf_token", csrf);
      navigator.sendBeacon(el.dataset.endUrl, form);
    });

    if (!isLive(call)) {
      el.hidden = true; // a call that is over: the page shows how it went
      return;
    }
    update(call);
    if (!started) refreshStatus();
  }
})();
