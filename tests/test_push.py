"""Web Push: subscribing browsers, who gets a notification and when, muting, the VAPID key.

Notifications travel for real: pywebpush encrypts and signs them and posts them to a local
HTTP server playing the push service (tests/push_support.py), which decrypts them with the
browser's keys.
"""

import io
import os
import socket
import stat
import threading
import time

import pytest
import redis
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from PIL import Image
from py_vapid import Vapid02

from chipper import create_app
from chipper.config import Config
from chipper.models import Participant, PushSubscription
from chipper.push import keys
from tests.conftest import HTMX, JSON, as_json, text
from tests.push_support import Browser, PushService, b64url, unb64url, vapid_claims
from tests.realtime_support import wait_for

SUBJECT = "mailto:ops@chipper.example"


@pytest.fixture(scope="module")
def vapid_pem() -> str:
    vapid = Vapid02()
    vapid.generate_keys()
    return vapid.private_pem().decode()


@pytest.fixture(scope="module")
def public_key(vapid_pem) -> str:
    return keys.public_key(keys.load(vapid_pem))


@pytest.fixture
def app_config(vapid_pem) -> dict:
    return {
        "VAPID_PRIVATE_KEY": vapid_pem,
        "VAPID_SUBJECT": SUBJECT,
        # The push service below listens on 127.0.0.1, over http.
        "PUSH_ALLOW_PRIVATE_ENDPOINTS": True,
    }


@pytest.fixture
def push_service():
    service = PushService()
    yield service
    service.close()


@pytest.fixture
def settle(app):
    """Waits until the app's push sender has finished everything handed to it so far: what
    has not reached the push service by then was never sent."""

    def wait() -> None:
        assert app.extensions["chipper.push"].sender.wait_idle(10), "push sender still busy"

    return wait


def subscribe(client, browser: Browser, endpoint: str):
    return client.post("/push/subscriptions", json=browser.subscription(endpoint), headers=JSON)


@pytest.fixture
def subscribed(login_client, push_service):
    """`subscribed(user_id, token)`: a browser signed in as the user whose subscription
    posts to the push service's /push/<token>; returns (client, Browser)."""

    def sign_up(user_id: int, token: str):
        client, browser = login_client(user_id), Browser()
        response = subscribe(client, browser, push_service.endpoint(token))
        assert response.status_code == 201, text(response)
        return client, browser

    return sign_up


def subscriptions(sql) -> list[tuple]:
    return sql.rows(
        sa.select(PushSubscription.user_id, PushSubscription.endpoint).order_by(PushSubscription.id)
    )


# A message, end to end


def test_a_message_reaches_the_other_members_browser_encrypted_and_signed(
    client, ada, bob, make, subscribed, push_service, public_key, sql, settle
):
    chat = make.private(ada, bob)
    _, bob_browser = subscribed(bob, "bob")
    response = client.post(
        f"/conversations/{chat}/messages", data={"body": "Tea at 4?"}, headers=JSON
    )
    assert response.status_code == 201
    message = as_json(response)

    (received,) = push_service.wait("bob")
    assert received.headers["content-encoding"] == "aes128gcm"
    assert received.headers["ttl"] == str(24 * 60 * 60)
    assert received.headers["urgency"] == "normal"
    claims = vapid_claims(received.headers["authorization"], public_key)
    assert claims["aud"] == push_service.origin
    assert claims["sub"] == SUBJECT
    assert claims["exp"] > time.time()
    assert bob_browser.read(received) == {
        "type": "message",
        "title": "Ada",
        "body": "Tea at 4?",
        "url": f"/conversations/{chat}",
        "conversation_id": chat,
        "sender": {"id": ada, "name": "Ada"},
        "tag": f"conversation-{chat}",
        "unread": 1,
    }
    assert message["body"] == "Tea at 4?"
    # Sent means used: the subscription is known to work.
    settle()
    assert sql.scalar(sa.select(PushSubscription.last_used_at)) is not None


