"""Who may do what, on every route: each (endpoint, method) in `app.url_map` is tried by five
people, with a well-formed body and with junk, and each answer is checked against the table
below. A route added without a line in the table fails `test_every_route_is_in_the_table`.

The five: someone not signed in; a signed-in outsider, in none of the conversations; a
deactivated member, still holding the cookie of a sign-in made before they were deactivated;
a participant of the group; and its owner (who made the group, wrote the message, started the
call, made the invite, and is the server's admin). Each try gets a fresh group, message, call,
attachment and invite, so what one person's try changed never decides another's answer.

Every try is a JSON API request: the statuses are what an API client sees (a browser gets the
same decisions as redirects and pages, which the feature tests cover). Junk is a body that is
not JSON at all, sent as JSON, or for a GET a query string of nonsense: an outsider gets the
same answer to junk as to a well-formed request (authorization comes before validation)."""

import base64
import io
import itertools
import re
from dataclasses import dataclass, field

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from PIL import Image

from chipper.extensions import db
from chipper.models import User
from chipper.services import admin, calls, conversations, invites, messages
from chipper.services.conversations import Membership
from tests.conftest import JSON, PASSWORD, AuthActions
from tests.test_push import SUBJECT, vapid_pem  # noqa: F401 (a fixture used below)

ACTORS = ("anonymous", "outsider", "deactivated", "participant", "owner")
BODIES = ("good", "junk")  # the table's order; junk is tried first, so it must change nothing
JUNK_BODY = b'{"body": [1, 2'  # cut off: not JSON
JUNK_QUERY = "?before=%00zz&after=-1&q=%ff%fe&format=%3Cscript%3E&last_event_id=x"
NEW_PASSWORD = "another long passphrase 42"
_unique = itertools.count()


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 40, 40)).save(out, "PNG")
    return out.getvalue()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _push_keys() -> dict:
    point = ec.generate_private_key(ec.SECP256R1()).public_key()
    raw = point.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return {"p256dh": _b64(raw), "auth": _b64(b"0123456789abcdef")}


@dataclass
class Case:
    path: str  # formatted with the try's objects: {group}, {message}, {call}, ...
    expected: dict  # actor -> (status with the good body, status with junk)
    body: dict = field(default_factory=dict)  # the well-formed JSON body (unsafe methods)


def same(status: int) -> tuple[int, int]:
    return (status, status)


# A route for signed-in people answers 401 to someone not signed in and to a deactivated
# account's old cookie (no sign-in any more), whatever they send.
SIGNED_OUT = {"anonymous": same(401), "deactivated": same(401)}


def anyone(good: int, junk: int | None = None, **others) -> dict:
    """A route open to all: the same answer for everyone, unless named."""
    return {actor: others.get(actor, (good, junk or good)) for actor in ACTORS}


def signed_in(good: int, junk: int | None = None) -> dict:
    """A route for anyone signed in: their own things, nobody else's."""
    each = (good, junk or good)
    return {**SIGNED_OUT, "outsider": each, "participant": each, "owner": each}


def members(participant: tuple, owner: tuple | None = None) -> dict:
    """A route about a conversation, or what is in it: 404 to an outsider whatever the body
    (they cannot tell it from one that does not exist)."""
    return {
        **SIGNED_OUT,
        "outsider": same(404),
        "participant": participant,
        "owner": owner or participant,
    }


def admins(good: int, junk: int | None = None) -> dict:
    """The admin pages: 404 to everyone but an admin, as if they were not there."""
    hidden = {"outsider": same(404), "participant": same(404)}
    return {**SIGNED_OUT, **hidden, "owner": (good, junk or good)}


def case(path: str, expected: dict, **body) -> Case:
    return Case(path, expected, body)


