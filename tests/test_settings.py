"""Settings an admin changes on the admin page while the server runs (who may register, how
long live updates are kept for replay), and the accounts table's "last active"."""

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from chipper.extensions import db
from chipper.models import AuditEntry, Event, Setting, utcnow
from chipper.services import settings
from tests.conftest import JSON, PASSWORD, as_json, text


def person(n: int) -> dict:
    return {"name": f"Person {n}", "email": f"person{n}@example.com", "password": PASSWORD}


@pytest.fixture
def app_config():
    return {"REGISTRATION": "invite", "EVENT_RETENTION_DAYS": 7}


@pytest.fixture
def admin(client, make, auth):
    user_id = make.user("Ada")
    auth.login(user_id)
    return user_id


def register(app, n: int):
    return app.test_client().post("/register", json=person(n), headers=JSON)


def test_the_admin_opens_and_closes_registration_without_a_restart(app, admin, client, sql):
    page = text(client.get("/admin"))
    assert 'name="registration" value="invite" checked' in page
    assert register(app, 1).status_code == 403  # invite only, as configured

    response = client.post("/admin/settings", data={"registration": "open"})
    assert response.status_code == 303 and response.headers["Location"].endswith("#settings")
    assert register(app, 2).status_code == 201
    assert 'name="registration" value="open" checked' in text(client.get("/admin"))

    closed = client.post("/admin/settings", json={"registration": "closed"}, headers=JSON)
    assert as_json(closed)["settings"] == {"registration": "closed", "event_retention_days": 7}
    refused = register(app, 3)
    assert refused.status_code == 403 and "not taking new accounts" in as_json(refused)["error"]
    details = sql.scalars(sa.select(AuditEntry.detail).order_by(AuditEntry.id))
    assert details == ["registration: open", "registration: closed"]
    assert "Ada changed a setting" in text(client.get("/admin"))


def test_saving_the_same_values_again_changes_and_records_nothing(app, admin, client, sql):
    client.post("/admin/settings", data={"registration": "invite", "event_retention_days": "7"})
    assert sql.scalar(sa.select(sa.func.count()).select_from(Setting)) == 0
    assert sql.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) == 0


@pytest.mark.parametrize(
    "values, field, words",
    [
        ({"registration": "everyone"}, "registration", "Choose open, invite or closed."),
        ({"event_retention_days": "0"}, "event_retention_days", "between 1 and 365"),
        ({"event_retention_days": "a week"}, "event_retention_days", "whole number"),
        ({"registration": "open", "event_retention_days": "400"}, "event_retention_days", "365"),
    ],
)
def test_a_refused_setting_says_why_and_saves_nothing(admin, client, sql, values, field, words):
    page = client.post("/admin/settings", data=values)
    assert page.status_code == 422 and words in text(page)
    assert f'id="{field}-error"' in text(page)
    api = client.post("/admin/settings", json=values, headers=JSON)
    assert api.status_code == 422 and as_json(api)["field"] == field
    # Not even the valid one of the two.
    assert sql.scalar(sa.select(sa.func.count()).select_from(Setting)) == 0
    assert as_json(client.get("/admin", headers=JSON))["settings"]["registration"] == "invite"


def test_only_admins_change_settings(app, make, admin, client, login_client, sql):
    bob = login_client(make.user("Bob"))
    assert bob.post("/admin/settings", data={"registration": "open"}).status_code == 404
    assert app.test_client().post("/admin/settings", json={}, headers=JSON).status_code == 401
    assert sql.scalar(sa.select(sa.func.count()).select_from(Setting)) == 0


def test_the_prune_keeps_events_as_long_as_the_admin_says(app, make, admin, client, sql):
    bob = make.user("Bob")
    make.message(admin, make.private(admin, bob), "three days ago")
    with app.app_context():
        old = utcnow() - timedelta(days=3)
        db.session.execute(sa.update(Event).values(created_at=old))
        db.session.commit()
        assert settings.prune_events() == 0  # kept for 7 days, as configured
    client.post("/admin/settings", data={"event_retention_days": "2"})
    with app.app_context():
        assert settings.prune_events() == 2  # the conversation's creation and the message
    assert sql.scalar(sa.select(sa.func.count()).select_from(Event)) == 0


def test_the_accounts_table_says_when_each_was_last_active(app, make, admin, client, login_client):
    make.user("Bob")
    cara = make.user("Cara")
    make.message(cara, make.private(admin, cara), "hello")
    presence = app.extensions["chipper.realtime"].presence
    presence.connect(admin, "a-stream")
    try:
        page = text(client.get("/admin"))
    finally:
        presence.disconnect(admin, "a-stream")
    last_active = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", page, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        if len(cells) == 6:  # name, email, joined, last active, messages, actions
            last_active[cells[0].split(" ")[0]] = cells[3]
    assert last_active["Ada"] == "online now"
    assert last_active["Bob"] == "never"
    assert last_active["Cara"].startswith("<time datetime=")
