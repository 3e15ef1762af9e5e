"""What browsers send about a call, checked: the signals one relays to another through the
server (`calls.signal`, never stored) and whether its screen is shared. The verbs call these
only once they know the sender may see the call."""

import json

from flask import current_app

from chipper.services import Invalid

# A WebRTC offer, answer or ICE candidate, or "media": whether the sender's microphone,
# camera and screen are on, so the others can show it at once.
SIGNAL_TYPES = ("offer", "answer", "candidate", "media")

# What each kind of signal carries: what js/calls/mesh.js sends (RTCSessionDescription.toJSON(),
# RTCIceCandidate.toJSON(), its own media state), so the other browser is handed nothing
# that its RTCPeerConnection or the call page would trip over.
SIGNAL_SHAPES = {
    "offer": 'An offer carries its session description: {"type": "offer", "sdp": "..."}.',
    "answer": 'An answer carries its session description: {"type": "answer", "sdp": "..."}.',
    "candidate": (
        'A candidate carries an ICE candidate: {"candidate": "...", "sdpMid": a string or '
        'null, "sdpMLineIndex": a number or null}, or null when there are no more.'
    ),
    "media": (
        'A media signal says what the sender has on: {"audio": true or false, "video": true '
        'or false, "screen": true or false}.'
    ),
}
MEDIA_FIELDS = {"audio", "video", "screen"}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _description(signal_type: str, data) -> bool:
    return (
        isinstance(data, dict)
        and isinstance(data.get("sdp"), str)
        and data.get("type", signal_type) == signal_type
    )


def _candidate(signal_type: str, data) -> bool:
    if data is None:
        return True  # end of candidates
    return (
        isinstance(data, dict)
        and isinstance(data.get("candidate"), str)
        and isinstance(data.get("sdpMid"), str | None)
        and (data.get("sdpMLineIndex") is None or _is_int(data["sdpMLineIndex"]))
        and isinstance(data.get("usernameFragment"), str | None)
    )


def _media(signal_type: str, data) -> bool:
    return (
        isinstance(data, dict)
        and set(data) <= MEDIA_FIELDS
        and all(isinstance(value, bool) for value in data.values())
    )


SIGNAL_CHECKS = {
    "offer": _description,
    "answer": _description,
    "candidate": _candidate,
    "media": _media,
}


SHARING = {"on": True, "true": True, "off": False, "false": False}


def sharing(value) -> bool:
    """`sharing`: on or off (a form's text, or a JSON boolean)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in SHARING:
        return SHARING[value]
    raise Invalid("Say whether you are sharing your screen: on or off.", field="sharing")


def check(body) -> tuple:
    """The signal's (to, type, data), or Invalid (naming the field) for a body that is not a
    signal js/calls/mesh.js would send."""
    if not isinstance(body, dict):
        raise Invalid("Send the signal as a JSON object.")
    to, signal_type, data = body.get("to"), body.get("type"), body.get("data")
    if not isinstance(signal_type, str) or signal_type not in SIGNAL_TYPES:
        raise Invalid("A signal is an offer, an answer, a candidate or media.", field="type")
    if not _is_int(to):
        raise Invalid("Say whom the signal is for (a user id).", field="to")
    if not SIGNAL_CHECKS[signal_type](signal_type, data):
        raise Invalid(SIGNAL_SHAPES[signal_type], field="data")
    limit = current_app.config["CALL_SIGNAL_MAX_BYTES"]
    if len(json.dumps(data).encode()) > limit:
        raise Invalid(f"Signals are at most {limit // 1024} KB.", field="data")
    return to, signal_type, data