TABLE: dict[tuple[str, str], Case] = {
    ("auth.home", "GET"): case("/", anyone(303)),
    ("auth.login", "GET"): case("/login", anyone(200)),
    # Junk is refused before anyone's password is looked at; a deactivated account cannot
    # sign in.
    ("auth.login", "POST"): case(
        "/login", anyone(200, 422, deactivated=(401, 422)), email="{email}", password=PASSWORD
    ),
    # Signed in, the form sends you to your conversations; registration itself is open in
    # the tests' configuration (tests/test_registration.py covers invite and closed).
    ("auth.register", "GET"): case(
        "/register", anyone(303, anonymous=same(200), deactivated=same(200))
    ),
    ("auth.register", "POST"): case(
        "/register",
        anyone(201, 422),
        name="New Person",
        email="new.{n}@example.com",
        password=NEW_PASSWORD,
    ),
    ("auth.logout", "POST"): case("/logout", signed_in(204)),
    ("auth.account", "GET"): case("/account", signed_in(200)),
    ("auth.update_profile", "POST"): case("/profile", signed_in(200, 422), name="Renamed {n}"),
    # A JSON body carries no file: "Choose a photo first" (tests/test_profiles.py uploads).
    ("auth.upload_avatar", "POST"): case("/profile/avatar", signed_in(422)),
    ("auth.remove_avatar", "POST"): case("/profile/avatar/remove", signed_in(200)),
    # Anyone signed in sees anyone's card and picture (names show in every shared chat).
    ("people.card", "GET"): case("/users/{other}", signed_in(200)),
    ("people.avatar", "GET"): case("/users/{other}/avatar", signed_in(404)),
    ("auth.change_password", "POST"): case(
        "/account/password",
        signed_in(200, 422),
        current_password=PASSWORD,
        new_password=NEW_PASSWORD,
    ),
    ("auth.sign_out_others", "POST"): case("/account/sign-out-others", signed_in(200)),
    ("auth.read_receipts", "POST"): case(
        "/account/read-receipts", signed_in(200, 422), read_receipts=True
    ),
    ("admin.index", "GET"): case("/admin", admins(200)),
    ("admin.create_invite", "POST"): case(
        "/admin/invites", admins(201, 422), uses=1, days=7, note="for Dan"
    ),
    ("admin.revoke_invite", "POST"): case("/admin/invites/{invite}/revoke", admins(200)),
    ("admin.change_settings", "POST"): case(
        "/admin/settings", admins(200, 422), registration="invite"
    ),
    ("admin.account_action", "POST"): case("/admin/users/{newcomer}/deactivate", admins(200)),
    ("attachments.show", "GET"): case("/attachments/{attachment}", members(same(200))),
    ("attachments.thumbnail", "GET"): case(
        "/attachments/{attachment}/thumbnail", members(same(200))
    ),
    ("calls.create", "POST"): case(
        "/conversations/{quiet}/calls", members((201, 422)), type="audio"
    ),
    ("calls.show", "GET"): case("/calls/{call}", members(same(200))),
    ("calls.ringing", "GET"): case("/calls/ringing", signed_in(200)),
    # The owner started the ringing call: they are in it already, and cannot decline it.
    ("calls.answer", "POST"): case("/calls/{call}/answer", members(same(200), same(409))),
    ("calls.decline", "POST"): case("/calls/{call}/decline", members(same(200), same(409))),
    # Hanging up is for those in the call: the participant has not answered yet.
    ("calls.end", "POST"): case("/calls/{call}/end", members(same(403), same(200))),
    ("calls.screen", "POST"): case("/calls/{active}/screen", members((200, 422)), sharing=True),
    ("calls.signal", "POST"): case(
        "/calls/{active}/signal",
        members((204, 422)),
        to="{other}",
        type="offer",
        data={"type": "offer", "sdp": "v=0"},
    ),
    ("conversations.index", "GET"): case("/conversations", signed_in(200)),
    ("conversations.new", "GET"): case("/conversations/new", signed_in(200)),
    ("conversations.unread", "GET"): case("/conversations/unread", signed_in(200)),
    ("conversations.create", "POST"): case(
        "/conversations", signed_in(201, 422), type="group", name="More", user_ids=["{newcomer}"]
    ),
    ("conversations.show", "GET"): case("/conversations/{group}", members(same(200))),
    # Within one conversation: its members only (across all, tests/test_search.py).
    ("search.index", "GET"): case("/search?conversation_id={group}&q=hello", members(same(200))),
    ("conversations.search_people", "POST"): case("/conversations/new", signed_in(200, 422), q="b"),
    ("conversations.details", "GET"): case("/conversations/{group}/details", members(same(200))),
    ("conversations.messages", "GET"): case("/conversations/{group}/messages", members(same(200))),
    ("conversations.update", "PATCH"): case(
        "/conversations/{group}", members((200, 422)), name="Renamed"
    ),
    ("conversations.read", "POST"): case("/conversations/{group}/read", members(same(204))),
    ("conversations.typing", "POST"): case("/conversations/{group}/typing", members(same(204))),
    ("conversations.seen", "GET"): case("/conversations/{group}/seen", members(same(200))),
    ("conversations.mute", "POST"): case(
        "/conversations/{group}/mute", members((200, 422)), muted="on"
    ),
    ("conversations.add_participants", "POST"): case(
        "/conversations/{group}/participants", members((201, 422)), user_ids=["{newcomer}"]
    ),
    # The participant leaves (and no longer sees the group: 204); the owner removes them.
    ("conversations.remove_participant", "DELETE"): case(
        "/conversations/{group}/participants/{participant}", members(same(204), same(200))
    ),
    ("messages.create", "POST"): case(
        "/conversations/{group}/messages", members((201, 422)), body="hello"
    ),
    # The participant sees the owner's message but may not edit or delete it.
    ("messages.show", "GET"): case("/messages/{message}", members(same(200))),
    ("messages.edit", "GET"): case("/messages/{message}/edit", members(same(403), same(200))),
    ("messages.update", "PATCH"): case(
        "/messages/{message}", members(same(403), (200, 422)), body="edited"
    ),
    ("messages.delete", "DELETE"): case("/messages/{message}", members(same(403), same(200))),
    # Anyone in the conversation reacts to any message in it, and sees who did.
    ("messages.react", "POST"): case(
        "/messages/{message}/reactions", members((200, 422)), emoji="👍"
    ),
    ("messages.reactions", "GET"): case("/messages/{message}/reactions", members(same(200))),
    ("notifications.key", "GET"): case("/push/key", anyone(200)),
    ("notifications.subscribe", "POST"): case(
        "/push/subscriptions",
        signed_in(201, 422),
        endpoint="http://127.0.0.1:9/push/{n}",
        keys="{keys}",
    ),
    ("notifications.unsubscribe", "DELETE"): case(
        "/push/subscriptions", signed_in(204, 422), endpoint="http://127.0.0.1:9/push/{n}"
    ),
    ("pwa.manifest", "GET"): case("/manifest.webmanifest", anyone(200)),
    ("pwa.service_worker", "GET"): case("/sw.js", anyone(200)),
    ("pwa.offline", "GET"): case("/offline", anyone(200)),
    ("pwa.share", "GET"): case("/share", signed_in(200)),
    ("pwa.receive_share", "POST"): case(
        "/share", signed_in(201, 422), title="A link", text="look at this"
    ),
    ("pwa.cancel_share", "POST"): case("/share/cancel", signed_in(204)),
    # The conversation is named in the body, so junk cannot name one: 422 for everyone
    # signed in, which tells an outsider nothing.
    ("pwa.send_share", "POST"): case(
        "/share/send",
        {**members((201, 422)), "outsider": (404, 422)},
        conversation_id="{group}",
        body="shared",
    ),
    ("static", "GET"): case("/static/css/base.css", anyone(200)),
    ("streams.show", "GET"): case("/stream", signed_in(200)),
    ("streams.visibility", "POST"): case(
        "/stream/visibility", signed_in(204, 422), stream="s1", visible="true"
    ),
}


