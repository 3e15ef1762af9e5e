"""Your profile: a new name and email address (the address needs your password), a picture
that is checked like an attachment and kept as a 256 px square WebP without metadata, and the
card behind a name, with "Message". Pictures and names reach the others' pages live."""

import io

import pytest
import sqlalchemy as sa
from PIL import Image

from chipper.models import User
from tests.conftest import HTMX, JSON, PASSWORD, text
from tests.realtime_support import wait_for
from tests.test_attachments import exif_with_gps_and_orientation, fetch, files_in, image


@pytest.fixture
def chat(make, ada, bob) -> int:
    return make.private(ada, bob)


def upload(client, data: bytes, name: str = "me.jpg", **kwargs):
    return client.post(
        "/profile/avatar",
        data={"avatar": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
        **kwargs,
    )


def avatar_name(sql, user_id: int) -> str | None:
    return sql.scalar(sa.select(User.avatar_name).where(User.id == user_id))


def test_the_profile_page_has_name_email_picture_password_and_sessions(client, ada):
    for path in ("/profile", "/account"):
        html = text(client.get(path))
        assert "<h1>Your profile</h1>" in html
        assert 'name="name" value="Ada"' in html and 'type="email"' in html
        assert 'action="/profile/avatar"' in html and 'enctype="multipart/form-data"' in html
        assert "Change password" in html and "Sign out everywhere else" in html
    assert 'href="/profile"' in text(client.get("/conversations"))


def test_a_new_name_shows_beside_your_messages(client, login_client, make, ada, bob, chat):
    make.message(ada, chat, "hello")
    response = client.post("/profile", data={"name": "  Ada   Lovelace ", "email": ""})
    # An empty address field is refused: the address is required.
    assert response.status_code == 422
    assert "Enter an email address" in text(response)
    response = client.post("/profile", data={"name": "  Ada   Lovelace "}, headers=JSON)
    assert response.status_code == 200
    assert response.get_json()["user"]["name"] == "Ada Lovelace"
    bobs_page = text(login_client(bob).get(f"/conversations/{chat}"))
    assert f'data-user-name="{ada}">Ada Lovelace</a>' in bobs_page
    assert "Name changed." in text(client.post("/profile", data={"name": "Ada L."}))
    assert "Nothing to change." in text(client.post("/profile", data={"name": "Ada L."}))


def test_an_empty_or_long_name_is_refused_in_the_page(client, ada, sql):
    response = client.post("/profile", data={"name": "   "})
    assert response.status_code == 422
    html = text(response)
    assert "Tell us your name." in html and 'aria-invalid="true"' in html
    response = client.post("/profile", data={"name": "x" * 81}, headers=JSON)
    assert response.status_code == 422
    assert response.get_json() == {"error": "Names are at most 80 characters.", "field": "name"}
    assert sql.scalar(sa.select(User.name).where(User.id == ada)) == "Ada"


def test_a_new_email_address_needs_the_current_password(client, app, make, ada, bob, sql):
    new = "ada@lovelace.example"
    response = client.post("/profile", data={"email": new})
    assert response.status_code == 422
    assert "Enter your current password to change your email address." in text(response)
    # What was typed stays in the form.
    assert f'value="{new}"' in text(response)
    response = client.post(
        "/profile", data={"email": new, "current_password": "wrong one"}, headers=JSON
    )
    assert response.get_json() == {
        "error": "That is not your current password.",
        "field": "current_password",
    }
    taken = make.email(bob)
    response = client.post("/profile", data={"email": taken.upper(), "current_password": PASSWORD})
    assert response.status_code == 422 and "already exists" in text(response)
    response = client.post(
        "/profile", data={"email": " Ada@Lovelace.example ", "current_password": PASSWORD}
    )
    assert response.status_code == 200 and "Email address changed." in text(response)
    assert sql.scalar(sa.select(User.email).where(User.id == ada)) == new
    # The new address signs in; the old one no longer does.
    fresh = app.test_client()
    signed = fresh.post("/login", json={"email": new, "password": PASSWORD}, headers=JSON)
    assert signed.status_code == 200


def test_a_picture_is_a_square_webp_without_metadata(client, login_client, ada, bob, chat, sql):
    photo = image("JPEG", size=(900, 600), exif=exif_with_gps_and_orientation())
    response = upload(client, photo, headers=JSON)
    assert response.status_code == 200, response.get_data(as_text=True)
    url = response.get_json()["user"]["avatar"]
    assert url.startswith(f"/users/{ada}/avatar?v=")
    served = fetch(login_client(bob), url)
    assert served.status_code == 200 and served.mimetype == "image/webp"
    assert (
        "private" in served.headers["Cache-Control"]
        and "immutable" in served.headers["Cache-Control"]
    )
    picture = Image.open(io.BytesIO(served.data))
    assert picture.format == "WEBP" and picture.size == (256, 256)
    assert not picture.getexif() and "exif" not in picture.info
    # Bob's list and the conversation show it; his JSON names it.
    assert f'data-avatar="{ada}" aria-hidden="true"><img src="{url}"' in text(
        login_client(bob).get("/conversations")
    )
    assert login_client(bob).get(f"/users/{ada}", headers=JSON).get_json()["user"]["avatar"] == url


def test_a_new_picture_replaces_the_old_file_and_removing_brings_initials_back(
    client, app, ada, sql
):
    folder = app.config["UPLOAD_FOLDER"]
    assert upload(client, image("PNG", size=(300, 300))).status_code == 200
    first = avatar_name(sql, ada)
    assert files_in(folder) == {first}
    page = upload(client, image("WEBP", size=(400, 200)))
    assert page.status_code == 200 and "Picture changed." in text(page)
    second = avatar_name(sql, ada)
    assert second != first and files_in(folder) == {second}
    # The old address no longer shows a picture the page would cache for good.
    response = client.post("/profile/avatar/remove")
    assert "Picture removed." in text(response)
    assert avatar_name(sql, ada) is None and files_in(folder) == set()
    assert fetch(client, f"/users/{ada}/avatar").status_code == 404
    html = text(client.get("/profile"))
    assert f'data-avatar="{ada}" aria-hidden="true">A</span>' in html
    assert "Remove picture" not in html


@pytest.mark.parametrize(
    ("data", "name", "status", "message"),
    [
        (b"just some words", "me.txt", 415, "Choose a photo"),
        (b"%PDF-1.4\n%%EOF\n", "me.pdf", 415, "Choose a photo"),
        (image("PNG")[:60], "cut.png", 400, "damaged"),
        (b"", "", 422, "Choose a photo first."),
    ],
)
def test_what_is_not_a_photo_is_refused_and_nothing_is_kept(
    client, app, ada, sql, data, name, status, message
):
    response = upload(client, data, name)
    assert response.status_code == status
    assert message in text(response)
    assert 'id="avatar-error"' in text(response)
    assert avatar_name(sql, ada) is None
    assert files_in(app.config["UPLOAD_FOLDER"]) == set()
    api = upload(client, data, name, headers=JSON)
    assert api.status_code == status and api.get_json()["field"] == "avatar"


def test_pictures_are_for_signed_in_people_only(app, client, ada):
    upload(client, image("PNG"))
    url = client.get("/profile", headers=JSON).get_json()["user"]["avatar"]
    stranger = app.test_client()
    assert stranger.get(url, headers=JSON).status_code == 401
    assert stranger.get(url).status_code == 303
    assert client.get("/users/9999/avatar").status_code == 404


def test_the_card_offers_to_message_and_opens_the_private_chat(client, make, ada, bob, sql):
    html = text(client.get(f"/users/{bob}"))
    assert "<h2" in html and ">Bob</h2>" in html
    assert f'name="user_ids" value="{bob}"' in html and "Message" in html
    # With htmx only the card comes back, for the dialog.
    fragment = text(client.get(f"/users/{bob}", headers=HTMX))
    assert fragment.lstrip().startswith('<section class="card profile-card"')
    assert "<html" not in fragment
    made = client.submit(f"/users/{bob}", "/conversations", {"type": "private", "user_ids": bob})
    assert made.status_code == 303
    chat_url = made.headers["Location"]
    html = text(client.get(f"/users/{bob}"))
    assert f'href="{chat_url}"' in html
    assert client.get(f"/users/{bob}", headers=JSON).get_json()["conversation_id"] == int(
        chat_url.rsplit("/", 1)[1]
    )
    own = text(client.get(f"/users/{ada}"))
    assert "Edit your profile" in own and 'name="user_ids"' not in own
    assert client.get("/users/424242").status_code == 404


def test_others_see_a_new_name_and_picture_live(make, visit, live):
    ada, bob, cara = make.user("Ada"), make.user("Bob"), make.user("Cara")
    make.private(ada, bob)
    alice, bobby, carol = visit(ada, live), visit(bob, live), visit(cara, live)
    bob_page, cara_page, own_tab = bobby.stream(), carol.stream(), alice.stream()
    wait_for(bob_page, lambda e: e.name == "hello")
    wait_for(cara_page, lambda e: e.name == "hello")
    response = alice.request("POST", "/profile", data={"name": "Ada Lovelace"})
    assert response.status_code == 200
    renamed = wait_for(bob_page, lambda e: e.name == "profile-updated")
    assert renamed.json() == {
        "user_id": ada,
        "name": "Ada Lovelace",
        "avatar": None,
        "initials": "AL",
        "hue": f"hue-{ada % 8}",
    }
    wait_for(own_tab, lambda e: e.name == "profile-updated")
    files = {"avatar": ("me.png", image("PNG", size=(64, 64)), "image/png")}
    assert alice.request("POST", "/profile/avatar", files=files).status_code == 200
    pictured = wait_for(bob_page, lambda e: e.name == "profile-updated" and e.json()["avatar"])
    assert pictured.json()["avatar"].startswith(f"/users/{ada}/avatar?v=")
    # Cara shares no conversation with Ada: her stream hears nothing of it.
    side = make.private(bob, cara)
    sync = bobby.send(side, "sync")["id"]
    wait_for(cara_page, lambda e: e.name == f"message-created-{side}" and f'id="m{sync}"' in e.data)
    assert not [e for e in cara_page.events if e.name == "profile-updated"]
