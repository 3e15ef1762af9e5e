"""Accounts: register, log in, log out, the login wall and CSRF on the account forms."""

import re
from urllib.parse import parse_qs, urlsplit

import argon2
import pytest
import sqlalchemy as sa
from werkzeug.security import generate_password_hash

from chipper.config import Config
from chipper.models import User
from tests.conftest import JSON, PASSWORD, as_json, text

NEW_USER = {"name": "Ada Lovelace", "email": "ada@example.com", "password": PASSWORD}
CSRF_MESSAGE = "Your form expired or came from another site. Reload the page and try again."
LOGIN_FAILED = "That email and password do not match an account."


def register(client, headers=None, **fields):
    return client.post("/register", data={**NEW_USER, **fields}, headers=headers)


def login(client, email, password=PASSWORD, headers=None, **extra):
    query = {"next": extra.pop("next")} if "next" in extra else None
    return client.post(
        "/login",
        data={"email": email, "password": password, **extra},
        query_string=query,
        headers=headers,
    )


def is_signed_in(client) -> bool:
    return client.get("/conversations").status_code == 200


def user_count(sql) -> int:
    return sql.scalar(sa.select(sa.func.count(User.id)))


# Registration


def test_register_page_has_the_form(client, make):
    make.user("Bob")
    response = client.get("/register")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Create an account" in html
    for field in ("name", "email", "password", "csrf_token"):
        assert f'name="{field}"' in html


def test_register_signs_in_and_goes_to_conversations(client, sql):
    response = register(client)
    assert response.status_code == 303
    assert response.headers["Location"] == "/conversations"
    assert is_signed_in(client)
    assert sql.scalar(sa.select(User.name).where(User.email == "ada@example.com")) == (
        "Ada Lovelace"
    )


def test_register_with_the_pages_own_token_works_without_javascript(client):
    token = client.csrf_from_page("/register")
    response = client.post("/register", data={**NEW_USER, "csrf_token": token}, csrf=False)
    assert response.status_code == 303
    assert is_signed_in(client)


def test_register_json_returns_user_and_a_working_csrf_token(client):
    response = client.post("/register", json=NEW_USER, headers=JSON)
    assert response.status_code == 201
    body = response.get_json()
    assert body["user"]["name"] == "Ada Lovelace"
    assert isinstance(body["user"]["id"], int)
    logout = client.post("/logout", headers={**JSON, "X-CSRFToken": body["csrf_token"]}, csrf=False)
    assert logout.status_code == 204


def test_email_is_stored_lower_case_and_trimmed(client, sql):
    register(client, email="  Ada@Example.COM ")
    assert sql.scalars(sa.select(User.email)) == ["ada@example.com"]


@pytest.fixture
def real_hash_config(app, tmp_path):
    """The production defaults for the password hash (the tests' config makes a cheap one)."""
    defaults = Config(str(tmp_path))
    for name in ("PASSWORD_HASH_TIME", "PASSWORD_HASH_MEMORY_KIB", "PASSWORD_HASH_PARALLELISM"):
        app.config[name] = getattr(defaults, name)


def argon2_parameters(stored: str) -> dict[str, int]:
    # $argon2id$v=19$m=19456,t=2,p=1$salt$hash
    params = stored.split("$")[3]
    return {key: int(value) for key, value in (pair.split("=") for pair in params.split(","))}


def test_password_is_stored_as_an_argon2id_hash_at_owasp_strength(client, sql, real_hash_config):
    register(client)
    stored = sql.scalar(sa.select(User.password_hash))
    assert PASSWORD not in stored
    assert stored.startswith("$argon2id$")
    parameters = argon2_parameters(stored)
    # OWASP's password storage minimum for argon2id: 19 MiB, 2 iterations, 1 lane.
    assert parameters["m"] >= 19456 and parameters["t"] >= 2 and parameters["p"] >= 1
    assert argon2.PasswordHasher().verify(stored, PASSWORD)


@pytest.mark.parametrize(
    "old_hash",
    [
        lambda: generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000"),
        lambda: generate_password_hash(PASSWORD),
        lambda: argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD),
    ],
    ids=["pbkdf2", "werkzeug-scrypt", "weak-argon2"],
)
def test_a_weaker_hash_is_replaced_at_the_next_sign_in(
    client, make, sql, real_hash_config, old_hash
):
    ada = make.user("Ada")
    sql.write(sa.update(User).where(User.id == ada).values(password_hash=old_hash()))
    wrong = login(client, make.email(ada), "wrong password!", JSON)
    assert wrong.status_code == 401
    assert not sql.scalar(sa.select(User.password_hash)).startswith("$argon2id$v=19$m=19456")
    assert login(client, make.email(ada), headers=JSON).status_code == 200
    stored = sql.scalar(sa.select(User.password_hash))
    assert argon2_parameters(stored) == {"m": 19456, "t": 2, "p": 1}
    client.post("/logout")
    assert login(client, make.email(ada), headers=JSON).status_code == 200


