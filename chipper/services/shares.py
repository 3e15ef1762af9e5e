"""Sharing to Chipper from a phone's share sheet (the manifest's share_target).

The share sheet posts what was shared (a title, text, a link, a file) before the person has
chosen a conversation. `hold()` checks and stores the file at once, exactly as a message's
attachment is checked, and keeps it aside in UPLOAD_FOLDER/held/; the "send to" page then
sends it to the conversation the person picks (`send()`), or drops it (`drop()`). Files held
longer than HOLD_HOURS are removed the next time anyone shares something.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict

from chipper import media
from chipper.models import Message, User
from chipper.services import Invalid
from chipper.services.conversations import Membership
from chipper.services.messages import Upload, send_message

HELD = "held"
HOLD_HOURS = 24


def compose(title: str, text: str, url: str) -> str:
    """One message text from the share sheet's fields. Apps fill them differently (many put
    the link inside `text`), so nothing is repeated."""
    parts: list[str] = []
    for part in (title, text, url):
        part = (part or "").strip()
        if part and not any(part in earlier for earlier in parts):
            parts.append(part)
    return "\n".join(parts)


def hold(title: str, text: str, url: str, upload: Upload | None) -> dict:
    """What was shared, checked and kept aside. Returns it as a small dict (it lives in the
    sharer's session until they send or drop it)."""
    body = compose(title, text, url)
    if not body and upload is None:
        raise Invalid("Nothing was shared: share a photo, a file, a link or some text.", "file")
    stored = media.store(upload.stream, upload.filename) if upload else None
    if stored:
        folder = _held_folder()
        for name in stored.names:
            os.replace(media.path_of(name), os.path.join(folder, name))
    return {"body": body, "file": asdict(stored) if stored else None}


def send(
    user: User,
    membership: Membership,
    body: str | None,
    held: dict | None,
    upload: Upload | None = None,
) -> Message:
    """Sends the held share (with the text as the person left it) to the conversation. With
    nothing held, the page is a plain upload form and `upload` is what was picked there."""
    if not (held and held.get("file")):
        return send_message(user, membership, body, upload)
    stored = media.StoredFile(**held["file"])
    folder = _held_folder()
    try:
        for name in stored.names:
            os.replace(os.path.join(folder, name), media.path_of(name))
    except FileNotFoundError:
        media.discard(stored.names)
        raise Invalid("The shared file is no longer here: share it again.", "file") from None
    # send_message removes the file again if the message cannot be sent.
    return send_message(user, membership, body, stored=stored)


def drop(held: dict | None) -> None:
    if held and held.get("file"):
        folder = _held_folder()
        for name in held["file"]["names"]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, name))


def _held_folder() -> str:
    folder = os.path.join(media.upload_folder(), HELD)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    return folder


def sweep() -> None:
    """Removes shares nobody sent: their sessions ended, or they never came back (a
    scheduled job, every UPLOAD_SWEEP_INTERVAL)."""
    folder = os.path.join(media.upload_folder(), HELD)
    if not os.path.isdir(folder):
        return  # nothing was ever shared here
    cutoff = time.time() - HOLD_HOURS * 3600
    for entry in os.scandir(folder):
        with contextlib.suppress(FileNotFoundError):
            if entry.is_file() and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