class Scene:
    """The people, signed in once; `fresh()` makes the objects of one try."""

    def __init__(self, app, make):
        self.app, self.make = app, make
        self.ids = {
            "owner": make.user("Owner"),  # the first account: the server's admin
            "participant": make.user("Participant"),
            "outsider": make.user("Outsider"),
            "deactivated": make.user("Deactivated"),
        }
        self.clients = {}
        for actor in self.ids:
            self.sign_in(actor)
        # The owner's own browser for making each try's attachment, which no try signs out.
        self.uploader = app.test_client()
        AuthActions(self.uploader, make).login(self.ids["owner"])
        with app.app_context():
            owner = db.session.get(User, self.ids["owner"])
            # Deactivated after signing in: their client keeps a cookie that once worked.
            conversations.create_group(owner, "Old", [self.ids["deactivated"]])
            admin.deactivate(owner, self.ids["deactivated"])

    def sign_in(self, actor: str) -> None:
        client = self.app.test_client()
        AuthActions(client, self.make).login(self.ids[actor])
        self.clients[actor] = client

    def upload(self, conversation_id: int):
        return self.uploader.post(
            f"/conversations/{conversation_id}/messages",
            data={"body": "", "file": (io.BytesIO(_png()), "dot.png")},
            headers=JSON,
        )

    def fresh(self, actor: str, wanted: set[str]) -> dict:
        """What one try names (`wanted`), made new: a group of the owner and the participant
        holding the owner's message, attachment and ringing call; a group whose call both
        have joined; a quiet group with no call; an invite; someone new to add."""
        me = self.ids.get(actor)
        objects = {
            "participant": self.ids["participant"],
            "other": self.ids["owner"] if actor != "owner" else self.ids["participant"],
            "n": next(_unique),
        }
        if wanted & {"newcomer", "email"}:
            objects["newcomer"] = self.make.user("Newcomer")
            objects["email"] = self.make.email(me or objects["newcomer"])
        if "keys" in wanted:
            objects["keys"] = _push_keys()
        with self.app.app_context():
            owner = db.session.get(User, self.ids["owner"])
            participant = db.session.get(User, self.ids["participant"])

            def group(name: str):
                return conversations.create_group(owner, name, [participant.id])

            team = group("Team")
            objects["group"] = team.id
            if "quiet" in wanted:
                objects["quiet"] = group("Quiet").id
            if "message" in wanted:
                objects["message"] = messages.send_message(owner, Membership.of(team), "hi").id
            if "call" in wanted:
                objects["call"] = calls.start_call(owner, team, "audio")[0].id
            if "active" in wanted:
                active, _ = calls.start_call(owner, group("Live"), "audio")
                objects["active"] = calls.answer(participant, active.id).id
            if "invite" in wanted:
                objects["invite"] = invites.create_invite(owner).invite.id
        if "attachment" in wanted:
            sent = self.upload(team.id)
            if sent.status_code == 401:  # the owner's last try signed their other browsers out
                AuthActions(self.uploader, self.make).login(self.ids["owner"])
                sent = self.upload(team.id)
            assert sent.status_code == 201, sent.get_data(as_text=True)
            objects["attachment"] = sent.get_json()["attachment"]["id"]
        return objects