def test_the_senders_picture_is_the_notifications_icon(
    client, ada, bob, make, subscribed, push_service
):
    out = io.BytesIO()
    Image.new("RGB", (64, 64), "#2a6").save(out, "PNG")
    uploaded = client.post(
        "/profile/avatar",
        data={"avatar": (io.BytesIO(out.getvalue()), "me.png")},
        content_type="multipart/form-data",
        headers=JSON,
    )
    picture = uploaded.get_json()["user"]["avatar"]
    chat = make.private(ada, bob)
    _, bob_browser = subscribed(bob, "bob")
    client.post(f"/conversations/{chat}/messages", data={"body": "Tea?"}, headers=JSON)
    (received,) = push_service.wait("bob")
    assert bob_browser.read(received)["icon"] == picture


def test_a_group_message_names_the_group_and_long_text_is_cut(
    client, ada, bob, cara, make, subscribed, push_service
):
    group = make.group(ada, [bob, cara], "Book club")
    _, browser = subscribed(bob, "bob")
    make.message(cara, group, "earlier")  # unread for Bob too
    push_service.wait("bob")
    body = "word " * 900
    client.post(f"/conversations/{group}/messages", data={"body": body}, headers=JSON)

    received = push_service.wait("bob", 2)[1]
    data = browser.read(received)
    assert data["title"] == "Ada in Book club"
    assert len(data["body"]) <= 200 and data["body"].endswith("…")
    assert data["body"].startswith("word word")
    assert data["unread"] == 2
    assert len(received.body) < 3 * 1024


def test_a_photo_is_announced_as_a_photo(client, ada, bob, make, subscribed, push_service):
    chat = make.private(ada, bob)
    _, browser = subscribed(bob, "bob")
    image = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(image, "PNG")
    image.seek(0)
    response = client.post(
        f"/conversations/{chat}/messages",
        data={"body": "", "file": (image, "red.png")},
        headers=JSON,
    )
    assert response.status_code == 201, text(response)
    assert browser.read(push_service.wait("bob")[0])["body"] == "Photo"


def test_the_sender_gets_no_push_of_their_own_message(
    client, ada, bob, make, subscribed, push_service, settle
):
    chat = make.private(ada, bob)
    subscribed(ada, "ada")  # Ada's other browser
    subscribed(bob, "bob")
    client.post(f"/conversations/{chat}/messages", data={"body": "hi"}, headers=JSON)
    push_service.wait("bob")
    settle()
    assert push_service.to("ada") == []


def test_every_browser_of_a_member_gets_it(ada, bob, make, subscribed, push_service):
    chat = make.private(ada, bob)
    phone, laptop = subscribed(bob, "phone")[1], subscribed(bob, "laptop")[1]
    make.message(ada, chat, "both")
    assert phone.read(push_service.wait("phone")[0])["body"] == "both"
    assert laptop.read(push_service.wait("laptop")[0])["body"] == "both"


# Expired subscriptions


@pytest.mark.parametrize(("status", "kept"), [(410, False), (404, False), (500, True)])
def test_a_subscription_the_push_service_calls_gone_is_forgotten(
    ada, bob, make, subscribed, push_service, settle, sql, status, kept
):
    chat = make.private(ada, bob)
    subscribed(bob, "bob")
    push_service.answers["/push/bob"] = status
    make.message(ada, chat, "still there?")
    push_service.wait("bob")
    settle()
    assert bool(subscriptions(sql)) is kept
    # Not delivered, so not "used".
    assert sql.scalar(sa.select(PushSubscription.last_used_at)) is None


def test_a_redirect_from_the_push_service_is_not_followed(
    ada, bob, make, subscribed, push_service, settle, sql
):
    """A redirect could point the server's request at its own network."""
    chat = make.private(ada, bob)
    subscribed(bob, "bob")
    push_service.answers["/push/bob"] = (307, {"Location": push_service.endpoint("elsewhere")})
    make.message(ada, chat, "hello")
    push_service.wait("bob")
    settle()
    assert push_service.to("elsewhere") == []
    assert len(subscriptions(sql)) == 1