@pytest.mark.parametrize("password", ["password1", "12345678", "Iloveyou", "qwertyuiop"])
def test_the_most_common_passwords_are_refused(client, sql, password):
    response = client.post("/register", json={**NEW_USER, "password": password}, headers=JSON)
    assert response.status_code == 422
    assert as_json(response)["field"] == "password"
    assert "most common" in as_json(response)["error"]
    assert user_count(sql) == 0


def test_an_unknown_email_takes_as_long_as_a_wrong_password(client, make, real_hash_config):
    """Counts the hash checks rather than timing them (the host is noisy): both answers do one
    full-cost argon2 check, so neither is quicker."""
    ada = make.user("Ada")
    login(client, make.email(ada), headers=JSON)  # the stored hash now has the real cost
    client.post("/logout")
    checks = []
    original = argon2.PasswordHasher.verify

    def counted(self, stored, password):
        checks.append((self.memory_cost, self.time_cost))
        return original(self, stored, password)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(argon2.PasswordHasher, "verify", counted)
        unknown = login(client, "nobody@example.com", "wrong password!", JSON)
        wrong = login(client, make.email(ada), "wrong password!", JSON)
    assert unknown.status_code == wrong.status_code == 401
    assert as_json(unknown) == as_json(wrong)
    assert checks == [(19456, 2), (19456, 2)]


@pytest.mark.parametrize(
    "email", ["ada@example.com", "ADA@EXAMPLE.COM", "Ada@Example.com", " ada@example.com "]
)
@pytest.mark.parametrize("as_json", [False, True], ids=["page", "json"])
def test_duplicate_email_is_refused_case_insensitively(client, make, sql, email, as_json):
    register(make.app.test_client())
    response = register(client, JSON if as_json else None, name="Another Ada", email=email)
    assert response.status_code == 422
    message = "An account with this email already exists."
    if as_json:
        assert response.get_json() == {"error": message, "field": "email"}
    else:
        html = response.get_data(as_text=True)
        assert message in html
        assert 'value="Another Ada"' in html
    assert user_count(sql) == 1
    assert not is_signed_in(client)


BAD_REGISTRATIONS = {
    "bad email": ({"email": "ada-at-example"}, "email", "Enter an email address like"),
    "no domain": ({"email": "ada@"}, "email", "Enter an email address like"),
    "short password": ({"password": "1234567"}, "password", "at least 8 characters"),
    "empty password": ({"password": ""}, "password", "at least 8 characters"),
    "empty name": ({"name": ""}, "name", "Tell us your name."),
    "blank name": ({"name": "   "}, "name", "Tell us your name."),
    "long name": ({"name": "x" * 81}, "name", "at most 80 characters"),
}


@pytest.mark.parametrize(
    ("fields", "field", "message"), BAD_REGISTRATIONS.values(), ids=BAD_REGISTRATIONS.keys()
)
def test_bad_registration_page_shows_the_reason_and_keeps_what_was_typed(
    client, sql, fields, field, message
):
    response = register(client, **fields)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert message in html
    assert f'id="{field}-error"' in html
    typed = {**NEW_USER, **fields}
    if typed["name"].strip():
        assert f'value="{typed["name"]}"' in html
    assert f'value="{typed["email"]}"' in html
    assert PASSWORD not in html
    assert user_count(sql) == 0
    assert not is_signed_in(client)


@pytest.mark.parametrize(
    ("fields", "field", "message"), BAD_REGISTRATIONS.values(), ids=BAD_REGISTRATIONS.keys()
)
def test_bad_registration_json(client, sql, fields, field, message):
    response = client.post("/register", json={**NEW_USER, **fields}, headers=JSON)
    assert response.status_code == 422
    body = response.get_json()
    assert body["field"] == field
    assert message in body["error"]
    assert user_count(sql) == 0


def test_json_null_name_is_refused(client, sql):
    response = client.post("/register", json={**NEW_USER, "name": None}, headers=JSON)
    assert response.status_code == 422
    assert response.get_json() == {"error": "Tell us your name.", "field": "name"}
    assert user_count(sql) == 0


def test_signed_in_user_visiting_register_goes_to_conversations(client, make, auth):
    auth.login(make.user())
    response = client.get("/register")
    assert response.status_code == 303
    assert response.headers["Location"] == "/conversations"