def _fill(value, objects: dict):
    """The body's placeholders, with the try's objects ("{group}" alone becomes its id)."""
    if isinstance(value, dict):
        return {k: _fill(v, objects) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, objects) for v in value]
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        name = value[1:-1]
        if name in objects:
            return objects[name]
    if isinstance(value, str):
        return value.format(**objects)
    return value


def attempt(scene: Scene, endpoint: str, method: str, actor: str, body: str) -> int:
    spec = TABLE[(endpoint, method)]
    objects = scene.fresh(actor, set(re.findall(r"{(\w+)}", f"{spec.path} {spec.body}")))
    path = spec.path.format(**objects)
    # Someone not signed in comes with a new browser each time (a try may sign it in).
    client = scene.app.test_client() if actor == "anonymous" else scene.clients[actor]
    if method == "GET":
        url = path + (JUNK_QUERY if body == "junk" else "")
        response = client.get(url, headers=JSON, buffered=False)
    elif body == "junk":
        response = client.open(
            path, method=method, data=JUNK_BODY, content_type="application/json", headers=JSON
        )
    else:
        response = client.open(path, method=method, json=_fill(spec.body, objects), headers=JSON)
    status = response.status_code
    response.close()  # the stream's generator, among others
    if endpoint == "auth.logout" and actor in ("outsider", "participant", "owner"):
        scene.sign_in(actor)  # signed out by the try: signed in again for the next
    return status


@pytest.fixture
def app_config(vapid_pem) -> dict:  # noqa: F811
    """Push notifications set up, so their routes answer as on a server that has them."""
    # Subscriptions name a port nothing listens on: no try here sends a notification.
    return {
        "VAPID_PRIVATE_KEY": vapid_pem,
        "VAPID_SUBJECT": SUBJECT,
        "PUSH_ALLOW_PRIVATE_ENDPOINTS": True,
    }


@pytest.fixture
def scene(app, make) -> Scene:
    return Scene(app, make)


def test_every_route_is_in_the_table(app):
    routes = {
        (rule.endpoint, method)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert routes - set(TABLE) == set(), "add these routes to TABLE, with who may use them"
    assert set(TABLE) - routes == set(), "these routes are gone: take them out of TABLE"


@pytest.mark.parametrize("route", sorted(TABLE), ids="{0[0]} {0[1]}".format)
def test_who_may_use_each_route(scene, route):
    endpoint, method = route
    seen = {}
    for actor in ACTORS:
        junk = attempt(scene, endpoint, method, actor, "junk")
        seen[actor] = (attempt(scene, endpoint, method, actor, "good"), junk)
    assert seen == TABLE[route].expected