# Calls


def test_a_call_rings_the_callees_browser_with_high_urgency(
    client, app, ada, bob, make, subscribed, push_service
):
    chat = make.private(ada, bob)
    _, browser = subscribed(bob, "bob")
    response = client.post(f"/conversations/{chat}/calls", data={"type": "video"}, headers=JSON)
    assert response.status_code == 201
    call = as_json(response)

    (received,) = push_service.wait("bob")
    assert received.headers["urgency"] == "high"
    # Ringing a phone after the call stopped ringing is no use.
    assert received.headers["ttl"] == str(int(app.config["CALL_RING_SECONDS"]))
    assert browser.read(received) == {
        "type": "call",
        "title": "Ada",
        "body": "Incoming video call",
        "url": f"/calls/{call['id']}",
        "conversation_id": chat,
        "call_id": call["id"],
        "sender": {"id": ada, "name": "Ada"},
        "tag": f"call-{call['id']}",
        "unread": 0,
    }


# Muting


def test_a_muted_conversation_sends_no_message_push_but_calls_still_ring(
    client, ada, bob, make, subscribed, push_service, settle
):
    chat = make.private(ada, bob)
    bob_client, browser = subscribed(bob, "bob")
    response = bob_client.post(f"/conversations/{chat}/mute", data={"muted": "on"}, headers=JSON)
    assert as_json(response) == {"muted": True}

    client.post(f"/conversations/{chat}/messages", data={"body": "psst"}, headers=JSON)
    settle()
    assert push_service.to("bob") == []

    client.post(f"/conversations/{chat}/calls", data={"type": "audio"}, headers=JSON)
    (received,) = push_service.wait("bob")
    assert browser.read(received)["body"] == "Incoming audio call"


def test_muting_one_conversation_leaves_the_others(
    ada, bob, cara, make, subscribed, push_service, settle
):
    muted, other = make.private(ada, bob), make.group(cara, [bob], "Other")
    bob_client, browser = subscribed(bob, "bob")
    bob_client.post(f"/conversations/{muted}/mute", data={"muted": "on"}, headers=JSON)
    make.message(ada, muted, "quiet")
    make.message(cara, other, "loud")
    settle()
    assert [browser.read(r)["body"] for r in push_service.to("bob")] == ["loud"]


def test_a_mention_is_heard_even_in_a_muted_conversation(
    client, ada, bob, cara, make, subscribed, push_service, settle
):
    group = make.group(ada, [bob, cara], "Lunch club")
    bob_client, browser = subscribed(bob, "bob")
    _, caras_browser = subscribed(cara, "cara")
    bob_client.post(f"/conversations/{group}/mute", data={"muted": "on"}, headers=JSON)
    client.post(f"/conversations/{group}/messages", data={"body": "who's in?"}, headers=JSON)
    client.post(f"/conversations/{group}/messages", data={"body": "**@Bob** you in?"}, headers=JSON)
    settle()
    # Only the one naming him, as plain text, saying that it names him.
    (heard,) = [browser.read(r) for r in push_service.to("bob")]
    assert heard["body"] == "@Bob you in?"
    assert heard["title"] == "Ada mentioned you in Lunch club" and heard["mentioned"] is True
    # Cara, not named, hears both the usual way.
    shown = [caras_browser.read(r) for r in push_service.to("cara")]
    assert [(n["title"], n["body"]) for n in shown] == [
        ("Ada in Lunch club", "who's in?"),
        ("Ada in Lunch club", "@Bob you in?"),
    ]
    assert not any("mentioned" in n for n in shown)


