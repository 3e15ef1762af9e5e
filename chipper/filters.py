"""Jinja filters for names and times. Times are stored and shown in UTC."""

import secrets
from datetime import datetime, timedelta

from flask import Flask
from flask_login import current_user

from chipper.models import iso, utcnow


def initials(name: str) -> str:
    parts = [p for p in (name or "").split() if p]
    return "".join(p[0] for p in parts[:2]).upper() or "?"


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


def init_app(app: Flask) -> None:
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
