"""Settings an admin may change while the server runs: who may register and how long events
are kept for replay. The server's configuration gives each its value until an admin changes
it on the admin page; from then on the row in `settings` wins, in every process (it is read
from the database each time, which the places that ask can afford: a registration, the
hourly prune)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app

from chipper.extensions import db
from chipper.models import Setting, User, utcnow
from chipper.realtime import store
from chipper.services import Invalid
from chipper.services.admin import audit
from chipper.services.invites import require_admin

REGISTRATION_MODES = ("open", "invite", "closed")


def _registration(raw: str) -> str:
    mode = raw.strip().lower()
    if mode not in REGISTRATION_MODES:
        raise Invalid("Choose open, invite or closed.", "registration")
    return mode


def _retention(raw: str) -> str:
    try:
        days = int(raw.strip())
    except ValueError:
        raise Invalid("Give a whole number of days.", "event_retention_days") from None
    if not 1 <= days <= 365:
        raise Invalid("Keep events between 1 and 365 days.", "event_retention_days")
    return str(days)


@dataclass(frozen=True)
class RunTimeSetting:
    name: str
    config_key: str
    check: Callable[[str], str]  # the value as stored, or Invalid
    read: Callable[[str], object]  # the stored text as the value callers use


SETTINGS = {
    s.name: s
    for s in (
        RunTimeSetting("registration", "REGISTRATION", _registration, str),
        RunTimeSetting("event_retention_days", "EVENT_RETENTION_DAYS", _retention, int),
    )
}


def configured(name: str):
    """What the server's configuration says, before any admin change."""
    setting = SETTINGS[name]
    raw = current_app.config.get(setting.config_key)
    try:
        return setting.read(setting.check(str(raw)))
    except Invalid:
        # A mistyped REGISTRATION falls back to the safe default for a new install.
        return "invite" if name == "registration" else 7


def value(name: str):
    row = db.session.get(Setting, name)
    return SETTINGS[name].read(row.value) if row is not None else configured(name)


def current() -> dict[str, object]:
    return {name: value(name) for name in SETTINGS}


def change(actor: User, values: dict[str, str | None]) -> dict[str, object]:
    """Saves the settings given (a blank one is left as it is); each change is in the audit
    log. Nothing is saved when one of them is refused."""
    require_admin(actor)
    checked = {
        name: SETTINGS[name].check(raw)
        for name, raw in values.items()
        if name in SETTINGS and raw is not None and raw.strip()
    }
    for name, stored in checked.items():
        if str(value(name)) == stored:
            continue
        row = db.session.get(Setting, name)
        if row is None:
            db.session.add(Setting(name=name, value=stored, updated_at=utcnow()))
        else:
            row.value, row.updated_at = stored, utcnow()
        audit(actor, "changed a setting", detail=f"{name.replace('_', ' ')}: {stored}")
    db.session.commit()
    return current()


def prune_events() -> int:
    """The scheduler's prune of old events, with the retention in force now."""
    return store.prune(value("event_retention_days"))
