"""The installable app: its manifest, and what the service worker keeps for offline use.

Everything the service worker needs from the server (what to precache, where the offline page
is, which paths it must never touch) is handed to it here, built with url_for, so sw.js holds
no URLs of its own.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from flask import current_app, url_for

# Chipper blue, and the page background of the light theme (css/base.css).
THEME_COLOR = "#0b63ce"
BACKGROUND_COLOR = "#f4f5f7"

STATIC = Path(__file__).resolve().parent.parent / "static"
# The calls code is native modules that import each other (js/calls/main.js the entry): all
# of them are part of the shell, whatever files that folder holds.
CALL_MODULES = sorted(f"js/calls/{path.name}" for path in (STATIC / "js" / "calls").glob("*.js"))
# The stylesheets, by concern, in the order every page links them (_head.html).
STYLESHEETS = [
    "css/base.css",
    "css/layout.css",
    "css/conversation.css",
    "css/composer.css",
    "css/call.css",
    "css/pages.css",
]
# The app shell: what every page loads. Precached, so a saved page opens offline with its
# styles and scripts.
SHELL_FILES = [
    *STYLESHEETS,
    "vendor/htmx-2.0.11.min.js",
    "vendor/htmx-ext-sse-2.2.4.min.js",
    "js/chipper.js",
    "js/attach.js",
    "js/mentions.js",
    "js/people.js",
    *CALL_MODULES,
    "js/pwa.js",
    "vendor/lucide-1.87.0/icons.svg",  # filters.ICON_SPRITE: the buttons' icons, offline too
    "icons/chipper.svg",
    "icons/icon-192.png",
    "icons/icon-512.png",
    "icons/icon-maskable-512.png",
    "icons/badge-96.png",
    "icons/apple-touch-icon.png",
]
SERVICE_WORKER = "js/sw.js"
# Conversation pages a device keeps for reading offline, newest first; older ones are dropped.
SAVED_PAGES = 30
# Attachments are files of other people's conversations: the browser's private HTTP cache
# may hold them for the session, the service worker never stores them.
SHARED_KINDS = ["image/*", "audio/*", "video/*", "application/pdf", ".pdf"]


def manifest() -> dict:
    icons = [
        _icon("icons/icon-192.png", 192, "any"),
        _icon("icons/icon-512.png", 512, "any"),
        _icon("icons/icon-maskable-512.png", 512, "maskable"),
    ]
    return {
        "id": url_for("conversations.index"),
        "name": "Chipper",
        "short_name": "Chipper",
        "description": "Private and group conversations, photos, voice messages and calls.",
        "lang": "en",
        "dir": "ltr",
        "start_url": url_for("conversations.index"),
        "scope": url_for("auth.home"),
        "display": "standalone",
        "orientation": "any",
        "theme_color": THEME_COLOR,
        "background_color": BACKGROUND_COLOR,
        "categories": ["social", "communication"],
        "icons": icons,
        "shortcuts": [
            {
                "name": "New conversation",
                "short_name": "New",
                "description": "Start a private or group conversation",
                "url": url_for("conversations.new"),
                "icons": [_icon("icons/icon-96.png", 96, "any")],
            },
        ],
        # The phone's share sheet posts here: the same form fields as the "send to" page.
        "share_target": {
            "action": url_for("pwa.share"),
            "method": "POST",
            "enctype": "multipart/form-data",
            "params": {
                "title": "title",
                "text": "text",
                "url": "url",
                "files": [{"name": "file", "accept": SHARED_KINDS}],
            },
        },
    }


def _icon(path: str, size: int, purpose: str) -> dict:
    return {
        "src": url_for("static", filename=path),
        "sizes": f"{size}x{size}",
        "type": "image/png",
        "purpose": purpose,
    }


def worker_settings() -> dict:
    """What sw.js is told: its cache version, what to precache and what to leave alone."""
    precache = [url_for("static", filename=name) for name in SHELL_FILES]
    precache += [url_for("pwa.offline"), url_for("pwa.manifest")]
    return {
        "version": shell_version(),
        "precache": precache,
        "offline": url_for("pwa.offline"),
        "savedPages": SAVED_PAGES,
        # Never answered from a cache: the live stream, other people's files, the worker itself.
        "never": [
            url_for("streams.show"),
            url_for("attachments.show", attachment_id=0).rsplit("/", 1)[0] + "/",
            url_for("pwa.service_worker"),
        ],
        "csrfUrl": url_for("auth.login"),
        "pushSubscriptions": url_for("notifications.subscribe"),
        "publicKey": current_app.extensions["chipper.push"].public_key or "",
        "home": url_for("conversations.index"),
        "icon": url_for("static", filename="icons/icon-192.png"),
        "badge": url_for("static", filename="icons/badge-96.png"),
    }


def shell_version() -> str:
    """Changes whenever a shell file or the worker changes, so browsers install the new worker
    and drop the old caches. Computed once per process."""
    cached = current_app.extensions.get("chipper.shell_version")
    if cached:
        return cached
    digest = hashlib.sha256()
    static = Path(current_app.static_folder)
    for name in [*SHELL_FILES, SERVICE_WORKER]:
        digest.update(name.encode())
        digest.update((static / name).read_bytes())
    digest.update(json.dumps(manifest(), sort_keys=True).encode())
    version = digest.hexdigest()[:12]
    current_app.extensions["chipper.shell_version"] = version
    return version


def service_worker_source() -> str:
    static = Path(current_app.static_folder)
    settings = json.dumps(worker_settings(), separators=(",", ":"))
    return f"self.CHIPPER = {settings};\n" + (static / SERVICE_WORKER).read_text()