# Logging in


def test_login_page_has_the_form(client):
    response = client.get("/login")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Log in" in html
    assert 'name="remember"' in html


def test_login_json_get_hands_out_a_csrf_token(client):
    response = client.get("/login", headers=JSON)
    assert response.status_code == 200
    assert response.get_json()["csrf_token"]


def test_login_goes_to_conversations(client, make):
    user = make.user("Ada")
    response = login(client, make.email(user))
    assert response.status_code == 303
    assert response.headers["Location"] == "/conversations"
    assert is_signed_in(client)
    assert "Ada" in client.get("/conversations").get_data(as_text=True)


def test_login_json(client, make):
    user = make.user("Ada")
    response = login(client, make.email(user), headers=JSON)
    assert response.status_code == 200
    body = response.get_json()
    assert body["user"] == {"id": user, "name": "Ada", "avatar": None}
    assert body["csrf_token"]


@pytest.mark.parametrize("password", ["wrong password", PASSWORD.upper(), ""])
def test_wrong_password_is_refused_with_a_message(client, make, password):
    email = make.email(make.user())
    response = login(client, email, password)
    assert response.status_code == 401
    html = response.get_data(as_text=True)
    assert LOGIN_FAILED in html
    assert f'value="{email}"' in html
    assert not is_signed_in(client)


def test_failed_login_keeps_next_for_the_next_try(client, make):
    response = login(client, make.email(make.user()), "wrong password", next="/conversations/new")
    assert response.status_code == 401
    action = re.search(r'<form method="post" action="([^"]+)"', text(response)).group(1)
    assert _next_of(action) == "/conversations/new"


def test_wrong_password_json(client, make):
    response = login(client, make.email(make.user()), "wrong password", headers=JSON)
    assert response.status_code == 401
    assert response.get_json() == {"error": LOGIN_FAILED}


def test_unknown_email_gets_the_same_message(client, make):
    response = login(client, "nobody@example.com")
    assert response.status_code == 401
    assert LOGIN_FAILED in response.get_data(as_text=True)


def test_login_email_is_case_insensitive(client, make):
    email = make.email(make.user())
    response = login(client, "  " + email.upper())
    assert response.status_code == 303
    assert is_signed_in(client)


@pytest.mark.parametrize(
    ("remember", "kept"), [("on", True), (None, False)], ids=["remember", "session-only"]
)
def test_remember_me_sets_a_lasting_cookie(client, make, remember, kept):
    extra = {"remember": remember} if remember else {}
    login(client, make.email(make.user()), **extra)
    cookie = client.get_cookie("remember_token")
    if kept:
        assert cookie is not None
        assert cookie.expires is not None
        assert cookie.http_only
    else:
        assert cookie is None


def test_remember_cookie_signs_in_a_new_browser_session(client, make):
    login(client, make.email(make.user()), remember="on")
    client.delete_cookie("session")
    assert is_signed_in(client)


@pytest.mark.parametrize(
    "target", ["/conversations/new", "/conversations/new?q=ada", "/conversations/42/messages"]
)
def test_login_honours_a_same_site_next(client, make, target):
    response = login(client, make.email(make.user()), next=target)
    assert response.status_code == 303
    assert response.headers["Location"] == target


@pytest.mark.parametrize(
    "target",
    [
        "//evil.com",
        "//evil.com/conversations",
        "///evil.com",
        "http://evil.com",
        "https://evil.com/login",
        "https:evil.com",
        "javascript:alert(1)",
        "evil.com",
    ],
)
def test_login_ignores_a_next_that_leaves_the_site(client, make, target):
    response = login(client, make.email(make.user()), next=target)
    assert response.status_code == 303
    assert response.headers["Location"] == "/conversations"


def test_login_form_carries_next_through(client, make):
    html = client.get("/login?next=/conversations/new").get_data(as_text=True)
    action = re.search(r'<form method="post" action="([^"]+)"', html).group(1)
    assert _next_of(action) == "/conversations/new"


def test_signed_in_user_visiting_login_goes_to_conversations(client, make, auth):
    auth.login(make.user())
    response = client.get("/login")
    assert response.status_code == 303
    assert response.headers["Location"] == "/conversations"


# Logging out


def test_logout_goes_to_login_and_signs_out(client, make, auth):
    auth.login(make.user())
    response = client.post("/logout")
    assert response.status_code == 303
    assert response.headers["Location"] == "/login"
    after = client.get("/conversations")
    assert after.status_code == 303
    assert urlsplit(after.headers["Location"]).path == "/login"


