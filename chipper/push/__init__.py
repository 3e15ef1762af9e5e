"""Web Push: notifications on the phone or desktop when no Chipper tab is looking.

Browsers subscribe at a push service (their vendor's) with our public VAPID key and hand us the
subscription; after a message or a call is committed, the sender thread posts an encrypted
notification to each subscribed browser of each member who is not watching.
"""

from dataclasses import dataclass
from typing import Any

from flask import Flask
from py_vapid import Vapid02

from chipper.push import keys
from chipper.push.sender import PushSender

# The subscription this browser made, kept in its session, so signing out here stops the
# notifications here (and nowhere else).
SESSION_KEY = "push_subscription_id"
NOT_SET_UP = "Push notifications are not set up on this server (flask --app chipper vapid-keys)"


@dataclass
class Push:
    vapid: Vapid02 | None  # None: no key configured, nothing is sent
    public_key: str
    sender: PushSender
    http: Any = None  # the sender thread's HTTP session, made on first use

    @property
    def enabled(self) -> bool:
        return self.vapid is not None


def init_app(app: Flask) -> None:
    subject = app.config["VAPID_SUBJECT"]
    if not subject.startswith(("mailto:", "https:")):
        raise ValueError(f"VAPID_SUBJECT must be a mailto: or https: URL, not {subject!r}.")
    text = app.config["VAPID_PRIVATE_KEY"]
    vapid = keys.load(text) if text else None
    push = Push(vapid, keys.public_key(vapid) if vapid else "", PushSender(app))
    app.extensions["chipper.push"] = push
    # For the page's <meta>: what the browser's pushManager.subscribe() takes.
    app.add_template_global(lambda: push.public_key, "vapid_public_key")
