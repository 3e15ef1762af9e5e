"""Every kind of live event, declared once, and the envelope that carries one.

A kind says what a page does with it: the frame named `<kind>-<conversation id>` (the open
conversation swaps in the event's HTML), a refresh of the conversation list, a refresh of the
unread badge, a `call` frame (JSON) that every page follows, or raw JSON of its own (presence,
call signals). A new kind is one entry here plus the partial its service renders.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    conversation: bool = True  # a `<kind>-<conversation id>` frame with the event's HTML
    conversation_list: bool = False  # a `conversations-changed` frame
    unread: bool = False  # an `unread-changed` frame (never for the sender's own message)
    call: bool = False  # a `call` frame with the event's data, on every page
    raw: bool = False  # only a frame named after the kind, with the event's data as JSON
    stored: bool = True  # kept in the events table and replayed after a reconnect
    # The streams of the sign-ins listed in data["ids"] end with a `signed-out` frame; the
    # user's other streams see nothing of it.
    ends_streams: bool = False


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("message-created", conversation_list=True, unread=True),
        Kind("message-updated", conversation_list=True),
        Kind("message-deleted", conversation_list=True, unread=True),
        Kind("conversation-created", conversation=False, conversation_list=True),
        Kind("conversation-updated", conversation_list=True),
        Kind("conversation-removed", conversation_list=True, unread=True),
        Kind("read", conversation=False, conversation_list=True, unread=True),
        # Someone read a conversation: the others' pages fetch their "Seen" line again.
        Kind("conversation-read"),
        Kind("typing", stored=False),
        Kind("presence", raw=True, stored=False),
        Kind("call-ringing", call=True),
        Kind("call-updated", call=True),
        Kind("call-ended", call=True),
        Kind("call-signal", raw=True, stored=False),
        # Someone changed their name or picture: pages show the new ones (data: card_data).
        Kind("profile-updated", raw=True),
        Kind("sessions-ended", conversation=False, stored=False, ends_streams=True),
    )
}


def kind_of(name: str, *, stored: bool) -> Kind:
    """The registered kind, checked against how it is being sent."""
    kind = KINDS.get(name)
    if kind is None:
        raise ValueError(f"unknown event kind {name!r}: declare it in chipper.realtime.kinds")
    if kind.stored != stored:
        raise ValueError(f"{name!r} is {'stored' if kind.stored else 'live only'}")
    return kind


@dataclass(slots=True, eq=False)
class Envelope:
    """What travels between processes. `seqs[i]` is the event's number in `recipients[i]`'s
    sequence; live-only events have neither an id nor numbers."""

    kind: str
    conversation_id: int | None
    recipients: list[int]
    html: str = ""
    data: dict = field(default_factory=dict)
    id: int | None = None
    seqs: list[int] | None = None
    # Built by chipper.realtime.wire for the first stream of this process that sends it, then
    # reused by the others; never sent between processes.
    wire: dict = field(default_factory=dict, repr=False)

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "kind": self.kind,
                "conversation_id": self.conversation_id,
                "recipients": self.recipients,
                "seqs": self.seqs,
                "html": self.html,
                "data": self.data,
            }
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Envelope:
        d = json.loads(text)
        return cls(
            d["kind"],
            d["conversation_id"],
            d["recipients"],
            d["html"],
            d["data"],
            d["id"],
            d["seqs"],
        )
