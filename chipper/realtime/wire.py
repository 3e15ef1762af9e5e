"""The SSE wire format: what an envelope becomes on one user's stream. Pure functions.

A browser page gets HTML frames named for what they swap (see chipper.realtime.kinds); an API
client (`?format=json`) gets one JSON frame per event, named after its kind.
"""

from __future__ import annotations

import json

from chipper.realtime.kinds import KINDS, Envelope


def _field(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError("SSE event names and ids cannot contain line breaks")
    return value


def frame(event: str, data: str, event_id: int | None = None) -> str:
    return _frame(event, _data_field(data), event_id)


def _frame(event: str, data_field: str, event_id: int | None) -> str:
    head = f"event: {_field(event)}\n"
    if event_id is not None:
        head += f"id: {_field(str(event_id))}\n"
    return head + data_field + "\n"


def _data_field(data: str) -> str:
    # Each line of the data gets its own "data:" field, so text cannot start a new field.
    text = data.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(f"data: {line}\n" for line in text.split("\n"))


def frames(envelope: Envelope, user_id: int, fmt: str, eid: int | None) -> str:
    """What one envelope becomes on one user's stream; `eid` is its number in that user's
    sequence (None for live-only events)."""
    # The frames' names and data are the same on every stream of this process (only the id
    # differs): built for the first and kept on the envelope for the others.
    own = envelope.kind.startswith("message-") and envelope.data.get("user_id") == user_id
    key = f"{fmt}-own" if own else fmt
    built = envelope.wire.get(key)
    if built is None:
        built = envelope.wire[key] = [
            (name, _data_field(data)) for name, data in parts(envelope, fmt, own)
        ]
    return "".join(_frame(name, data_field, eid) for name, data_field in built)


def parts(envelope: Envelope, fmt: str, own_message: bool = False) -> list[tuple[str, str]]:
    """The (event name, data) of each frame an envelope becomes."""
    kind, cid = KINDS[envelope.kind], envelope.conversation_id
    if fmt == "json":
        return [(kind.name, json.dumps({"conversation_id": cid, **envelope.data}))]
    if kind.raw:
        return [(kind.name, json.dumps(envelope.data))]
    out = []
    if kind.conversation:
        out.append((f"{kind.name}-{cid}", envelope.html))
    if kind.call:
        out.append(("call", json.dumps(envelope.data)))
    if kind.conversation_list:
        out.append(("conversations-changed", str(cid)))
    if kind.unread and not own_message:
        out.append(("unread-changed", ""))
    return out
