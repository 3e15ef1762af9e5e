"""Telling the people someone shares a conversation with that they came online or went
offline (live only, never stored)."""

from flask import current_app

from chipper.extensions import db
from chipper.jobs import scheduler_of
from chipper.realtime import events
from chipper.services.conversations import contact_ids


def announce(user_id: int, online: bool) -> None:
    recipients = contact_ids(user_id)
    db.session.remove()
    if recipients:
        envelope = events.ephemeral(
            "presence", None, recipients, data={"user_id": user_id, "online": online}
        )
        events.publish(envelope)


def came_online(user_id: int) -> None:
    announce(user_id, True)


def check_later(user_id: int) -> None:
    """Moving between pages closes one stream and opens another a moment later: wait
    PRESENCE_OFFLINE_GRACE before saying someone went offline, so presence does not flicker."""
    app = current_app._get_current_object()
    scheduler_of(app).after(app.config["PRESENCE_OFFLINE_GRACE"], went_offline, user_id)


def went_offline(user_id: int) -> None:
    if user_id not in current_app.extensions["chipper.realtime"].presence.online([user_id]):
        announce(user_id, False)
