"""Jinja filters for names and times. Times are stored and shown in UTC."""

import secrets
from datetime import datetime, timedelta

from flask import Flask, url_for
from flask_login import current_user
from markupsafe import Markup

from chipper import formatting
from chipper.models import avatar_colour, initials, iso, utcnow


def clock(value: datetime) -> str:
    return value.strftime("%H:%M")


def full_time(value: datetime) -> str:
    return value.strftime("%A %-d %B %Y, %H:%M UTC")


def day_label(value: datetime) -> str:
    today = utcnow().date()
    if value.date() == today:
        return "Today"
    if value.date() == today - timedelta(days=1):
        return "Yesterday"
    if value.year == today.year:
        return value.strftime("%A %-d %B")
    return value.strftime("%A %-d %B %Y")


def when(value: datetime) -> str:
    """Short time for lists: 14:05 today, 'Mon 23 Nov' this year, '23 Nov 2025' before."""
    today = utcnow().date()
    if value.date() == today:
        return clock(value)
    if value.year == today.year:
        return value.strftime("%a %-d %b")
    return value.strftime("%-d %b %Y")


def file_size(size: int) -> str:
    """1 KB = 1,024 bytes, as file managers show it; one decimal below 10."""
    value = float(size)
    for unit in ("bytes", "KB", "MB"):
        if value < 1024 or unit == "MB":
            break
        value /= 1024
    if unit == "bytes":
        return f"{size} bytes" if size != 1 else "1 byte"
    return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"


# Checked in order: Edge and Opera also say Chrome, Chrome also says Safari. By hand, since a
# name for the account page's list of sign-ins needs only these few tokens, not the thousands
# of patterns of a full user-agent parser.
_BROWSERS = [
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Safari/", "Safari"),
]
_SYSTEMS = [
    ("Android", "Android"),
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
]


def browser_name(user_agent: str) -> str:
    """'Firefox on Android' from a User-Agent header; what is not recognised stays as sent."""
    browser = next((name for token, name in _BROWSERS if token in user_agent), None)
    system = next((name for token, name in _SYSTEMS if token in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or user_agent[:60] or "An unnamed browser"


ICON_SPRITE = "vendor/lucide-1.87.0/icons.svg"  # written by scripts/vendor-icons.py
RUN_GAP = timedelta(minutes=5)  # messages of one sender closer than this form one run


def icon(name: str) -> Markup:
    """An icon of the vendored Lucide sprite, decoration only: its button or link carries the
    name (aria-label or text) a screen reader says."""
    sprite = url_for("static", filename=ICON_SPRITE)
    return Markup(
        '<svg class="icon" aria-hidden="true" focusable="false"><use href="{}#{}"></use></svg>'
    ).format(sprite, name)


def continues_run(message, previous) -> bool:
    """Whether `message` follows `previous` in one run: the same sender, the same day, a few
    minutes apart, both plain messages (a deleted one or a call entry ends a run)."""
    if previous is None or not hasattr(previous, "user_id"):
        return False
    return (
        message.user_id is not None
        and message.user_id == previous.user_id
        and message.type != "call"
        and previous.type != "call"
        and not previous.is_deleted
        and message.created_at.date() == previous.created_at.date()
        and message.created_at - previous.created_at < RUN_GAP
    )


def formatted(message, viewer_id: int | None = None) -> formatting.Shown:
    """A message's text as it is shown: formatted, its mentions marked (the viewer's own
    strongly, on a page rendered for them)."""
    return formatting.render(message.body, message.mention_names, viewer_id)


def init_app(app: Flask) -> None:
    app.add_template_filter(formatted)
    app.add_template_global(icon)
    app.add_template_global(continues_run)
    app.add_template_filter(avatar_colour)
    for f in (initials, clock, full_time, day_label, when, file_size, browser_name):
        app.add_template_filter(f)
    app.add_template_filter(iso, "isotime")
    app.add_template_global(lambda: secrets.token_urlsafe(16), "new_client_key")

    @app.context_processor
    def navigation():
        from chipper.services.calls import ringing_for
        from chipper.services.conversations import total_unread

        # Functions, so only full pages (which show the navigation) pay for the queries.
        return {
            "nav_unread": lambda: total_unread(current_user),
            "ringing_calls": lambda: ringing_for(current_user),
            # The page's clock may be off: ringing stops by the server's time.
            "server_now": lambda: iso(utcnow()),
        }
