"""Push notifications: the browsers that take them, muting, and who gets one after a message
or a call.

Sending happens on the process's push sender thread, after the change is committed: a
request never waits on a push service, and nobody is notified of something that rolled back.
"""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import urlsplit

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec
from flask import current_app, url_for
from sqlalchemy.exc import IntegrityError

from chipper.extensions import db
from chipper.models import (
    Call,
    Conversation,
    Message,
    Participant,
    PushSubscription,
    User,
    utcnow,
)
from chipper.push import transport
from chipper.push.transport import Outcome
from chipper.services import Conflict, Invalid
from chipper.services.conversations import total_unread

ENDPOINT_MAX = 2048
P256DH_BYTES = 65  # an uncompressed P-256 point
AUTH_BYTES = 16
BASE64URL = re.compile(r"[A-Za-z0-9_-]+")

_subscriptions = PushSubscription.__table__
_participants = Participant.__table__


# Subscriptions


def check_endpoint(endpoint) -> str:
    """The push service URL a browser gave us, if the server may post to it."""
    if not isinstance(endpoint, str) or not endpoint:
        raise Invalid("Send the subscription's endpoint.", field="endpoint")
    if len(endpoint) > ENDPOINT_MAX:
        raise Invalid(f"Push endpoints are at most {ENDPOINT_MAX} characters.", field="endpoint")
    if not endpoint.isascii() or any(c.isspace() or not c.isprintable() for c in endpoint):
        raise Invalid("That is not a push endpoint URL.", field="endpoint")
    allow_private = transport.allows_private()
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        raise Invalid("That is not a push endpoint URL.", field="endpoint") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        raise Invalid("Push endpoints are https:// URLs.", field="endpoint")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise Invalid("That is not a push endpoint URL.", field="endpoint")
    if not allow_private and (problem := transport.host_problem(parts.hostname, port)):
        raise Invalid(problem, field="endpoint")
    return endpoint


def _key(value, size: int, field: str) -> str:
    """A base64url key of exactly `size` bytes, stored without padding."""
    if not isinstance(value, str) or not value:
        raise Invalid("Send the subscription's keys.", field=field)
    text = value.rstrip("=")
    if not BASE64URL.fullmatch(text):
        raise Invalid("The key is not base64url.", field=field)
    try:
        raw = _decode(text)
    except ValueError:  # a length no base64 text has
        raise Invalid("The key is not base64url.", field=field) from None
    if len(raw) != size:
        raise Invalid(f"The key must be {size} bytes; this one has {len(raw)}.", field=field)
    return text


def subscribe(user: User, endpoint, p256dh, auth) -> PushSubscription:
    """Stores the browser's subscription for the user. An endpoint stored for someone else
    moves to this user: a browser profile belongs to whoever is signed in there now."""
    endpoint = check_endpoint(endpoint)
    p256dh = _key(p256dh, P256DH_BYTES, "keys.p256dh")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _decode(p256dh))
    except ValueError:
        raise Invalid("The key is not a P-256 public key.", field="keys.p256dh") from None
    auth = _key(auth, AUTH_BYTES, "keys.auth")
    for _ in range(2):
        subscription = db.session.scalar(
            sa.select(PushSubscription).where(PushSubscription.endpoint == endpoint)
        )
        if subscription is None:
            subscription = PushSubscription(endpoint=endpoint)
            db.session.add(subscription)
        subscription.user_id, subscription.p256dh, subscription.auth = user.id, p256dh, auth
        # Subscribed (again) now: the newest browsers are the ones kept.
        subscription.created_at = utcnow()
        try:
            db.session.flush()
            _keep_newest(user, subscription)
            db.session.commit()
        except IntegrityError:
            # Another tab of this browser stored the same endpoint a moment ago: update that.
            db.session.rollback()
            continue
        return subscription
    raise Conflict("The subscription changed while it was being stored; try again.")


