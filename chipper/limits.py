"""Abuse limits (Flask-Limiter): sign-in and registration per address and per account, and
per user the things one person could flood: sends, uploads, typing, calls and their signals.

Each limit is a config string ("10 per minute;100 per hour"), read at request time. Counts
live in Redis when REDIS_URL is set (shared by every process) and in memory otherwise.
`RATELIMIT_ENABLED=0` switches them all off (load tests, the bench). A limited request gets
429 with Retry-After and is refused before its view runs, so nothing is stored.
"""

import math
import time

from flask import Flask, current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import current_user

limiter = Limiter(key_func=get_remote_address)


def per_user() -> str:
    if current_user.is_authenticated:
        return f"user:{current_user.id}"
    return f"ip:{get_remote_address()}"


def per_account() -> str:
    """The email a sign-in is for, so guessing one account's password from many addresses
    meets the same limit."""
    body = request.get_json(silent=True) if request.is_json else request.form
    email = body.get("email", "") if isinstance(body, dict) or hasattr(body, "get") else ""
    return "account:" + (email if isinstance(email, str) else "").strip().lower()[:254]


def configured(name: str):
    """The limit named in config, read when the request comes."""
    return lambda: current_app.config[name]


def retry_after() -> int:
    """Whole seconds until the limit that was hit lets requests through again."""
    limit = limiter.current_limit
    if limit is None:
        return 60
    return max(1, math.ceil(limit.reset_at - time.time()))


def init_app(app: Flask) -> None:
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config.get("REDIS_URL") or "memory://")
    app.config.setdefault("RATELIMIT_KEY_PREFIX", app.config.get("REDIS_PREFIX", "chipper"))
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    # A Redis outage must not refuse every request: count in memory until it is back.
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    limiter.init_app(app)
