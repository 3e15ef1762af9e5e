// Calls in the browser, as native modules (no build step). On every page: the incoming-call
// box and its ring (ringing.js). On the call page: the room (room.js) with this side's media
// (media.js) and a peer connection to each other member (mesh.js); common.js holds what they
// share. Everything here degrades to the plain forms of the call page and the ringing box.

import { me, ringingEl } from "./common.js";
import { startRinging } from "./ringing.js";
import { room } from "./room.js";

if (me && ringingEl) {
  startRinging();
  const roomEl = document.getElementById("call-room");
  if (roomEl && window.RTCPeerConnection && navigator.mediaDevices) room(roomEl);
}
