// The peer mesh: one RTCPeerConnection for each other member in the call. Offers, answers
// and ICE candidates go out through `signal` (POST /calls/<id>/signal) and come back through
// `receive` (the stream's call-signal events). Glare (both sides offering at once) is settled
// by "perfect negotiation": the polite side gives way.

// Signals are live only: one sent while the other page was still loading (or its stream
// reconnecting) is lost. An offer nobody answered goes again, until it is answered.
const OFFER_RETRY_MS = 4000;

export class Mesh {
  // hooks: signal(to, type, data) -> Promise; track(userId, event); state(userId, connectionState);
  // media(userId, {audio, video, screen}).
  constructor({ me, iceServers, media, hooks }) {
    this.me = me;
    this.iceServers = iceServers;
    this.media = media;
    this.hooks = hooks;
    this.peers = new Map();
  }

  has(userId) {
    return this.peers.has(userId);
  }

  ids() {
    return Array.from(this.peers.keys());
  }

  states() {
    return Array.from(this.peers.values(), (peer) => peer.pc.connectionState);
  }

  connect(userId) {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    const peer = {
      id: userId,
      pc,
      polite: this.me > userId,
      makingOffer: false,
      ignoreOffer: false,
      videoSender: null,
      early: [], // candidates that came before the description they belong to
      offerTimer: null,
      inbox: Promise.resolve(),
      outbox: Promise.resolve(),
    };
    peer.send = (type, data) => {
      // One at a time, so the other side gets them in the order they were made.
      peer.outbox = peer.outbox
        .then(() => this.hooks.signal(userId, type, data))
        .catch((error) => console.warn("signal not sent:", error.message));
    };
    this.peers.set(userId, peer);
    const local = this.media.stream;
    for (const track of local.getAudioTracks()) pc.addTrack(track, local);
    if (this.media.video) peer.videoSender = pc.addTrack(this.media.video, local);
    pc.onnegotiationneeded = async () => {
      peer.makingOffer = true;
      try {
        await pc.setLocalDescription();
        this.sendDescription(peer);
      } catch (error) {
        console.warn("offer failed:", error);
      } finally {
        peer.makingOffer = false;
      }
    };
    pc.onicecandidate = (event) => {
      if (event.candidate) peer.send("candidate", event.candidate.toJSON());
    };
    pc.ontrack = (event) => this.hooks.track(userId, event);
    pc.onconnectionstatechange = () => {
      const state = pc.connectionState;
      // A path that broke may come back over other ICE candidates.
      if (state === "failed") pc.restartIce();
      if (state === "connected") this.sendMedia(peer);
      this.hooks.state(userId, state);
    };
    this.hooks.state(userId, "new");
    return peer;
  }

  sendDescription(peer) {
    const description = peer.pc.localDescription;
    peer.send(description.type, description.toJSON());
    clearTimeout(peer.offerTimer);
    if (description.type !== "offer") return;
    peer.offerTimer = setTimeout(() => {
      if (this.peers.get(peer.id) === peer && peer.pc.signalingState === "have-local-offer") {
        this.sendDescription(peer);
      }
    }, OFFER_RETRY_MS);
  }

  disconnect(userId) {
    const peer = this.peers.get(userId);
    if (!peer) return;
    clearTimeout(peer.offerTimer);
    peer.pc.close();
    this.peers.delete(userId);
  }

  close() {
    for (const userId of this.ids()) this.disconnect(userId);
  }

  // A signal from the stream, already checked to be for this call while we are in it.
  receive(signal) {
    let peer = this.peers.get(signal.from);
    if (!peer) {
      if (signal.type !== "offer") return;
      peer = this.connect(signal.from);
    }
    peer.inbox = peer.inbox
      .then(() => this.handle(peer, signal))
      .catch((error) => console.warn("signal failed:", error));
  }

  async handle(peer, signal) {
    const pc = peer.pc;
    if (signal.type === "media") {
      this.hooks.media(peer.id, signal.data);
      return;
    }
    if (signal.type === "candidate") {
      if (!pc.remoteDescription) {
        // Its description was lost and will come again (or was ignored, below).
        peer.early.push(signal.data);
        return;
      }
      try {
        await pc.addIceCandidate(signal.data);
      } catch (error) {
        if (!peer.ignoreOffer) throw error;
      }
      return;
    }
    // An answer to an offer already answered: a repeat of a resent offer's answer.
    if (signal.type === "answer" && pc.signalingState !== "have-local-offer") return;
    const collision = signal.type === "offer" && (peer.makingOffer || pc.signalingState !== "stable");
    peer.ignoreOffer = !peer.polite && collision;
    if (peer.ignoreOffer) return;
    await pc.setRemoteDescription(signal.data);
    // Some early candidates belong to an offer this side ignored: those do not apply.
    await Promise.all(peer.early.splice(0).map((candidate) => pc.addIceCandidate(candidate).catch(() => {})));
    // Answered already if adding our tracks made the browser negotiate meanwhile.
    if (signal.type !== "offer" || pc.signalingState !== "have-remote-offer") return;
    await pc.setLocalDescription();
    this.sendDescription(peer);
  }

  sendMedia(peer) {
    peer.send("media", this.media.state());
  }

  sendMediaToAll() {
    for (const peer of this.peers.values()) this.sendMedia(peer);
  }

  // Puts the current video track (camera, screen, or none) on every connection: replaceTrack
  // where a video sender exists, so nothing is renegotiated; addTrack where none does yet (an
  // audio call turning video on), which renegotiates.
  sendVideo() {
    const track = this.media.video;
    for (const peer of this.peers.values()) {
      if (peer.videoSender) peer.videoSender.replaceTrack(track);
      else if (track) peer.videoSender = peer.pc.addTrack(track, this.media.stream);
      this.sendMedia(peer);
    }
  }
}
