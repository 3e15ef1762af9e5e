"""Headers on every page, no inline script, what the `_method` override accepts, and JSON
bodies of the wrong shape."""

import io
from html.parser import HTMLParser

import pytest
import sqlalchemy as sa
from flask import request

from chipper.models import Conversation, Message
from tests.conftest import HTMX, JSON


class InlineScriptFinder(HTMLParser):
    """Collects what a strict Content-Security-Policy would block."""

    def __init__(self):
        super().__init__()
        self.problems = []

    def handle_starttag(self, tag, attrs):
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.problems.append(f"inline <script> {attrs}")
        self.problems += [f"<{tag} {name}=...>" for name in names if name.startswith("on")]
        self.problems += [
            f"<{tag} {name}={value}>"
            for name, value in attrs
            if name in ("href", "src", "action") and (value or "").startswith("javascript:")
        ]


@pytest.fixture
def scene(app, make, login_client):
    """Ada, signed in, with a private chat and a group holding a few messages."""
    ada, bob = make.user("Ada"), make.user("Bob")
    make.user("Cara")  # someone to add, so the group page shows its add-people form
    private = make.private(ada, bob)
    group = make.group(ada, [bob], name="Book club")
    app.config["MESSAGES_PER_PAGE"] = 2
    for body in ("one", "two", "three"):
        make.message(bob, group, body)
    mine = make.message(ada, private, "<b>bold?</b>")
    return login_client(ada), {"private": private, "group": group, "mine": mine}


def html_responses(client, ids):
    """Every kind of HTML the app answers with, as (label, response)."""
    private, group, mine = ids["private"], ids["group"], ids["mine"]
    older = f"/conversations/{group}/messages?before=999999"
    yield "list", client.get("/conversations")
    yield "list fragment", client.get("/conversations", headers=HTMX)
    yield "new", client.get("/conversations/new?q=b")
    yield "new fragment", client.get("/conversations/new?q=b", headers=HTMX)
    yield "private", client.get(f"/conversations/{private}")
    yield "group", client.get(f"/conversations/{group}")
    yield "older", client.get(older)
    yield "older fragment", client.get(older, headers=HTMX)
    yield "refused message", client.post(f"/conversations/{group}/messages", data={"body": ""})
    yield (
        "sent fragment",
        client.post(f"/conversations/{group}/messages", data={"body": "hi"}, headers=HTMX),
    )
    yield (
        "header fragment",
        client.patch(f"/conversations/{group}", data={"name": "Club"}, headers=HTMX),
    )
    yield "tombstone fragment", client.delete(f"/messages/{mine}", headers=HTMX)
    yield "refused conversation", client.post("/conversations", data={"type": "group"})
    yield "not found", client.get("/conversations/999999")
    yield "forbidden", client.patch(f"/conversations/{private}", data={"name": "x"})
    yield "csrf", client.post("/conversations", data={}, csrf=False)
    yield "redirect", client.post(f"/conversations/{group}/messages", data={"body": "hi"})
    client.post("/logout")
    yield "login", client.get("/login")
    yield "login refused", client.post("/login", data={"email": "x@example.com", "password": "x"})
    yield "register", client.get("/register")


def test_every_html_response_carries_the_security_headers(scene):
    client, ids = scene
    for label, response in html_responses(client, ids):
        assert response.mimetype == "text/html", label
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp, label
        assert "default-src 'self'" in csp, label
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, label
        assert response.headers["X-Content-Type-Options"] == "nosniff", label
        assert response.headers["Cache-Control"] == "private, no-cache", label
        assert "HX-Request" in response.vary, label


def test_no_page_has_inline_script_or_event_handlers(scene):
    client, ids = scene
    seen = 0
    for label, response in html_responses(client, ids):
        finder = InlineScriptFinder()
        finder.feed(response.get_data(as_text=True))
        assert finder.problems == [], label
        seen += 1
    assert seen == 20


def test_pages_load_scripts_only_from_our_own_static_files(scene):
    client, ids = scene
    html = client.get(f"/conversations/{ids['group']}").get_data(as_text=True)
    assert '<script src="/static/vendor/htmx-2.0.11.min.js" defer></script>' in html
    assert '<script src="/static/js/chipper.js" defer></script>' in html


# The `_method` override

ROUTED_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "PROPFIND"]


@pytest.fixture
def echo(app, client):
    """A route that answers with the method it was reached by (added before any request)."""
    app.add_url_rule("/test-echo", "test_echo", lambda: request.method, methods=ROUTED_METHODS)
    return client