@pytest.mark.parametrize("app_config", [{"PUSH_ALLOW_PRIVATE_ENDPOINTS": True}])
def test_without_vapid_keys_nothing_is_sent(
    client, ada, bob, make, subscribed, push_service, settle
):
    chat = make.private(ada, bob)
    subscribed(bob, "bob")
    response = client.post(f"/conversations/{chat}/messages", data={"body": "hi"}, headers=JSON)
    assert response.status_code == 201
    settle()
    assert push_service.received == []


# Subscribing


def test_subscribing_answers_with_the_subscription_and_stores_it(client, ada, push_service, sql):
    browser = Browser()
    response = subscribe(client, browser, push_service.endpoint("x"))
    assert response.status_code == 201
    body = as_json(response)
    assert body == {"id": body["id"], "endpoint": push_service.endpoint("x")}
    assert sql.rows(
        sa.select(PushSubscription.user_id, PushSubscription.p256dh, PushSubscription.auth)
    ) == [(ada, browser.p256dh, browser.subscription("")["keys"]["auth"])]
    with client.session_transaction() as session:
        assert session["push_subscription_id"] == body["id"]


def test_subscribing_again_updates_the_one_row(client, ada, push_service, sql):
    endpoint = push_service.endpoint("x")
    first = as_json(subscribe(client, Browser(), endpoint))
    newer = Browser()
    again = subscribe(client, newer, endpoint)
    assert again.status_code == 201
    assert as_json(again)["id"] == first["id"]
    assert sql.scalars(sa.select(PushSubscription.p256dh)) == [newer.p256dh]


def test_an_endpoint_moves_to_whoever_signed_in_on_that_browser(
    client, ada, bob, make, login_client, push_service, sql, settle
):
    endpoint = push_service.endpoint("shared")
    subscribe(client, Browser(), endpoint)
    browser = Browser()
    assert subscribe(login_client(bob), browser, endpoint).status_code == 201
    assert subscriptions(sql) == [(bob, endpoint)]
    # Ada's messages now notify this browser as Bob's, and Bob's own do not.
    chat = make.private(ada, bob)
    make.message(bob, chat, "from bob")
    settle()
    assert push_service.to("shared") == []
    make.message(ada, chat, "to bob")
    assert browser.read(push_service.wait("shared")[0])["body"] == "to bob"


def test_a_user_keeps_the_newest_few_browsers(app, client, ada, push_service, sql):
    app.config["PUSH_MAX_SUBSCRIPTIONS"] = 2
    for token in ("one", "two", "three"):
        assert subscribe(client, Browser(), push_service.endpoint(token)).status_code == 201
    assert subscriptions(sql) == [
        (ada, push_service.endpoint("two")),
        (ada, push_service.endpoint("three")),
    ]
    # Subscribing an old one again keeps it (it is the browser in use right now).
    assert subscribe(client, Browser(), push_service.endpoint("two")).status_code == 201
    subscribe(client, Browser(), push_service.endpoint("four"))
    assert subscriptions(sql) == [
        (ada, push_service.endpoint("two")),
        (ada, push_service.endpoint("four")),
    ]


def valid_keys() -> dict:
    return Browser().subscription("")["keys"]


