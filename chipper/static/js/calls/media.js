// This side's sound and pictures in a call: the microphone (muted or not), the camera and a
// shared screen. The mesh sends whichever video track is current; the room shows it.

export class LocalMedia {
  constructor(note) {
    this.note = note; // tells the person what could not be opened
    this.stream = null; // holds the microphone's track, and is what peers receive tracks in
    this.camera = null; // the camera's video track, while it is on
    this.screen = null; // the shared screen's track, while sharing
    this.muted = false;
  }

  // The microphone, and the camera for a video call; sound only, or nothing, if that is all
  // the browser may open. Never fails: a call without a microphone can still listen.
  async open(wantVideo) {
    const devices = navigator.mediaDevices;
    let stream;
    try {
      stream = await devices.getUserMedia({ audio: true, video: wantVideo });
    } catch {
      try {
        if (!wantVideo) throw new Error("no microphone");
        this.note("No camera could be opened: you are in the call with sound only.");
        stream = await devices.getUserMedia({ audio: true });
      } catch {
        this.note("No microphone could be opened: the others will not hear you.");
        stream = new MediaStream();
      }
    }
    this.stream = stream;
    this.camera = stream.getVideoTracks()[0] || null;
    return stream;
  }

  // The video the others see: the shared screen before the camera.
  get video() {
    return this.screen || this.camera;
  }

  state() {
    return { audio: !this.muted, video: !!this.camera, screen: !!this.screen };
  }

  setMuted(muted) {
    this.muted = muted;
    for (const track of this.stream.getAudioTracks()) track.enabled = !muted;
  }

  async cameraOn() {
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ video: true });
      this.camera = stream.getVideoTracks()[0];
      return true;
    } catch {
      this.note("The camera could not be opened.");
      return false;
    }
  }

  cameraOff() {
    if (this.camera) this.camera.stop();
    this.camera = null;
  }

  canShare() {
    return !!navigator.mediaDevices.getDisplayMedia;
  }

  // `ended` runs when the browser's own "stop sharing" ends it.
  async shareScreen(ended) {
    try {
      const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
      this.screen = stream.getVideoTracks()[0];
      this.screen.addEventListener("ended", ended);
      return true;
    } catch {
      this.note("Screen sharing was cancelled or is not allowed.");
      return false;
    }
  }

  stopSharing() {
    if (this.screen) this.screen.stop();
    this.screen = null;
  }

  stopAll() {
    const tracks = [this.camera, this.screen, ...(this.stream ? this.stream.getTracks() : [])];
    for (const track of tracks) if (track) track.stop();
  }
}