def _keep_newest(user: User, subscription: PushSubscription) -> None:
    """Each message costs one request per subscription: a user gets a few browsers' worth,
    not an unbounded list of endpoints for the server to post to. The one just subscribed
    stays, with the newest others."""
    limit = current_app.config["PUSH_MAX_SUBSCRIPTIONS"]
    others = sa.and_(_subscriptions.c.user_id == user.id, _subscriptions.c.id != subscription.id)
    newest = (
        sa.select(_subscriptions.c.id)
        .where(others)
        .order_by(_subscriptions.c.created_at.desc(), _subscriptions.c.id.desc())
        .limit(max(limit - 1, 0))
    )
    db.session.execute(
        sa.delete(_subscriptions).where(
            others, _subscriptions.c.id.not_in(newest.scalar_subquery())
        )
    )


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def unsubscribe(user: User, endpoint) -> int | None:
    """Forgets one of the user's browsers; the id it had, or None if it was not theirs."""
    if not isinstance(endpoint, str) or not endpoint:
        raise Invalid("Send the subscription's endpoint.", field="endpoint")
    deleted = db.session.scalar(
        sa.delete(_subscriptions)
        .where(_subscriptions.c.endpoint == endpoint, _subscriptions.c.user_id == user.id)
        .returning(_subscriptions.c.id)
    )
    db.session.commit()
    return deleted


def forget_browser(user: User, subscription_id: int | None) -> None:
    """Signing out: this browser stops getting the user's notifications (the session named
    its subscription when it subscribed)."""
    if subscription_id is None:
        return
    db.session.execute(
        sa.delete(_subscriptions).where(
            _subscriptions.c.id == subscription_id, _subscriptions.c.user_id == user.id
        )
    )
    db.session.commit()


def set_muted(user: User, conversation: Conversation, muted: bool) -> bool:
    """Mutes (or unmutes) the conversation's message notifications for the user."""
    db.session.execute(
        sa.update(_participants)
        .where(
            _participants.c.conversation_id == conversation.id,
            _participants.c.user_id == user.id,
        )
        .values(muted=muted)
    )
    db.session.commit()
    return muted


def is_muted(user: User, conversation: Conversation) -> bool:
    if "participants" not in sa.inspect(conversation).unloaded:
        return any(p.muted for p in conversation.participants if p.user_id == user.id)
    return bool(
        db.session.scalar(
            sa.select(Participant.muted).where(
                Participant.conversation_id == conversation.id, Participant.user_id == user.id
            )
        )
    )


# After a commit: hand the work to the sender thread


def notify_message(message: Message, member_ids=()) -> None:
    """Who is watching is read now, as the message reaches their tabs: someone who sees it
    on a visible tab gets no notification of it, even when the sender thread comes to it
    after they switched away."""
    push = current_app.extensions["chipper.push"]
    if push.enabled:
        presence = current_app.extensions["chipper.realtime"].presence
        others = [uid for uid in member_ids if uid != message.user_id]
        watching = frozenset(presence.watching(others)) if others else frozenset()
        push.sender.submit(deliver_message, message.id, watching)


def notify_call(call: Call) -> None:
    push = current_app.extensions["chipper.push"]
    if push.enabled:
        push.sender.submit(deliver_call, call.id)


# On the sender thread


def deliver_message(message_id: int, watching: frozenset[int] = frozenset()) -> None:
    message = db.session.get(Message, message_id)
    if message is None or message.is_deleted:
        return
    conversation = db.session.get(Conversation, message.conversation_id)
    author = message.author
    data = {
        "type": "message",
        "title": _title(author, conversation),
        "body": _cut(message.preview, current_app.config["PUSH_BODY_MAX_CHARS"]),
        "url": _path("conversations.show", conversation_id=conversation.id),
        "conversation_id": conversation.id,
        "sender": _sender(author),
        "tag": f"conversation-{conversation.id}",
        **_icon(author),
    }
    ttl = current_app.config["PUSH_TTL"]
    _deliver(
        conversation.id,
        message.user_id,
        data,
        ttl=ttl,
        urgency="normal",
        muting=True,
        # Someone it names hears of it even in a conversation they muted, and is told so.
        heard=frozenset(m.user_id for m in message.mentions),
        heard_title=_title(author, conversation, mentioned=True),
        seen=watching,
    )


def deliver_call(call_id: int) -> None:
    call = db.session.get(Call, call_id)
    if call is None or not call.is_ringing:
        return  # answered or given up before the sender got to it
    conversation = call.conversation
    caller = call.caller
    data = {
        "type": "call",
        "title": _title(caller, conversation),
        "body": f"Incoming {call.type} call",
        "url": _path("calls.show", call_id=call.id),
        "conversation_id": conversation.id,
        "call_id": call.id,
        "sender": _sender(caller),
        "tag": f"call-{call.id}",
        **_icon(caller),
    }
    # No use ringing a phone after the call has stopped ringing.
    ttl = int(current_app.config["CALL_RING_SECONDS"])
    # A call rings even in a muted conversation.
    _deliver(conversation.id, call.initiated_by, data, ttl=ttl, urgency="high", muting=False)