def bad(**changes) -> dict:
    body = {"endpoint": "http://127.0.0.1:9/push/x", "keys": valid_keys()}
    for name, value in changes.items():
        if name in ("p256dh", "auth"):
            body["keys"][name] = value
        else:
            body[name] = value
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (bad(endpoint=None), "endpoint"),
        (bad(endpoint=""), "endpoint"),
        (bad(endpoint=42), "endpoint"),
        (bad(endpoint="ftp://127.0.0.1/push/x"), "endpoint"),
        (bad(endpoint="/push/x"), "endpoint"),
        (bad(endpoint="http://127.0.0.1:9/" + "x" * 2048), "endpoint"),
        (bad(endpoint="http://user:pw@127.0.0.1:9/push/x"), "endpoint"),
        (bad(endpoint="http://127.0.0.1:9/push/a b"), "endpoint"),
        (bad(endpoint="http://127.0.0.1:99999/push/x"), "endpoint"),
        (bad(p256dh=None), "keys.p256dh"),
        (bad(p256dh="not base64!"), "keys.p256dh"),
        (bad(p256dh="QUJD"), "keys.p256dh"),  # 3 bytes
        (bad(p256dh="BA" + "A" * 85), "keys.p256dh"),  # 65 bytes, not a point on the curve
        (bad(auth=None), "keys.auth"),
        (bad(auth="a+b/c"), "keys.auth"),  # base64, not base64url
        (bad(auth="QUJDRA"), "keys.auth"),  # 4 bytes
        (bad(keys="nope"), "keys.p256dh"),
    ],
)
def test_subscribe_refuses_bad_input(client, ada, sql, body, field):
    response = client.post("/push/subscriptions", json=body)
    assert response.status_code == 422, text(response)
    assert as_json(response)["field"] == field
    assert as_json(response)["error"]
    assert subscriptions(sql) == []


def test_subscribe_needs_a_json_object(client, ada):
    for response in (
        client.post("/push/subscriptions", data={"endpoint": "x"}),
        client.post("/push/subscriptions", json=["x"]),
    ):
        assert response.status_code == 422
        assert "JSON" in as_json(response)["error"]


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://push.example.net/push/x",  # not https
        "https://127.0.0.1/push/x",
        "https://10.1.2.3/push/x",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/push/x",
        "https://[::ffff:127.0.0.1]/push/x",
        "https://93.184.215.14/push/x",  # public, but an address: push services have names
        "https://localhost/push/x",
        "https://127.1/push/x",
        "https://no-such-host.invalid/push/x",
    ],
)
def test_without_private_endpoints_only_public_https_hosts_are_taken(
    app, client, ada, sql, endpoint
):
    app.config["PUSH_ALLOW_PRIVATE_ENDPOINTS"] = False
    response = client.post("/push/subscriptions", json={"endpoint": endpoint, "keys": valid_keys()})
    assert response.status_code == 422, text(response)
    assert as_json(response)["field"] == "endpoint"
    assert subscriptions(sql) == []