@pytest.mark.parametrize(
    ("override", "routed_as"),
    [
        ("PATCH", "PATCH"),
        ("patch", "PATCH"),
        ("PUT", "PUT"),
        ("DELETE", "DELETE"),
        ("Delete", "DELETE"),
        ("GET", "POST"),
        ("HEAD", "POST"),
        ("OPTIONS", "POST"),
        ("TRACE", "POST"),
        ("CONNECT", "POST"),
        ("PROPFIND", "POST"),
        ("", "POST"),
        (" DELETE", "POST"),
    ],
)
def test_override_only_accepts_patch_put_delete(echo, override, routed_as):
    response = echo.post("/test-echo", data={"_method": override})
    assert response.get_data(as_text=True) == routed_as


@pytest.mark.parametrize(
    "body",
    [
        {"json": {"_method": "DELETE"}},
        {"data": {"_method": "DELETE", "file": (io.BytesIO(b"x"), "x")}},
    ],
    ids=["json", "multipart"],
)
def test_override_only_reads_url_encoded_forms(echo, body):
    assert echo.post("/test-echo", **body).get_data(as_text=True) == "POST"


def test_override_is_not_taken_from_the_query_string(echo):
    assert echo.post("/test-echo?_method=DELETE").get_data(as_text=True) == "POST"


def test_override_does_not_turn_a_get_into_a_delete(echo):
    assert (
        echo.get("/test-echo", query_string={"_method": "DELETE"}).get_data(as_text=True) == "GET"
    )


def message_count(sql) -> int:
    return sql.scalar(sa.select(sa.func.count(Message.id)))


@pytest.mark.parametrize("method", ["PATCH", "patch", "Patch"])
def test_override_accepts_patch(scene, sql, method):
    client, ids = scene
    group = ids["group"]
    response = client.post(f"/conversations/{group}", data={"_method": method, "name": "Club"})
    assert response.status_code == 303
    assert sql.scalar(sa.select(Conversation.name).where(Conversation.id == group)) == "Club"


@pytest.mark.parametrize("method", ["DELETE", "delete"])
def test_override_accepts_delete(scene, sql, method):
    client, ids = scene
    response = client.post(f"/messages/{ids['mine']}", data={"_method": method})
    assert response.status_code == 303
    assert sql.scalar(sa.select(Message.body).where(Message.id == ids["mine"])) == ""


@pytest.mark.parametrize(
    "method", ["GET", "HEAD", "OPTIONS", "TRACE", "CONNECT", "POST", "PROPFIND", "", "DELETE "]
)
def test_override_ignores_other_methods(scene, sql, method):
    """A send stays a send: any other `_method` leaves the request a POST."""
    client, ids = scene
    before = message_count(sql)
    response = client.post(
        f"/conversations/{ids['group']}/messages", data={"_method": method, "body": "still a post"}
    )
    assert response.status_code == 303
    assert message_count(sql) == before + 1


def test_a_json_body_with_method_is_not_a_delete(scene, sql):
    client, ids = scene
    response = client.post(
        f"/messages/{ids['mine']}",
        json={"_method": "DELETE"},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 405
    assert sql.scalar(sa.select(Message.body).where(Message.id == ids["mine"])) == "<b>bold?</b>"


@pytest.mark.parametrize("headers", [None, {"Accept": "application/json"}], ids=["page", "json"])
def test_405_names_the_allowed_methods(client, headers):
    """HTTP requires a 405 to say, in Allow, which methods the URL does take."""
    response = client.get("/logout", headers=headers)
    assert response.status_code == 405
    assert "POST" in response.headers.get("Allow", "")


# JSON of the wrong shape: a field that must be one value, a body that must be an object.

ONE_VALUE_FIELDS = [
    ("POST", "/conversations/{group}/messages", "body"),
    ("POST", "/conversations", "name"),
    ("PATCH", "/conversations/{group}", "name"),
    ("POST", "/conversations/{group}/mute", "muted"),
    ("POST", "/conversations/{group}/calls", "type"),
    ("POST", "/stream/visibility", "stream"),
]


@pytest.mark.parametrize("value", [["hi"], {"text": "hi"}], ids=["list", "object"])
@pytest.mark.parametrize(("method", "path", "field"), ONE_VALUE_FIELDS)
def test_a_list_or_object_where_one_value_goes_is_422(scene, sql, method, path, field, value):
    client, ids = scene
    before = message_count(sql)
    url = path.format(group=ids["group"])
    response = client.open(url, method=method, json={field: value}, headers=JSON)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.get_json()["field"] == field
    assert message_count(sql) == before


@pytest.mark.parametrize("body", [["body", "hi"], "hi", 5], ids=["list", "string", "number"])
def test_a_json_body_that_is_not_an_object_is_422(scene, body):
    client, ids = scene
    for url in (f"/conversations/{ids['group']}/messages", "/conversations"):
        response = client.post(url, json=body, headers=JSON)
        assert response.status_code == 422, url
        assert response.get_json()["error"] == "Send the fields as a JSON object."
