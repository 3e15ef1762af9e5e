"""Abuse limits: a flood gets 429 with Retry-After and a message that says when to try again,
nothing of it is stored, and one user's flood does not hold back anyone else."""

import pytest
import sqlalchemy as sa

from chipper.models import Message
from tests.conftest import HTMX, JSON, PASSWORD, as_json, text


@pytest.fixture
def app_config():
    return {
        "RATELIMIT_ENABLED": True,
        "LIMIT_LOGIN": "3 per minute",
        "LIMIT_REGISTER": "2 per minute",
        "LIMIT_SEND": "5 per minute",
        "LIMIT_TYPING": "2 per minute",
        "LIMIT_CALL_START": "1 per minute",
    }


def wrong_login(client, email, address="192.0.2.1", **kwargs):
    return client.post(
        "/login",
        data={"email": email, "password": "not the password"},
        environ_base={"REMOTE_ADDR": address},
        **kwargs,
    )


def test_wrong_passwords_from_one_address_are_limited(client, make):
    ada = make.user("Ada")
    assert [wrong_login(client, make.email(ada)).status_code for _ in range(3)] == [401] * 3
    page = wrong_login(client, make.email(ada))
    assert page.status_code == 429
    assert 0 < int(page.headers["Retry-After"]) <= 60
    assert "Try again in" in text(page) and "seconds" in text(page)
    api = wrong_login(client, make.email(ada), headers=JSON)
    assert api.status_code == 429 and "Try again in" in as_json(api)["error"]
    # The right password is refused too while the limit lasts: the limit comes first.
    right = client.post(
        "/login",
        json={"email": make.email(ada), "password": PASSWORD},
        headers=JSON,
        environ_base={"REMOTE_ADDR": "192.0.2.1"},
    )
    assert right.status_code == 429


def test_one_account_is_limited_whatever_address_the_guesses_come_from(client, make):
    ada, bob = make.user("Ada"), make.user("Bob")
    codes = [wrong_login(client, make.email(ada), f"198.51.100.{n}").status_code for n in range(4)]
    assert codes == [401, 401, 401, 429]
    # Another account from a fresh address is not affected.
    assert wrong_login(client, make.email(bob), "203.0.113.9").status_code == 401


def test_registrations_from_one_address_are_limited(client, make, sql):
    make.user("Ada")
    codes = [
        client.post(
            "/register",
            json={"name": f"P{n}", "email": f"p{n}@example.com", "password": PASSWORD},
            headers=JSON,
        ).status_code
        for n in range(3)
    ]
    assert codes == [201, 201, 429]


def test_a_flood_of_sends_is_refused_unstored_and_others_still_send(app, make, auth, client, sql):
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    auth.login(ada)
    url = f"/conversations/{chat}/messages"
    codes = [client.post(url, json={"body": f"{n}"}, headers=JSON).status_code for n in range(7)]
    assert codes == [201] * 5 + [429] * 2
    fragment = client.post(url, data={"body": "more"}, headers=HTMX)
    assert fragment.status_code == 429
    assert text(fragment).startswith('<p class="error"') and "Try again in" in text(fragment)
    assert sql.scalar(sa.select(sa.func.count(Message.id))) == 5
    bobs = app.test_client()
    bobs.post("/login", json={"email": make.email(bob), "password": PASSWORD}, headers=JSON)
    assert bobs.post(url, json={"body": "hi Ada"}, headers=JSON).status_code == 201


def test_typing_and_call_starts_are_limited_per_user(make, auth, client):
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    auth.login(ada)
    typing = [client.post(f"/conversations/{chat}/typing").status_code for _ in range(3)]
    assert typing[-1] == 429 and 429 not in typing[:2]
    calls = [
        client.post(f"/conversations/{chat}/calls", json={"type": "audio"}, headers=JSON)
        for _ in range(2)
    ]
    assert calls[0].status_code == 201 and calls[1].status_code == 429


@pytest.mark.parametrize("app_config", [{"RATELIMIT_ENABLED": False, "LIMIT_LOGIN": "1 per hour"}])
def test_limits_switch_off(client, make):
    ada = make.user("Ada")
    assert {wrong_login(client, make.email(ada)).status_code for _ in range(5)} == {401}
