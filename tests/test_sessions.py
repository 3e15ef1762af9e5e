"""Sign-ins the server can end: logout, "sign out everywhere else", a password change and a
deactivated account; cookies that carry a random token, not the user id; their flags."""

import pytest
import sqlalchemy as sa

from chipper.models import LoginSession, User, utcnow
from chipper.services.accounts import WRONG_PASSWORD
from tests.conftest import JSON, PASSWORD, as_json, text
from tests.realtime_support import wait_for

NEW_PASSWORD = "a brand new passphrase"


def signed_in(client) -> bool:
    return client.get("/conversations", headers=JSON).status_code == 200


def copy_of(client, app):
    """Another browser holding a copy of this one's cookies (a stolen cookie)."""
    thief = app.test_client()
    for cookie in client._cookies.values():
        thief.set_cookie(cookie.key, cookie.value, domain=cookie.domain)
    return thief


def sign_in(app, make, user_id, **extra):
    browser = app.test_client()
    data = {"email": make.email(user_id), "password": PASSWORD, **extra}
    assert browser.post("/login", json=data, headers=JSON).status_code == 200
    return browser


def test_logout_ends_the_session_on_the_server(app, make):
    ada = make.user("Ada")
    browser = sign_in(app, make, ada)
    thief = copy_of(browser, app)
    assert signed_in(thief)
    browser.post("/logout")
    assert not signed_in(browser)
    assert not signed_in(thief)
    assert thief.get("/conversations").status_code == 303


def test_the_remember_me_cookie_is_a_random_token_that_logout_revokes(app, make, sql):
    ada = make.user("Ada")
    first = sign_in(app, make, ada, remember="on")
    second = sign_in(app, make, ada, remember="on")
    tokens = [b.get_cookie("remember_token").value for b in (first, second)]
    assert tokens[0] != tokens[1]
    assert not any(token.startswith(f"{ada}|") for token in tokens)
    # Only the remember-me cookie, as after the browser was closed: still signed in...
    remembered = app.test_client()
    remembered.set_cookie("remember_token", tokens[0])
    assert signed_in(remembered)
    # ...until that sign-in ends. The token is not stored, only its hash.
    first.post("/logout")
    forgotten = app.test_client()
    forgotten.set_cookie("remember_token", tokens[0])
    assert not signed_in(forgotten)
    stored = sql.scalars(sa.select(LoginSession.token_hash))
    assert all(len(h) == 64 and h not in "".join(tokens) for h in stored)


def test_sign_out_everywhere_else_keeps_only_this_browser(app, make, auth, client):
    ada, bob = make.user("Ada"), make.user("Bob")
    phone, laptop = sign_in(app, make, ada), sign_in(app, make, ada)
    bobs = sign_in(app, make, bob)
    auth.login(ada)
    page = text(client.get("/account"))
    assert page.count("<li>") == 3 and "this browser" in page
    response = client.post("/account/sign-out-others")
    assert response.status_code == 303
    assert "Signed out everywhere else (2)" in text(client.get(response.headers["Location"]))
    assert signed_in(client) and signed_in(bobs)
    assert not signed_in(phone) and not signed_in(laptop)
    assert as_json(client.get("/account", headers=JSON))["sessions"][0]["id"] > 0


def test_changing_the_password_needs_the_current_one_and_signs_out_the_rest(
    app, make, auth, client
):
    ada = make.user("Ada")
    other = sign_in(app, make, ada)
    auth.login(ada)
    wrong = client.post(
        "/account/password", data={"current_password": "nope", "new_password": NEW_PASSWORD}
    )
    assert wrong.status_code == 422 and WRONG_PASSWORD in text(wrong)
    common = client.post(
        "/account/password",
        json={"current_password": PASSWORD, "new_password": "password1"},
        headers=JSON,
    )
    assert common.status_code == 422 and as_json(common)["field"] == "new_password"
    assert signed_in(other)
    done = client.post(
        "/account/password", data={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert done.status_code == 200 and "Password changed" in text(done)
    assert signed_in(client) and not signed_in(other)
    email = make.email(ada)
    old = app.test_client().post(
        "/login", json={"email": email, "password": PASSWORD}, headers=JSON
    )
    assert old.status_code == 401
    new = {"email": email, "password": NEW_PASSWORD}
    assert app.test_client().post("/login", json=new, headers=JSON).status_code == 200


def test_a_deactivated_account_is_signed_out_and_cannot_sign_in(app, make, sql):
    ada = make.user("Ada")
    browser = sign_in(app, make, ada, remember="on")
    sql.write(sa.update(User).where(User.id == ada).values(deactivated_at=utcnow()))
    assert not signed_in(browser)
    again = app.test_client().post(
        "/login", json={"email": make.email(ada), "password": PASSWORD}, headers=JSON
    )
    assert again.status_code == 401


def cookie_flags(response) -> dict[str, str]:
    return {
        header.split("=", 1)[0]: header.lower() for header in response.headers.getlist("Set-Cookie")
    }


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_cookies_are_httponly_lax_and_secure_over_https(app, make, scheme):
    ada = make.user("Ada")
    browser = app.test_client()
    response = browser.post(
        "/login",
        data={"email": make.email(ada), "password": PASSWORD, "remember": "on"},
        base_url=f"{scheme}://localhost",
        # Flask-WTF checks that a form posted over https came from this site.
        headers={"Referer": f"{scheme}://localhost/login"},
    )
    assert response.status_code == 303, text(response)
    flags = cookie_flags(response)
    assert set(flags) >= {"session", "remember_token"}
    for header in flags.values():
        assert "httponly" in header and "samesite=lax" in header
        assert ("; secure" in header) == (scheme == "https")


@pytest.mark.parametrize("app_config", [{"TRUSTED_PROXIES": 1}])
def test_behind_a_proxy_its_https_makes_cookies_secure(app, make):
    ada = make.user("Ada")
    response = app.test_client().post(
        "/login",
        data={"email": make.email(ada), "password": PASSWORD},
        headers={"X-Forwarded-Proto": "https", "Referer": "https://localhost/login"},
    )
    assert response.status_code == 303, text(response)
    assert all("; secure" in header for header in cookie_flags(response).values())


# Open streams


def test_the_streams_of_ended_sign_ins_close_at_once(live, visit, make):
    ada = make.user("Ada")
    bob = make.user("Bob")
    chat = make.private(ada, bob)
    here, elsewhere = visit(ada), visit(ada)
    kept, ended = here.stream(), elsewhere.stream()
    for stream in (kept, ended):
        wait_for(stream, lambda e: e.name == "hello")
    response = here.request("POST", "/account/sign-out-others")
    assert response.status_code == 200 and response.json() == {"ended_sessions": 1}
    wait_for(ended, lambda e: e.name == "signed-out", timeout=5)
    ended._thread.join(5)
    assert not ended._thread.is_alive(), "the ended sign-in's stream stayed open"
    # The stream of the sign-in that asked is still live; the other cannot open a new one.
    message = visit(bob).send(chat, "still there?")
    wait_for(kept, lambda e: e.name == f"message-created-{chat}" and f"m{message['id']}" in e.data)
    assert "signed-out" not in [e.name for e in kept.events]
    assert elsewhere.request("GET", "/stream").status_code == 401