def test_logout_json(client, make, auth):
    auth.login(make.user())
    assert client.post("/logout", headers=JSON).status_code == 204
    assert not is_signed_in(client)


def test_logout_forgets_the_remembered_login(client, make):
    login(client, make.email(make.user()), remember="on")
    client.post("/logout")
    assert client.get_cookie("remember_token") is None
    assert not is_signed_in(client)


def test_logout_needs_post(client, make, auth):
    auth.login(make.user())
    assert client.get("/logout").status_code == 405
    assert is_signed_in(client)


# CSRF


def _login_data(make):
    return {"email": make.email(make.user()), "password": PASSWORD}


CSRF_FORMS = {
    "register": ("/register", lambda make: NEW_USER),
    "login": ("/login", _login_data),
    "logout": ("/logout", lambda make: {}),
}


@pytest.mark.parametrize(("path", "data"), CSRF_FORMS.values(), ids=CSRF_FORMS.keys())
@pytest.mark.parametrize("as_json", [False, True], ids=["page", "json"])
def test_missing_csrf_token_is_refused(client, make, auth, sql, path, data, as_json):
    signed_in = path == "/logout"
    if signed_in:
        auth.login(make.user())
    form = data(make)
    users = user_count(sql)
    response = client.post(path, data=form, headers=JSON if as_json else None, csrf=False)
    assert response.status_code == 400
    if as_json:
        assert response.get_json() == {"error": CSRF_MESSAGE}
    else:
        assert CSRF_MESSAGE in response.get_data(as_text=True)
    assert user_count(sql) == users
    assert is_signed_in(client) == signed_in


def test_wrong_csrf_token_is_refused(client):
    response = client.post("/register", data=NEW_USER, headers={"X-CSRFToken": "forged"})
    assert response.status_code == 400


# The login wall


def _next_of(location: str) -> str:
    parts = urlsplit(location)
    assert parts.path == "/login"
    return parse_qs(parts.query)["next"][0]


@pytest.mark.parametrize(
    "path",
    [
        "/conversations",
        "/conversations/new",
        "/conversations/new?q=ada",
        "/conversations/1",
        "/conversations/1/messages?before=5",
    ],
)
def test_anonymous_page_goes_to_login_with_next(client, path):
    response = client.get(path)
    assert response.status_code == 303
    assert _next_of(response.headers["Location"]) == path


@pytest.mark.parametrize("path", ["/conversations", "/conversations/new", "/conversations/1"])
def test_anonymous_json_gets_401(client, path):
    response = client.get(path, headers=JSON)
    assert response.status_code == 401
    assert response.get_json() == {"error": "Log in first."}


def test_login_after_the_wall_returns_to_the_page(client, make):
    user = make.user()
    wall = client.get("/conversations/new?q=ada")
    response = login(client, make.email(user), next=_next_of(wall.headers["Location"]))
    assert response.headers["Location"] == "/conversations/new?q=ada"


@pytest.mark.parametrize("signed_in", [False, True])
def test_home_sends_you_where_you_belong(client, make, auth, signed_in):
    if signed_in:
        auth.login(make.user())
    response = client.get("/")
    assert response.status_code == 303
    assert response.headers["Location"] == ("/conversations" if signed_in else "/login")


@pytest.mark.parametrize("path", ["/offline", "/manifest.webmanifest", "/sw.js", "/login"])
def test_a_request_sent_signed_out_and_answered_after_signing_in_keeps_you_signed_in(
    client, make, path
):
    """The service worker precaches the shell while the login form is being sent: an answer to
    one of its signed-out requests must not replace the new login's cookie (CI saw a browser
    signed out right after logging in)."""
    user = make.user()
    client.get("/login")
    signed_out = client.get_cookie("session").value
    login(client, make.email(user))
    signed_in = client.get_cookie("session").value
    client.set_cookie("session", signed_out)
    client.get(path)
    if client.get_cookie("session").value == signed_out:  # no new cookie: the browser keeps its own
        client.set_cookie("session", signed_in)
    assert is_signed_in(client)


def test_control_characters_are_dropped_from_names(client, sql):
    response = register(client, name="Ada\x00 \x1b[1mLovelace\u2028\x85")
    assert response.status_code == 303
    name = sql.scalar(sa.select(User.name).where(User.email == "ada@example.com"))
    assert name == "Ada [1mLovelace"


def test_a_name_of_control_characters_only_is_refused(client, sql):
    response = register(client, name="\x00\x07\x1b")
    assert response.status_code == 422
    assert "Tell us your name." in text(response)
    assert sql.scalar(sa.select(sa.func.count()).select_from(User)) == 0