def _deliver(
    conversation_id: int,
    actor_id: int | None,
    data: dict,
    *,
    ttl: int,
    urgency: str,
    muting: bool,
    heard: frozenset[int] = frozenset(),
    heard_title: str = "",
    seen: frozenset[int] = frozenset(),
) -> None:
    """Posts `data` (plus each recipient's unread count) to every browser of every member
    but the actor who wants it, then forgets the browsers their push service says are gone.
    Those `heard` (named by the message) get `heard_title` instead of the title."""
    outbox = []
    for user, subscriptions in _recipients(conversation_id, actor_id, muting, heard, seen):
        mine = {"title": heard_title, "mentioned": True} if user.id in heard else {}
        payload = _encode({**data, **mine, "unread": total_unread(user)})
        outbox += [(s.id, s.endpoint, s.p256dh, s.auth, payload) for s in subscriptions]
    # End the read transaction: nothing stays open while push services answer.
    db.session.commit()
    sent, gone = [], []
    for subscription_id, endpoint, p256dh, auth, payload in outbox:
        outcome = transport.send(endpoint, p256dh, auth, payload, ttl=ttl, urgency=urgency)
        if outcome is Outcome.SENT:
            sent.append(subscription_id)
        elif outcome is Outcome.GONE:
            gone.append(subscription_id)
    if gone:
        db.session.execute(sa.delete(_subscriptions).where(_subscriptions.c.id.in_(gone)))
    if sent:
        db.session.execute(
            sa.update(_subscriptions)
            .where(_subscriptions.c.id.in_(sent))
            .values(last_used_at=utcnow())
        )
    db.session.commit()


def _recipients(
    conversation_id: int,
    actor_id: int | None,
    muting: bool,
    heard: frozenset[int] = frozenset(),
    seen: frozenset[int] = frozenset(),
) -> list[tuple[User, list[PushSubscription]]]:
    """Members other than the actor with a subscribed browser, who have not muted the
    conversation (when `muting`, unless `heard`: the message names them), and who are not
    watching, now or when it happened (`seen`):
    a visible tab shows it already."""
    stmt = (
        sa.select(User)
        .join(Participant, Participant.user_id == User.id)
        .where(
            Participant.conversation_id == conversation_id,
            User.id != (actor_id or 0),
            sa.select(PushSubscription.id).where(PushSubscription.user_id == User.id).exists(),
        )
        .order_by(User.id)
    )
    if muting:
        # Muted, unless the message names them (`heard`).
        stmt = stmt.where(sa.or_(Participant.muted.is_(False), User.id.in_(heard)))
    users = list(db.session.scalars(stmt))
    if not users:
        return []
    presence = current_app.extensions["chipper.realtime"].presence
    watching = presence.watching([u.id for u in users])
    users = [u for u in users if u.id not in watching and u.id not in seen]
    if not users:
        return []
    subscriptions = db.session.scalars(
        sa.select(PushSubscription)
        .where(PushSubscription.user_id.in_([u.id for u in users]))
        .order_by(PushSubscription.id)
    ).all()
    return [(u, [s for s in subscriptions if s.user_id == u.id]) for u in users]


def _title(sender: User | None, conversation: Conversation, mentioned: bool = False) -> str:
    name = sender.name if sender else "Someone"
    if mentioned:
        name = f"{name} mentioned you"
    if conversation.is_group:
        return f"{name} in {conversation.name or 'Group'}"
    return name


def _sender(user: User | None) -> dict | None:
    return {"id": user.id, "name": user.name} if user else None


def _icon(user: User | None) -> dict:
    """The sender's picture as the notification's icon, when they have one."""
    if user is None or not user.avatar_name:
        return {}
    return {"icon": user.avatar_url}


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())  # one line, as a notification shows it
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _encode(payload: dict) -> str:
    """JSON under PUSH_PAYLOAD_MAX_BYTES: push services refuse more than 4 KB, encrypted."""
    limit = current_app.config["PUSH_PAYLOAD_MAX_BYTES"]
    body = payload["body"]
    while True:
        data = json.dumps({**payload, "body": body}, ensure_ascii=False, separators=(",", ":"))
        if len(data.encode()) <= limit or not body:
            return data
        # Only text that grows a lot in JSON (control characters, escaped six times over)
        # gets here.
        body = body[: len(body) // 2]


def _path(endpoint: str, **values) -> str:
    """A path of the app, on the sender thread (url_for needs a request there)."""
    with current_app.test_request_context("/"):
        return url_for(endpoint, **values)