def test_a_name_resolving_to_a_private_address_is_refused(app, client, ada, monkeypatch):
    """No DNS here, so the resolver's answers are given (this is the only stand-in)."""
    app.config["PUSH_ALLOW_PRIVATE_ENDPOINTS"] = False
    answers = {
        "push.example.net": ["93.184.215.14"],
        "sneaky.example.net": ["93.184.215.14", "192.168.1.10"],
    }
    real = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
            for address in answers[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    refused = client.post(
        "/push/subscriptions",
        json={"endpoint": "https://sneaky.example.net/push/x", "keys": valid_keys()},
    )
    assert refused.status_code == 422
    assert "private network" in as_json(refused)["error"]
    taken = client.post(
        "/push/subscriptions",
        json={"endpoint": "https://push.example.net/push/x", "keys": valid_keys()},
    )
    assert taken.status_code == 201, text(taken)


def test_signed_out_gets_401(client, push_service):
    body = Browser().subscription(push_service.endpoint("x"))
    assert client.post("/push/subscriptions", json=body).status_code == 401
    assert client.delete("/push/subscriptions", json={"endpoint": "x"}).status_code == 401
    assert as_json(client.post("/push/subscriptions", json=body))["error"] == "Log in first."


def test_subscribe_needs_the_csrf_token(client, ada, push_service, sql):
    body = Browser().subscription(push_service.endpoint("x"))
    response = client.post("/push/subscriptions", json=body, headers=JSON, csrf=False)
    assert response.status_code == 400
    response = client.delete(
        "/push/subscriptions", json={"endpoint": body["endpoint"]}, headers=JSON, csrf=False
    )
    assert response.status_code == 400
    assert subscriptions(sql) == []


# Unsubscribing and signing out


def test_unsubscribe_forgets_only_your_own_browser(
    client, ada, bob, login_client, push_service, sql
):
    mine, theirs = push_service.endpoint("ada"), push_service.endpoint("bob")
    subscribe(client, Browser(), mine)
    bob_client = login_client(bob)
    subscribe(bob_client, Browser(), theirs)

    # Someone else's endpoint: nothing happens (and nothing says it exists).
    assert client.delete("/push/subscriptions", json={"endpoint": theirs}).status_code == 204
    assert client.delete("/push/subscriptions", json={"endpoint": mine}).status_code == 204
    assert subscriptions(sql) == [(bob, theirs)]
    with client.session_transaction() as session:
        assert "push_subscription_id" not in session
    assert client.delete("/push/subscriptions", json={}).status_code == 422


def test_signing_out_stops_this_browsers_notifications_only(
    client, ada, auth, login_client, push_service, sql
):
    here, elsewhere = push_service.endpoint("here"), push_service.endpoint("elsewhere")
    subscribe(login_client(ada), Browser(), elsewhere)
    subscribe(client, Browser(), here)
    response = client.post("/logout", headers=JSON)
    assert response.status_code == 204
    assert subscriptions(sql) == [(ada, elsewhere)]
    # And without JavaScript, the same.
    auth.login(ada)
    subscribe(client, Browser(), here)
    response = client.submit("/conversations", "/logout", {})
    assert response.status_code == 303
    assert subscriptions(sql) == [(ada, elsewhere)]


# The public key


def test_the_public_key_is_served_and_given_to_pages(app, client, public_key):
    response = client.get("/push/key")
    assert response.status_code == 200
    assert as_json(response) == {"public_key": public_key}
    raw = unb64url(public_key)
    assert len(raw) == 65 and raw[0] == 4
    with app.test_request_context("/"):
        assert app.jinja_env.from_string("{{ vapid_public_key() }}").render() == public_key


def test_without_a_key_the_public_key_is_404_and_empty(database_url, tmp_path):
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "SQLALCHEMY_DATABASE_URI": database_url,
            "VAPID_PRIVATE_KEY": "",
        }
    )
    response = app.test_client().get("/push/key", headers=JSON)
    app.extensions["chipper.jobs"].close()  # started by the request: no sweeps after the test
    assert response.status_code == 404
    assert as_json(response) == {
        "error": "Push notifications are not set up on this server (flask --app chipper vapid-keys)"
    }
    assert app.jinja_env.from_string("{{ vapid_public_key() }}").render() == ""


def test_a_subject_that_is_not_mailto_or_https_is_refused_at_start(database_url):
    with pytest.raises(ValueError, match="VAPID_SUBJECT"):
        create_app({"SQLALCHEMY_DATABASE_URI": database_url, "VAPID_SUBJECT": "ops@example.com"})


