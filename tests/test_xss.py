"""Hostile text renders inert wherever it is shown: message text, people's names, group names
and file names, in the full page, the htmx fragment, the JSON, the stream's payload and the web
push payload. Template syntax is shown as typed, never evaluated."""

import io
from html.parser import HTMLParser

import pytest
from PIL import Image

from chipper.extensions import db
from chipper.formatting import plain_text
from chipper.services.accounts import register_user
from tests.conftest import HTMX, JSON, PASSWORD, as_json, text

# The push fixtures (a VAPID key, a push service playing the browser vendor's, subscribed
# browsers), shared rather than copied.
from tests.test_push import (  # noqa: F401
    app_config,
    public_key,
    push_service,
    settle,
    subscribed,
    vapid_pem,
)

CORPUS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '"><svg onload=alert(1)>',
    "'-alert(1)-'",
    '<a href="javascript:alert(1)">tap</a>',
    "<iframe src=data:text/html,<script>alert(1)</script>>",
    "<style>body{display:none}</style>",
    "{{7*7}} {% if 1 %}yes{% endif %} ${7*7}",
    "\u202egnp.exe \u200bzero\u2060width",
    # Formatting's links: none of these schemes may become a link.
    "[tap](javascript:alert(1)) <javascript:alert(1)> [d](data:,x) **<b>x</b>**",
]


class Markup(HTMLParser):
    """Every tag and attribute a page really has (escaped text makes none)."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def assert_inert(html: str, where: str, hostile: str = "") -> None:
    # Template syntax is shown as typed: no template engine ran over it.
    if "{{" in hostile:
        assert "{{7*7}} {% if 1 %}yes{% endif %} ${7*7}" in html, f"{where}: evaluated"
    for tag, attrs in Markup(html).tags:
        if tag == "svg" and attrs.get("class") == "icon":
            continue  # our icons: <svg class="icon"><use href="/static/vendor/..."></svg>
        if tag == "use":
            assert attrs.get("href", "").startswith("/static/vendor/"), f"{where}: <use {attrs}>"
            continue
        assert (
            tag not in ("iframe", "svg", "style", "img")
            or tag == "img"
            and (attrs.get("src", "").startswith("/attachments/"))
        ), f"{where}: a <{tag}> came through: {attrs}"
        if tag == "script":
            assert attrs.get("src", "").startswith("/static/"), f"{where}: an inline <script>"
        for name, value in attrs.items():
            assert not name.startswith("on"), f"{where}: <{tag} {name}>"
            link = (value or "").strip().lower()
            if name in ("href", "src", "action", "formaction"):
                assert not link.startswith(("javascript:", "data:")), f"{where}: {name}={value}"


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def villain(app, make):
    """An account whose name is the hostile text, and Bob, who reads what it sends."""

    def make_pair(name: str):
        with app.app_context():
            bad = register_user(name, f"villain{make.count}@example.com", PASSWORD).id
            db.session.commit()
        make.count += 1
        return bad, make.user("Bob")

    return make_pair


@pytest.mark.parametrize("hostile", CORPUS)
def test_hostile_text_is_shown_as_text_everywhere(
    app,
    hostile,
    villain,
    make,
    login_client,
    subscribed,  # noqa: F811 (a fixture imported above)
    push_service,  # noqa: F811
    settle,  # noqa: F811
):
    bad, bob = villain(hostile)
    sender = login_client(bad)
    bob_tab, bob_browser = subscribed(bob, "bob")
    team = make.group(bad, [bob], name=hostile[:80])
    hub = app.extensions["chipper.realtime"].hub
    bob_stream = hub.register(bob)

    sent = sender.post(f"/conversations/{team}/messages", data={"body": hostile}, headers=HTMX)
    assert sent.status_code == 201
    assert_inert(text(sent), "the htmx fragment", hostile)
    # A message edited into the same text: the fragment, then the form and its page.
    draft = as_json(
        sender.post(f"/conversations/{team}/messages", json={"body": "draft"}, headers=JSON)
    )
    edited = sender.patch(f"/messages/{draft['id']}", data={"body": hostile}, headers=HTMX)
    assert edited.status_code == 200, text(edited)
    assert_inert(text(edited), "the edited fragment", hostile)
    assert_inert(text(sender.get(f"/messages/{draft['id']}/edit")), "the edit page", hostile)
    form = sender.get(f"/messages/{draft['id']}/edit", headers=HTMX)
    assert_inert(text(form), "the edit form", hostile)
    upload = sender.post(
        f"/conversations/{team}/messages",
        data={"body": "", "file": (io.BytesIO(png()), hostile.replace("/", "")[:60] + ".png")},
        headers=JSON,
    )
    assert upload.status_code == 201, text(upload)

    for path in ("/conversations", f"/conversations/{team}", f"/conversations/{team}/members"):
        response = bob_tab.get(path)
        if response.status_code == 200:
            assert_inert(text(response), path, hostile if path != "/conversations" else "")

    # The JSON gives back what was sent, as data.
    history = as_json(bob_tab.get(f"/conversations/{team}", headers=JSON))
    bodies = [m["body"] for m in history["messages"]]
    assert hostile.strip() in [b.strip() for b in bodies]
    assert history["conversation"]["name"] == hostile[:80].strip()

    # What the stream hands Bob's page is escaped like the page itself.
    while True:
        try:
            _, envelope = bob_stream.get(timeout=1)
        except Exception:
            break
        if envelope.html:
            mentions = envelope.kind in ("message-created", "message-updated")
            hostile_here = hostile if mentions else ""
            assert_inert(envelope.html, f"the stream's {envelope.kind}", hostile_here)

    # The push payload is plain text in JSON (the text as read, without formatting marks),
    # which the service worker shows as text.
    settle()
    received = push_service.wait("bob", count=2)
    payload = bob_browser.read(received[0])
    read = plain_text(hostile.strip())
    assert payload["body"].strip() == read[: len(payload["body"].strip())]
    assert payload["sender"]["name"] == hostile.strip()


@pytest.mark.parametrize("hostile", CORPUS)
def test_hostile_invite_notes_are_text_on_the_admin_page(make, login_client, hostile):
    admin = login_client(make.user("Admin"))  # the first account: the admin
    made = admin.post("/admin/invites", data={"uses": "1", "days": "7", "note": hostile})
    assert made.status_code == 201, text(made)  # the page, showing the new link once
    assert_inert(text(made), "the page with the new link", hostile)
    page = admin.get("/admin")
    assert page.status_code == 200
    assert_inert(text(page), "the admin page", hostile)
    listed = as_json(admin.get("/admin", headers=JSON))
    assert hostile.strip() in [invite["note"] for invite in listed["invites"]]


def test_hostile_reaction_input_is_refused_and_never_shown(client, make, ada, bob):
    chat = make.private(ada, bob)
    message = make.message(bob, chat, "hi")
    for hostile in CORPUS:
        for headers in (JSON, HTMX, {}):
            response = client.post(
                f"/messages/{message}/reactions", data={"emoji": hostile}, headers=headers
            )
            assert response.status_code == 422, hostile
            assert hostile not in text(response)
    page = text(client.get(f"/conversations/{chat}"))
    assert 'class="reactions"' not in page
    assert_inert(page, "the conversation after hostile reactions")