def test_a_key_that_is_not_p256_is_refused_at_start(database_url):
    pem = (
        ec.generate_private_key(ec.SECP384R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    for text_key in (pem, "not a key"):
        with pytest.raises(keys.BadKey):
            create_app({"SQLALCHEMY_DATABASE_URI": database_url, "VAPID_PRIVATE_KEY": text_key})


def test_the_raw_key_works_as_well_as_pem(vapid_pem, public_key):
    key = keys.load(vapid_pem).private_key
    raw = key.private_numbers().private_value.to_bytes(32, "big")
    assert keys.public_key(keys.load(b64url(raw))) == public_key


# flask --app chipper vapid-keys


def test_vapid_keys_creates_a_private_file_and_prints_the_public_key(app, tmp_path, monkeypatch):
    monkeypatch.delenv("VAPID_PRIVATE_KEY", raising=False)
    app.instance_path = str(tmp_path / "instance")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["vapid-keys"])
    assert result.exit_code == 0, result.output
    path = tmp_path / "instance" / "vapid_private.pem"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    printed = result.output.strip().splitlines()[-1]
    raw = unb64url(printed)
    assert len(raw) == 65 and raw[0] == 4
    assert keys.public_key(keys.load(path.read_text())) == printed
    # The server reads it from the instance folder; the environment wins over it.
    assert path.read_text().strip() == Config(str(tmp_path / "instance")).VAPID_PRIVATE_KEY
    monkeypatch.setenv("VAPID_PRIVATE_KEY", "from-the-environment")
    assert Config(str(tmp_path / "instance")).VAPID_PRIVATE_KEY == "from-the-environment"

    before = path.read_text()
    again = runner.invoke(args=["vapid-keys"])
    assert again.exit_code != 0
    assert "already exists" in again.output and "--force" in again.output
    assert path.read_text() == before

    forced = runner.invoke(args=["vapid-keys", "--force"])
    assert forced.exit_code == 0, forced.output
    assert path.read_text() != before
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert keys.public_key(keys.load(path.read_text())) == forced.output.strip().splitlines()[-1]


# The mute control


def muted_of(sql, conversation_id: int, user_id: int) -> bool:
    return sql.scalar(
        sa.select(Participant.muted).where(
            Participant.conversation_id == conversation_id, Participant.user_id == user_id
        )
    )


def test_mute_as_json(client, ada, bob, make, sql):
    chat = make.private(ada, bob)
    response = client.post(f"/conversations/{chat}/mute", json={"muted": "on"}, headers=JSON)
    assert response.status_code == 200
    assert as_json(response) == {"muted": True}
    assert muted_of(sql, chat, ada) is True
    assert muted_of(sql, chat, bob) is False
    response = client.post(f"/conversations/{chat}/mute", json={"muted": False}, headers=JSON)
    assert as_json(response) == {"muted": False}
    assert muted_of(sql, chat, ada) is False


def test_mute_with_htmx_answers_the_form_again(client, ada, bob, make):
    chat = make.private(ada, bob)
    response = client.post(f"/conversations/{chat}/mute", data={"muted": "on"}, headers=HTMX)
    assert response.status_code == 200
    html = text(response)
    assert html.lstrip().startswith("<form")
    assert "Unmute conversation" in html
    assert 'name="muted" value="off"' in html
    assert "HX-Request" in response.headers["Vary"]


def test_mute_without_javascript_posts_the_pages_form_and_comes_back(client, ada, bob, make, sql):
    chat = make.private(ada, bob)
    page = text(client.get(f"/conversations/{chat}"))
    assert f'action="/conversations/{chat}/mute"' in page
    assert "Mute conversation" in page
    response = client.submit(
        f"/conversations/{chat}", f"/conversations/{chat}/mute", {"muted": "on"}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == f"/conversations/{chat}/details"  # the form's page
    assert muted_of(sql, chat, ada) is True
    assert "Unmute conversation" in text(client.get(f"/conversations/{chat}"))


def test_mute_is_404_for_outsiders(client, ada, bob, cara, make, sql):
    chat = make.private(bob, cara)
    response = client.post(f"/conversations/{chat}/mute", data={"muted": "on"}, headers=JSON)
    assert response.status_code == 404
    assert muted_of(sql, chat, bob) is False


@pytest.mark.parametrize("value", ["", "maybe", "yes please"])
def test_mute_refuses_a_value_other_than_on_or_off(client, ada, bob, make, value):
    chat = make.private(ada, bob)
    response = client.post(f"/conversations/{chat}/mute", data={"muted": value}, headers=JSON)
    assert response.status_code == 422
    assert as_json(response)["field"] == "muted"


# Watching: a visible tab sees the message itself


@pytest.fixture
def push_server(start_server, vapid_pem):
    """gunicorn (gevent worker) sharing presence through Redis, with push turned on."""
    return start_server(
        VAPID_PRIVATE_KEY=vapid_pem, VAPID_SUBJECT=SUBJECT, PUSH_ALLOW_PRIVATE_ENDPOINTS="1"
    )


def test_a_message_seen_on_a_visible_tab_is_not_pushed_when_the_tab_hides_before_sending(
    app, make, login_client, subscribed, push_service, settle
):
    ada, bob = make.user("Ada"), make.user("Bob")
    chat = make.private(ada, bob)
    sender = login_client(ada)
    _, bob_browser = subscribed(bob, "bob")
    presence = app.extensions["chipper.realtime"].presence
    presence.connect(bob, "bobs-tab")  # Bob's stream is open, its tab visible
    # The sender thread is busy with something else for a moment.
    busy = threading.Event()
    app.extensions["chipper.push"].sender.submit(busy.wait, 10)

    assert sender.post(f"/conversations/{chat}/messages", json={"body": "seen"}, headers=JSON)
    presence.set_visible(bob, "bobs-tab", False)  # Bob switches away; then the sender gets to it
    assert sender.post(f"/conversations/{chat}/messages", json={"body": "not seen"}, headers=JSON)
    busy.set()
    settle()

    assert [bob_browser.read(r)["body"] for r in push_service.to("bob")] == ["not seen"]


def test_push_goes_to_those_with_no_visible_tab(
    make, ada, bob, cara, visit, push_server, push_service, redis_server
):
    chat, side = make.private(ada, bob), make.private(ada, cara)
    alice, bobby, carol = (visit(u, push_server) for u in (ada, bob, cara))
    bob_browser, cara_browser = Browser(), Browser()
    for visitor, browser, token in ((bobby, bob_browser, "bob"), (carol, cara_browser, "cara")):
        response = visitor.request(
            "POST", "/push/subscriptions", json=browser.subscription(push_service.endpoint(token))
        )
        assert response.status_code == 201, response.text

    def sync() -> None:
        """Cara has no stream, so she gets a push of every message to her; the server's one
        sender sends in order, so once hers arrives every earlier push has been sent."""
        count = len(push_service.to("cara")) + 1
        alice.send(side, f"sync {count}")
        push_service.wait("cara", count)

    def pushed_to_bob() -> list[str]:
        return [bob_browser.read(r)["body"] for r in push_service.to("bob")]

    tab = bobby.stream()
    stream_id = wait_for(tab, lambda e: e.name == "hello").json()["stream"]

    alice.send(chat, "while Bob looks")
    sync()
    assert pushed_to_bob() == []

    # Nobody else can hide Bob's tab: the stream is looked up among Ada's own.
    response = alice.request(
        "POST", "/stream/visibility", json={"stream": stream_id, "visible": False}
    )
    assert response.status_code == 204
    alice.send(chat, "Bob still looks")
    sync()
    assert pushed_to_bob() == []

    response = bobby.request(
        "POST", "/stream/visibility", json={"stream": stream_id, "visible": False}
    )
    assert response.status_code == 204
    alice.send(chat, "Bob's tab is hidden")
    push_service.wait("bob")
    assert pushed_to_bob() == ["Bob's tab is hidden"]

    bobby.request("POST", "/stream/visibility", data={"stream": stream_id, "visible": "true"})
    alice.send(chat, "Bob looks again")
    sync()
    assert pushed_to_bob() == ["Bob's tab is hidden"]

    tab.close()
    # The server lets go of the stream at its next heartbeat (1 s here).
    key = f"{push_server.env['REDIS_PREFIX']}:online:{bob}"
    with redis.Redis.from_url(redis_server) as client:
        deadline = time.monotonic() + 5
        while client.zcard(key) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.zcard(key) == 0
    alice.send(chat, "Bob closed the tab")
    push_service.wait("bob", 2)
    assert pushed_to_bob() == ["Bob's tab is hidden", "Bob closed the tab"]
